//! The convolution layer: square kernels, stride 1, no padding, over
//! images kept pixel by pixel, channel by channel (NHWC).
//!
//! The forward pass unrolls the patches (im2col, one row an output pixel)
//! and multiplies them with the weights; the backward pass multiplies the
//! unrolled patches' transpose with the output's gradient (the weights'
//! gradient) and the output's gradient with the weights' transpose (the
//! patches' gradient, folded back onto the pixels). The products are the
//! register-blocked kernels of `crate::gemm`.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use crate::error::{Error, Result};
use crate::gemm::product;
use crate::mlp::Dense;

use super::fit;

/// One convolution: `channels` filters of `kernel x kernel` over the input's
/// channels, stride 1, no padding; weights `(kernel * kernel * inputs,
/// channels)` with rows in (row, column, input channel) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub(super) kernel: usize,
    pub(super) inputs: usize,
    pub(super) w: Array2<f32>,
    pub(super) b: Array1<f32>,
}

/// What a [`Conv`]'s forward pass keeps for its backward pass (the
/// unrolled patches), and the backward pass's scratch; reused from call to
/// call, so a pass allocates nothing once the sizes settle.
#[derive(Debug, Default, Clone)]
pub struct ConvCache {
    /// The unrolled patches, one row an output pixel.
    cols: Array2<f32>,
    /// The gradient at `cols`.
    dcols: Array2<f32>,
    /// The weights' transpose, `(channels, kernel * kernel * inputs)`.
    wt: Array2<f32>,
    /// Images and input side of the last forward pass.
    images: usize,
    side: usize,
}

impl Conv {
    /// A convolution from its weights and biases.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when the weights' rows are not
    /// `kernel * kernel * inputs` or the biases not one per filter,
    /// [`Error::ZeroSize`] for an empty dimension,
    /// [`Error::NonFiniteWeight`] for a NaN or infinite value.
    pub fn new(kernel: usize, inputs: usize, w: Array2<f32>, b: Array1<f32>) -> Result<Self> {
        if kernel == 0 || inputs == 0 || w.ncols() == 0 {
            return Err(Error::ZeroSize {
                what: "kernel, input channels and filters",
            });
        }
        if w.nrows() != kernel * kernel * inputs {
            return Err(Error::DimensionMismatch {
                what: "convolution weight rows (kernel x kernel x input channels)",
                expected: kernel * kernel * inputs,
                found: w.nrows(),
            });
        }
        // The same checks as a dense layer's.
        let dense = Dense::new(w, b)?;
        let (w, b) = dense.into_parts();
        Ok(Self {
            kernel,
            inputs,
            w,
            b,
        })
    }

    /// The side of the square kernel.
    pub fn kernel(&self) -> usize {
        self.kernel
    }

    /// Input channels.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Filters, the output channels.
    pub fn channels(&self) -> usize {
        self.w.ncols()
    }

    /// The weights, `(kernel * kernel * inputs, channels)`.
    pub fn weights(&self) -> ArrayView2<'_, f32> {
        self.w.view()
    }

    /// The biases, one per filter.
    pub fn biases(&self) -> &Array1<f32> {
        &self.b
    }

    /// The side of the output for an input of `side` pixels (`side -
    /// kernel + 1`).
    ///
    /// # Errors
    /// [`Error::ZeroSize`] when the kernel does not fit in the image.
    pub fn output_side(&self, side: usize) -> Result<usize> {
        match (side + 1).checked_sub(self.kernel) {
            Some(out) if out > 0 => Ok(out),
            _ => Err(Error::ZeroSize {
                what: "convolution output side",
            }),
        }
    }

    /// The forward pass over a batch: `x` holds one image a row, its
    /// `side * side * inputs` values pixel by pixel, channel by channel
    /// (further columns, such as the preprocessing's bias feature, are
    /// ignored); `z` becomes the convolution plus the biases, one row an
    /// output pixel (image by image, row by row), one column a filter.
    /// `cache` keeps the unrolled patches for [`backward`](Self::backward).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when the rows of `x` are shorter than
    /// an image, [`Error::ZeroSize`] when the kernel does not fit.
    pub fn forward(
        &self,
        x: ArrayView2<'_, f32>,
        side: usize,
        cache: &mut ConvCache,
        z: &mut Array2<f32>,
    ) -> Result<()> {
        let out = self.output_side(side)?;
        let per = side * side * self.inputs;
        if x.ncols() < per {
            return Err(Error::DimensionMismatch {
                what: "convolution input values per image (side x side x channels)",
                expected: per,
                found: x.ncols(),
            });
        }
        let n = x.nrows();
        im2col(x, side, self, &mut cache.cols);
        cache.images = n;
        cache.side = side;
        fit(z, n * out * out, self.channels());
        product(cache.cols.view(), self.w.view(), z.view_mut());
        // Over the flat buffer: an ndarray row iterator costs more than
        // adding 16 values.
        if let (Some(flat), Some(b)) = (z.as_slice_mut(), self.b.as_slice()) {
            for row in flat.chunks_exact_mut(b.len()) {
                for (v, &b) in row.iter_mut().zip(b) {
                    *v += b;
                }
            }
        }
        Ok(())
    }

    /// The backward pass after [`forward`](Self::forward) with `cache`:
    /// from the gradient `dz` at the output (shaped as the forward pass's
    /// `z`), the weights' gradient into `dw`, the biases' into `db`, and
    /// the gradient at the input into `dx` when given, one row an image as
    /// the forward pass's `x` (without its ignored columns).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `dz` is not shaped as the last
    /// forward pass's output.
    pub fn backward(
        &self,
        cache: &mut ConvCache,
        dz: ArrayView2<'_, f32>,
        dw: &mut Array2<f32>,
        db: &mut Array1<f32>,
        dx: Option<&mut Array2<f32>>,
    ) -> Result<()> {
        if dz.dim() != (cache.cols.nrows(), self.channels()) {
            return Err(Error::DimensionMismatch {
                what: "convolution output gradient rows (output pixels)",
                expected: cache.cols.nrows(),
                found: dz.nrows(),
            });
        }
        fit(dw, self.w.nrows(), self.w.ncols());
        product(cache.cols.t(), dz, dw.view_mut());
        *db = dz.sum_axis(Axis(0));
        if let Some(dx) = dx {
            fit(&mut cache.wt, self.w.ncols(), self.w.nrows());
            cache.wt.assign(&self.w.t());
            fit(&mut cache.dcols, cache.cols.nrows(), cache.cols.ncols());
            product(dz, cache.wt.view(), cache.dcols.view_mut());
            col2im(cache.dcols.view(), cache.images, cache.side, self, dx);
        }
        Ok(())
    }
}

/// Unrolls the `kernel x kernel` patches of the images (rows of `x`) of
/// `side` pixels into `cols`: one row an output pixel, columns in (row,
/// column, channel) order.
fn im2col(x: ArrayView2<'_, f32>, side: usize, conv: &Conv, cols: &mut Array2<f32>) {
    let (k, c) = (conv.kernel, conv.inputs);
    let out = side + 1 - k;
    let width = k * k * c;
    let n = x.nrows();
    fit(cols, n * out * out, width);
    let Some(dst) = cols.as_slice_mut() else {
        return;
    };
    let mut copy = Vec::new();
    for (img, row) in x.rows().into_iter().enumerate() {
        let src = match row.as_slice() {
            Some(src) => src,
            None => {
                copy.clear();
                copy.extend(row.iter().copied());
                &copy[..]
            }
        };
        let dst = &mut dst[img * out * out * width..(img + 1) * out * out * width];
        // Runs of a known length are copied inline; others by `memcpy`.
        match k * c {
            5 => unroll::<5>(dst, src, side, out, k, c),
            80 => unroll::<80>(dst, src, side, out, k, c),
            _ => unroll::<0>(dst, src, side, out, k, c),
        }
    }
}

/// One image's patches: `dst` gets `out * out` rows of `k` runs of
/// `k * c` values (`L` of them when `L` is not 0) from `src`.
fn unroll<const L: usize>(
    dst: &mut [f32],
    src: &[f32],
    side: usize,
    out: usize,
    k: usize,
    c: usize,
) {
    let run = k * c;
    let mut rows = dst.chunks_exact_mut(k * run);
    for oy in 0..out {
        for ox in 0..out {
            let Some(row) = rows.next() else {
                return;
            };
            for (ky, to) in row.chunks_exact_mut(run).enumerate() {
                let from = ((oy + ky) * side + ox) * c;
                let from = &src[from..from + run];
                if L == 0 {
                    to.copy_from_slice(from);
                } else if let (Ok(to), Ok(from)) =
                    (<&mut [f32; L]>::try_from(to), <&[f32; L]>::try_from(from))
                {
                    *to = *from;
                }
            }
        }
    }
}

/// The gradient at a convolution's input, `(n, side * side * inputs)`,
/// from the gradient at its unrolled patches: each patch value added back
/// to the pixel it came from, in a fixed order.
fn col2im(dcols: ArrayView2<'_, f32>, n: usize, side: usize, conv: &Conv, dx: &mut Array2<f32>) {
    let (k, c) = (conv.kernel, conv.inputs);
    let out = side + 1 - k;
    let width = k * k * c;
    fit(dx, n, side * side * c);
    dx.fill(0.0);
    let (Some(src), Some(dst)) = (dcols.as_slice(), dx.as_slice_mut()) else {
        return;
    };
    for img in 0..n {
        for oy in 0..out {
            for ox in 0..out {
                let row = ((img * out + oy) * out + ox) * width;
                for ky in 0..k {
                    let to = ((img * side + oy + ky) * side + ox) * c;
                    let from = row + ky * k * c;
                    for (d, &g) in dst[to..to + k * c].iter_mut().zip(&src[from..from + k * c]) {
                        *d += g;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    pub(in crate::cnn) fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_simple_fn((rows, cols), || rng.gen_range(-1.0f32..1.0))
    }

    fn layer(kernel: usize, inputs: usize, channels: usize) -> Conv {
        let w = random(kernel * kernel * inputs, channels, 1);
        let b = random(1, channels, 2).row(0).to_owned();
        Conv::new(kernel, inputs, w, b).unwrap()
    }

    /// A plain convolution in f64, pixel by pixel, channel by channel:
    /// `(n * out * out, channels)`.
    pub(in crate::cnn) fn reference(x: &Array2<f32>, side: usize, conv: &Conv) -> Array2<f64> {
        let (k, c, f) = (conv.kernel, conv.inputs, conv.channels());
        let out = side - k + 1;
        let mut z = Array2::zeros((x.nrows() * out * out, f));
        for img in 0..x.nrows() {
            for oy in 0..out {
                for ox in 0..out {
                    for filter in 0..f {
                        let mut sum = f64::from(conv.b[filter]);
                        for ky in 0..k {
                            for kx in 0..k {
                                for ch in 0..c {
                                    let v = x[[img, ((oy + ky) * side + ox + kx) * c + ch]];
                                    let w = conv.w[[(ky * k + kx) * c + ch, filter]];
                                    sum += f64::from(v) * f64::from(w);
                                }
                            }
                        }
                        z[[(img * out + oy) * out + ox, filter]] = sum;
                    }
                }
            }
        }
        z
    }

    #[test]
    fn the_forward_pass_matches_nested_loops() {
        // The preset's two shapes (smaller batches), and a ragged one;
        // the first with an ignored column as the pixels' rows have.
        for (side, k, c, f, extra) in [(28, 5, 1, 16, 1), (12, 5, 16, 32, 0), (7, 3, 3, 5, 0)] {
            let conv = layer(k, c, f);
            let x = random(3, side * side * c + extra, 3);
            let (mut cache, mut z) = (ConvCache::default(), Array2::zeros((0, 0)));
            conv.forward(x.view(), side, &mut cache, &mut z).unwrap();
            let want = reference(&x, side, &conv);
            assert_eq!(z.dim(), want.dim());
            ndarray::Zip::from(&z).and(&want).for_each(|&a, &b| {
                assert!((f64::from(a) - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} {b}");
            });
        }
    }

    #[test]
    fn the_backward_pass_matches_finite_differences() {
        // The loss is sum(z * r) for a fixed random r, so dz = r; the
        // layer is linear in each value, so central differences are exact
        // but for rounding.
        let (side, k, c, f, n) = (7, 3, 2, 4, 2);
        let mut conv = layer(k, c, f);
        let mut x = random(n, side * side * c, 4);
        let out = side - k + 1;
        let r = random(n * out * out, f, 5);
        let loss = |conv: &Conv, x: &Array2<f32>| -> f64 {
            let (mut cache, mut z) = (ConvCache::default(), Array2::zeros((0, 0)));
            conv.forward(x.view(), side, &mut cache, &mut z).unwrap();
            z.iter()
                .zip(&r)
                .map(|(&z, &r)| f64::from(z) * f64::from(r))
                .sum()
        };
        let mut cache = ConvCache::default();
        let mut z = Array2::zeros((0, 0));
        conv.forward(x.view(), side, &mut cache, &mut z).unwrap();
        let (mut dw, mut db, mut dx) = (
            Array2::zeros((0, 0)),
            Array1::zeros(0),
            Array2::zeros((0, 0)),
        );
        conv.backward(&mut cache, r.view(), &mut dw, &mut db, Some(&mut dx))
            .unwrap();
        let eps = 1e-2f32;
        let close = |numeric: f64, analytic: f32, what: &str| {
            let analytic = f64::from(analytic);
            assert!(
                (numeric - analytic).abs() < 1e-3 * (1.0 + analytic.abs()),
                "{what}: numeric {numeric}, analytic {analytic}"
            );
        };
        for i in 0..conv.w.nrows() {
            for j in 0..f {
                conv.w[[i, j]] += eps;
                let up = loss(&conv, &x);
                conv.w[[i, j]] -= 2.0 * eps;
                let down = loss(&conv, &x);
                conv.w[[i, j]] += eps;
                close((up - down) / (2.0 * f64::from(eps)), dw[[i, j]], "weight");
            }
        }
        for j in 0..f {
            conv.b[j] += eps;
            let up = loss(&conv, &x);
            conv.b[j] -= 2.0 * eps;
            let down = loss(&conv, &x);
            conv.b[j] += eps;
            close((up - down) / (2.0 * f64::from(eps)), db[j], "bias");
        }
        for img in 0..n {
            for v in 0..side * side * c {
                x[[img, v]] += eps;
                let up = loss(&conv, &x);
                x[[img, v]] -= 2.0 * eps;
                let down = loss(&conv, &x);
                x[[img, v]] += eps;
                close((up - down) / (2.0 * f64::from(eps)), dx[[img, v]], "input");
            }
        }
    }

    #[test]
    fn a_wrong_gradient_shape_is_an_error() {
        let conv = layer(3, 1, 2);
        let x = random(2, 25, 6);
        let (mut cache, mut z) = (ConvCache::default(), Array2::zeros((0, 0)));
        conv.forward(x.view(), 5, &mut cache, &mut z).unwrap();
        let dz = Array2::zeros((z.nrows() + 1, 2));
        let (mut dw, mut db) = (Array2::zeros((0, 0)), Array1::zeros(0));
        assert!(conv
            .backward(&mut cache, dz.view(), &mut dw, &mut db, None)
            .is_err());
        assert!(conv
            .forward(x.view(), 6, &mut cache, &mut z)
            .is_err_and(|e| matches!(e, Error::DimensionMismatch { .. })));
        assert!(conv.output_side(2).is_err());
    }
}
