//! 2 x 2 max-pooling, stride 2, over images kept one row a pixel, one
//! column a channel.

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};

use super::fit;

/// 2 x 2 max-pooling with stride 2; an odd side is floored, as PyTorch
/// does. Of equal values the first (in row, then column order) wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaxPool;

/// Where each pooled value of a [`MaxPool`]'s last forward pass came from,
/// for its backward pass; reused from call to call.
#[derive(Debug, Default, Clone)]
pub struct PoolCache {
    /// For each pooled value, its index in the input.
    arg: Vec<u32>,
    /// The input's shape: rows and channels.
    rows: usize,
    channels: usize,
}

impl MaxPool {
    /// The forward pass: `z` holds images of `side x side` pixels, one row
    /// a pixel (image by image, row by row), one column a channel; `out`
    /// becomes the pooled images of `side / 2` pixels, laid out alike.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when the rows of `z` are not whole
    /// images, [`Error::ZeroSize`] for a side under 2.
    pub fn forward(
        &self,
        z: ArrayView2<'_, f32>,
        side: usize,
        cache: &mut PoolCache,
        out: &mut Array2<f32>,
    ) -> Result<()> {
        let half = side / 2;
        if half == 0 {
            return Err(Error::ZeroSize {
                what: "pooled side",
            });
        }
        let pixels = side * side;
        if !z.nrows().is_multiple_of(pixels) {
            return Err(Error::DimensionMismatch {
                what: "pooling input rows (a multiple of side x side)",
                expected: z.nrows().div_ceil(pixels) * pixels,
                found: z.nrows(),
            });
        }
        let n = z.nrows() / pixels;
        let c = z.ncols();
        fit(out, n * half * half, c);
        cache.arg.clear();
        cache.arg.resize(n * half * half * c, 0);
        cache.rows = z.nrows();
        cache.channels = c;
        let owned;
        let src = match z.as_slice() {
            Some(src) => src,
            None => {
                owned = z.as_standard_layout().into_owned();
                owned.as_slice().unwrap_or(&[])
            }
        };
        let Some(dst) = out.as_slice_mut() else {
            return Ok(());
        };
        for img in 0..n {
            for py in 0..half {
                for px in 0..half {
                    let to = ((img * half + py) * half + px) * c;
                    let top = ((img * side + 2 * py) * side + 2 * px) * c;
                    let corners = [top, top + c, top + side * c, top + side * c + c];
                    for ch in 0..c {
                        let mut best = f32::NEG_INFINITY;
                        let mut at = corners[0] + ch;
                        for corner in corners {
                            let i = corner + ch;
                            if src[i] > best {
                                best = src[i];
                                at = i;
                            }
                        }
                        dst[to + ch] = best;
                        cache.arg[to + ch] = at as u32;
                    }
                }
            }
        }
        Ok(())
    }

    /// The backward pass after [`forward`](Self::forward) with `cache`:
    /// `dz` becomes the gradient at the input, each pooled value's gradient
    /// `dout` at the pixel it came from and 0 elsewhere.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `dout` is not shaped as the last
    /// forward pass's output.
    pub fn backward(
        &self,
        cache: &PoolCache,
        dout: ArrayView2<'_, f32>,
        dz: &mut Array2<f32>,
    ) -> Result<()> {
        if dout.len() != cache.arg.len() || dout.ncols() != cache.channels {
            return Err(Error::DimensionMismatch {
                what: "pooling output gradient values",
                expected: cache.arg.len(),
                found: dout.len(),
            });
        }
        fit(dz, cache.rows, cache.channels);
        dz.fill(0.0);
        let Some(flat) = dz.as_slice_mut() else {
            return Ok(());
        };
        for (&at, &g) in cache.arg.iter().zip(dout.iter()) {
            flat[at as usize] = g;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cnn::conv::tests::random;

    #[test]
    fn the_forward_pass_matches_nested_loops() {
        for (side, c) in [(24, 16), (7, 3)] {
            let n = 2;
            let z = random(n * side * side, c, 1);
            let (mut cache, mut out) = (PoolCache::default(), Array2::zeros((0, 0)));
            MaxPool
                .forward(z.view(), side, &mut cache, &mut out)
                .unwrap();
            let half = side / 2;
            assert_eq!(out.dim(), (n * half * half, c));
            for img in 0..n {
                for py in 0..half {
                    for px in 0..half {
                        for ch in 0..c {
                            let mut best = f32::NEG_INFINITY;
                            for dy in 0..2 {
                                for dx in 0..2 {
                                    let row = (img * side + 2 * py + dy) * side + 2 * px + dx;
                                    best = best.max(z[[row, ch]]);
                                }
                            }
                            assert_eq!(out[[(img * half + py) * half + px, ch]], best);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_backward_pass_matches_finite_differences() {
        let (n, side, c) = (2, 6, 3);
        let mut z = random(n * side * side, c, 2);
        let r = random(n * 9, c, 3);
        let loss = |z: &Array2<f32>| -> f64 {
            let (mut cache, mut out) = (PoolCache::default(), Array2::zeros((0, 0)));
            MaxPool
                .forward(z.view(), side, &mut cache, &mut out)
                .unwrap();
            out.iter()
                .zip(&r)
                .map(|(&o, &r)| f64::from(o) * f64::from(r))
                .sum()
        };
        let (mut cache, mut out, mut dz) = (
            PoolCache::default(),
            Array2::zeros((0, 0)),
            Array2::zeros((0, 0)),
        );
        MaxPool
            .forward(z.view(), side, &mut cache, &mut out)
            .unwrap();
        MaxPool.backward(&cache, r.view(), &mut dz).unwrap();
        // Random values: the nearest tie is far further than the step.
        let eps = 1e-4f32;
        for i in 0..z.nrows() {
            for j in 0..c {
                z[[i, j]] += eps;
                let up = loss(&z);
                z[[i, j]] -= 2.0 * eps;
                let down = loss(&z);
                z[[i, j]] += eps;
                let numeric = (up - down) / (2.0 * f64::from(eps));
                let analytic = f64::from(dz[[i, j]]);
                assert!((numeric - analytic).abs() < 1e-2, "{numeric} {analytic}");
            }
        }
        assert!(MaxPool
            .backward(&cache, dz.view(), &mut out)
            .is_err_and(|e| matches!(e, Error::DimensionMismatch { .. })));
    }
}
