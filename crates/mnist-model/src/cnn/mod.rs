//! A small convolutional network: square convolutions with ReLU and 2 x 2
//! max-pooling, then dense layers with ReLU, and a softmax head.
//!
//! Activations are kept image by image in height-width-channel order, one
//! row a pixel. The layers are library types with a forward and a backward
//! pass over a part's buffers, and the network's passes are composed from
//! them:
//!
//! - `conv`: [`Conv`], im2col and the register-blocked products of
//!   `crate::gemm` (AVX-512 or AVX2, chosen at run time);
//! - `relu`: [`Relu`]; `maxpool`: [`MaxPool`];
//! - `dense`: the passes of [`Dense`] (the perceptron's layer);
//! - `trainer`: [`CnnTrainer`]; `file`: the JSON model file.
//!
//! A training step splits its batch into parts of [`PART`] images,
//! computes each part's gradient on whichever thread is free, and adds the
//! parts up in their order: the result is the same, bit for bit, for any
//! number of threads.

mod conv;
mod dense;
mod file;
mod maxpool;
mod relu;
mod trainer;

pub use conv::{Conv, ConvCache};
pub use maxpool::{MaxPool, PoolCache};
pub use relu::Relu;
pub use trainer::CnnTrainer;

use ndarray::{s, Array1, Array2, ArrayView2, Zip};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::error::{Error, Result};
use crate::head::Head;
use crate::metrics::{check_labels, ConfusionMatrix, Evaluation};
use crate::mlp::{activate, argmax_rows, Dense};
use crate::parts::{default_threads, run_parts};
use crate::sigmoid::ln;

/// The model-file version of convolutional networks.
pub const CNN_VERSION: u64 = 3;

/// Images in one part of a step: the unit of work handed to a thread, and
/// of the fixed order in which gradients are added up.
pub const PART: usize = 16;

/// A convolutional network over square one-channel images of `side`
/// pixels: convolutions (each with ReLU and 2 x 2 max-pooling), then dense
/// layers (ReLU between them), then a softmax. It takes the rows the
/// post's preprocessing makes (`side * side` pixels and a bias feature,
/// which it does not use).
#[derive(Debug, Clone, PartialEq)]
pub struct Cnn {
    side: usize,
    convs: Vec<Conv>,
    dense: Vec<Dense>,
}

impl Cnn {
    /// A network for images of `side` pixels: a convolution of
    /// `kernel x kernel` for each entry of `channels`, then a dense layer of
    /// `hidden` units if given, then `classes` outputs. Weights are drawn
    /// He-normal (`N(0, 2 / fan_in)`, `1 / fan_in` for the last layer),
    /// biases start at 0.
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for a size of 0 or an image that the
    /// convolutions and poolings shrink to nothing.
    pub fn new<R: Rng + ?Sized>(
        side: usize,
        kernel: usize,
        channels: &[usize],
        hidden: Option<usize>,
        classes: usize,
        rng: &mut R,
    ) -> Result<Self> {
        let mut normal = |rows: usize, cols: usize, var: f32| {
            let std = var.sqrt();
            Array2::from_shape_simple_fn((rows, cols), || {
                let z: f32 = rng.sample(StandardNormal);
                z * std
            })
        };
        let mut convs = Vec::with_capacity(channels.len());
        let (mut s, mut c) = (side, 1);
        for &out in channels {
            if s < kernel + 1 || out == 0 {
                return Err(Error::ZeroSize {
                    what: "image side after the convolutions and poolings",
                });
            }
            let fan_in = kernel * kernel * c;
            let w = normal(fan_in, out, 2.0 / fan_in as f32);
            convs.push(Conv::new(kernel, c, w, Array1::zeros(out))?);
            s = pooled_side(s, kernel);
            c = out;
        }
        let flat = s * s * c;
        let mut dense = Vec::new();
        let mut inputs = flat;
        if let Some(h) = hidden {
            dense.push(Dense::new(
                normal(inputs, h, 2.0 / inputs as f32),
                Array1::zeros(h),
            )?);
            inputs = h;
        }
        dense.push(Dense::new(
            normal(inputs, classes, 1.0 / inputs as f32),
            Array1::zeros(classes),
        )?);
        Self::from_layers(side, convs, dense)
    }

    /// A network from its layers.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when one layer's outputs are not the
    /// next one's inputs, [`Error::ZeroSize`] when the image shrinks to
    /// nothing or there is no dense layer.
    pub fn from_layers(side: usize, convs: Vec<Conv>, dense: Vec<Dense>) -> Result<Self> {
        let (mut s, mut c) = (side, 1);
        for conv in &convs {
            if conv.inputs != c {
                return Err(Error::DimensionMismatch {
                    what: "convolution input channels (the previous layer's filters)",
                    expected: c,
                    found: conv.inputs,
                });
            }
            if s < conv.kernel + 1 {
                return Err(Error::ZeroSize {
                    what: "image side after the convolutions and poolings",
                });
            }
            s = pooled_side(s, conv.kernel);
            c = conv.channels();
        }
        let Some(first) = dense.first() else {
            return Err(Error::ZeroSize {
                what: "dense layers",
            });
        };
        if first.weights().nrows() != s * s * c {
            return Err(Error::DimensionMismatch {
                what: "first dense layer inputs (the last pooling's values)",
                expected: s * s * c,
                found: first.weights().nrows(),
            });
        }
        for pair in dense.windows(2) {
            if pair[0].weights().ncols() != pair[1].weights().nrows() {
                return Err(Error::DimensionMismatch {
                    what: "dense layer inputs (the previous layer's outputs)",
                    expected: pair[0].weights().ncols(),
                    found: pair[1].weights().nrows(),
                });
            }
        }
        Ok(Self { side, convs, dense })
    }

    /// The convolutions, first to last.
    pub fn convs(&self) -> &[Conv] {
        &self.convs
    }

    /// The dense layers, first to last.
    pub fn dense(&self) -> &[Dense] {
        &self.dense
    }

    /// The side of the images.
    pub fn side(&self) -> usize {
        self.side
    }

    /// Inputs per row: the pixels and the preprocessing's bias feature.
    pub fn features(&self) -> usize {
        self.side * self.side + 1
    }

    /// Outputs per row.
    pub fn classes(&self) -> usize {
        self.dense.last().map_or(0, |d| d.weights().ncols())
    }

    /// Weights and biases of every layer, convolutions first, as matrices
    /// and vectors (the shape of optimiser state and checkpoints).
    pub fn parameters(&self) -> Vec<(ArrayView2<'_, f32>, &Array1<f32>)> {
        self.convs
            .iter()
            .map(|c| (c.w.view(), &c.b))
            .chain(self.dense.iter().map(|d| (d.weights(), d.biases())))
            .collect()
    }

    fn parameters_mut(&mut self) -> Vec<(&mut Array2<f32>, &mut Array1<f32>)> {
        self.convs
            .iter_mut()
            .map(|c| (&mut c.w, &mut c.b))
            .chain(self.dense.iter_mut().map(Dense::parts_mut))
            .collect()
    }

    fn check_input(&self, x: &ArrayView2<'_, f32>) -> Result<()> {
        crate::error::check_features(x, self.features())
    }

    /// Softmax probabilities for the rows of `x`, on all cores.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `x` does not have the network's
    /// features.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.check_input(&x)?;
        let mut out = Array2::zeros((x.nrows(), self.classes()));
        self.each_chunk(x, |start, works| {
            for (i, work) in works.iter().enumerate() {
                let first = start + i * PART;
                out.slice_mut(s![first..first + work.p.nrows(), ..])
                    .assign(&work.p);
            }
        })?;
        Ok(out)
    }

    /// The most probable class of each row (ties: the lowest index).
    ///
    /// # Errors
    /// As [`predict_proba`](Self::predict_proba).
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Vec<usize>> {
        Ok(argmax_rows(self.predict_proba(x)?.view()))
    }

    /// Runs the forward pass over `x` in chunks of parts on all cores, and
    /// hands each chunk's first row and parts to `f`, in order.
    fn each_chunk(
        &self,
        x: ArrayView2<'_, f32>,
        mut f: impl FnMut(usize, &[PartWork]),
    ) -> Result<()> {
        // Two parts a thread at a time: enough to keep the threads busy,
        // few enough that the parts' buffers stay small.
        let threads = default_threads();
        let chunk = PART * 2 * threads;
        let mut works: Vec<PartWork> = Vec::new();
        for start in (0..x.nrows()).step_by(chunk) {
            let xs = x.slice(s![start..(start + chunk).min(x.nrows()), ..]);
            let parts = xs.nrows().div_ceil(PART);
            works.resize_with(works.len().max(parts), PartWork::default);
            run_parts(&mut works[..parts], threads, |i, work| {
                work.status = self.forward(xs.slice(s![part_rows(i, xs.nrows()), ..]), work);
            });
            for work in &mut works[..parts] {
                std::mem::replace(&mut work.status, Ok(()))?;
            }
            f(start, &works[..parts]);
        }
        Ok(())
    }

    /// The forward pass over a part's rows, keeping what the backward pass
    /// needs in `work`; the probabilities end in `work.p`. Buffers are
    /// reused from step to step.
    fn forward(&self, x: ArrayView2<'_, f32>, work: &mut PartWork) -> Result<()> {
        let n = x.nrows();
        work.convs.resize_with(self.convs.len(), ConvWork::default);
        work.hidden
            .resize_with(self.dense.len() - 1, || Array2::zeros((0, 0)));
        let mut side = self.side;
        for l in 0..self.convs.len() {
            let conv = &self.convs[l];
            let out = conv.output_side(side)?;
            // The first convolution reads the pixels of the rows (before
            // their bias feature), the others the pooling before them, one
            // row an image.
            let (before, rest) = work.convs.split_at_mut(l);
            let cw = &mut rest[0];
            match before.last() {
                None => conv.forward(x, side, &mut cw.conv, &mut cw.z)?,
                Some(prev) => {
                    let input = image_rows(&prev.pooled, n)?;
                    conv.forward(input, side, &mut cw.conv, &mut cw.z)?;
                }
            }
            Relu.forward(cw.z.view_mut());
            MaxPool.forward(cw.z.view(), out, &mut cw.pool, &mut cw.pooled)?;
            side = out / 2;
        }
        for l in 0..self.dense.len() {
            let layer = &self.dense[l];
            let last = l + 1 == self.dense.len();
            let (done, rest) = work.hidden.split_at_mut(l.min(self.dense.len() - 1));
            let input = match l {
                0 => flat_view(&work.convs, n)?,
                _ => done[l - 1].view(),
            };
            let z = if last { &mut work.p } else { &mut rest[0] };
            layer.forward(input, z)?;
            if last {
                activate(Head::Softmax, z.view_mut());
            } else {
                Relu.forward(z.view_mut());
            }
        }
        Ok(())
    }

    /// The dense layers' weights transposed into `out`, in standard
    /// layout, one array a layer (their backward passes multiply by `W^T`:
    /// each part's product would otherwise copy it).
    fn transpose_dense(&self, out: &mut Vec<Array2<f32>>) {
        out.resize_with(self.dense.len(), || Array2::zeros((0, 0)));
        for (t, layer) in out.iter_mut().zip(&self.dense) {
            let w = layer.weights();
            fit(t, w.ncols(), w.nrows());
            t.assign(&w.t());
        }
    }

    /// The gradient of the part's summed loss times `scale` (one over the
    /// whole batch's rows), into `work.grads` (convolutions first), and the
    /// part's summed loss into `work.loss`. `transposed` holds the dense
    /// layers' weights transposed, in standard layout (made once a step
    /// for all the parts, see [`transpose_dense`](Self::transpose_dense)).
    fn backward(
        &self,
        x: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
        scale: f32,
        work: &mut PartWork,
        transposed: &[Array2<f32>],
    ) -> Result<()> {
        let n = x.nrows();
        let mut loss = 0.0f64;
        Zip::from(&work.p).and(&y).for_each(|&p, &y| {
            if y != 0.0 {
                loss -= f64::from(y) * ln(f64::from(p).max(f64::from(f32::MIN_POSITIVE)));
            }
        });
        work.loss = loss;
        let convs = self.convs.len();
        work.grads.resize_with(convs + self.dense.len(), || {
            (Array2::zeros((0, 0)), Array1::zeros(0))
        });
        work.back
            .resize_with(self.dense.len() + 1, || Array2::zeros((0, 0)));
        // At the logits: (p - y) / batch, into the last gradient buffer.
        let last = self.dense.len();
        fit(&mut work.back[last], n, self.classes());
        Zip::from(&mut work.back[last])
            .and(&work.p)
            .and(&y)
            .for_each(|d, &p, &y| *d = (p - y) * scale);
        for l in (0..self.dense.len()).rev() {
            let layer = &self.dense[l];
            let input = match l {
                0 => flat_view(&work.convs, n)?,
                _ => work.hidden[l - 1].view(),
            };
            let (below, above) = work.back.split_at_mut(l + 1);
            let (gw, gb) = &mut work.grads[convs + l];
            let dx = (&mut below[l], transposed[l].view());
            layer.backward_given(input, above[0].view(), gw, gb, Some(dx))?;
            if l > 0 {
                Relu.backward(input, below[l].view_mut())?;
            }
        }
        // `back[0]` is now the gradient at the last pooling's values, one
        // row an image; the convolutions pass theirs down through `dinput`.
        for l in (0..convs).rev() {
            let conv = &self.convs[l];
            let (here, above) = work.convs.split_at_mut(l + 1);
            let cw = &mut here[l];
            let dpooled = match above.first() {
                None => &work.back[0],
                Some(next) => &next.dinput,
            };
            let dpooled = pixel_rows(dpooled, cw.pooled.ncols())?;
            MaxPool.backward(&cw.pool, dpooled, &mut cw.dz)?;
            Relu.backward(cw.z.view(), cw.dz.view_mut())?;
            let (gw, gb) = &mut work.grads[l];
            let dinput = if l > 0 { Some(&mut cw.dinput) } else { None };
            conv.backward(&mut cw.conv, cw.dz.view(), gw, gb, dinput)?;
        }
        Ok(())
    }
}

/// What one part of a batch keeps between the passes and from step to
/// step (the buffers keep their size, so a step allocates nothing).
#[derive(Debug)]
struct PartWork {
    convs: Vec<ConvWork>,
    /// The dense layers' outputs after ReLU, but the last.
    hidden: Vec<Array2<f32>>,
    /// The probabilities.
    p: Array2<f32>,
    /// The gradients at the dense layers' inputs (`back[l]` at layer
    /// `l`'s), and at the logits (`back[layers]`).
    back: Vec<Array2<f32>>,
    grads: Vec<(Array2<f32>, Array1<f32>)>,
    loss: f64,
    /// How the part's passes ended.
    status: Result<()>,
}

impl Default for PartWork {
    fn default() -> Self {
        Self {
            convs: Vec::new(),
            hidden: Vec::new(),
            p: Array2::zeros((0, 0)),
            back: Vec::new(),
            grads: Vec::new(),
            loss: 0.0,
            status: Ok(()),
        }
    }
}

/// One convolution's values for a part.
#[derive(Debug, Default)]
struct ConvWork {
    /// The convolution's unrolled patches and scratch.
    conv: ConvCache,
    /// The output after ReLU, one row a pixel.
    z: Array2<f32>,
    /// The pooling's record of where its maxima were.
    pool: PoolCache,
    /// After pooling, one row a pixel.
    pooled: Array2<f32>,
    /// The gradient at `z`.
    dz: Array2<f32>,
    /// The gradient at the input (the previous pooling's values), one row
    /// an image.
    dinput: Array2<f32>,
}

/// Gives `a` the shape `(rows, cols)`, keeping its buffer when it has it
/// already; the values are to be overwritten.
fn fit(a: &mut Array2<f32>, rows: usize, cols: usize) {
    if a.dim() != (rows, cols) {
        *a = Array2::zeros((rows, cols));
    }
}

/// `a` (standard layout) seen with `cols` columns.
fn reshaped(a: &Array2<f32>, cols: usize) -> Result<ArrayView2<'_, f32>> {
    let flat = a.as_slice().unwrap_or(&[]);
    let rows = flat.len().checked_div(cols).unwrap_or(0);
    ArrayView2::from_shape((rows, cols), flat).map_err(|_| Error::DimensionMismatch {
        what: "values of a layer's buffer",
        expected: rows * cols,
        found: flat.len(),
    })
}

/// A pooling's values (one row a pixel), one row an image of `n`.
fn image_rows(pooled: &Array2<f32>, n: usize) -> Result<ArrayView2<'_, f32>> {
    reshaped(pooled, pooled.len().checked_div(n).unwrap_or(0))
}

/// A gradient with one row an image, one row a pixel of `channels`.
fn pixel_rows(a: &Array2<f32>, channels: usize) -> Result<ArrayView2<'_, f32>> {
    reshaped(a, channels)
}

/// The last pooling's values of the `n` images, one row an image.
fn flat_view(convs: &[ConvWork], n: usize) -> Result<ArrayView2<'_, f32>> {
    match convs.last() {
        Some(c) => image_rows(&c.pooled, n),
        None => Err(Error::ZeroSize {
            what: "convolutions",
        }),
    }
}

/// The side of an image of `side` pixels after a convolution of `kernel`
/// and a 2 x 2 pooling (an odd side is floored).
fn pooled_side(side: usize, kernel: usize) -> usize {
    let convolved = side - kernel + 1;
    convolved / 2
}

/// The rows of part `i` of `n` rows.
fn part_rows(i: usize, n: usize) -> std::ops::Range<usize> {
    i * PART..((i + 1) * PART).min(n)
}

/// Loss (softmax cross-entropy), accuracy and confusion matrix of `model`
/// on the rows of `x` with true `labels`, on all cores.
///
/// # Errors
/// [`Error::DimensionMismatch`] for inputs of the wrong width or a label
/// count that is not one per row, [`Error::LabelOutOfRange`] for a label
/// that is not a class.
pub fn evaluate_cnn(model: &Cnn, x: ArrayView2<'_, f32>, labels: &[u8]) -> Result<Evaluation> {
    model.check_input(&x)?;
    let classes = model.classes();
    check_labels(labels, x.nrows(), classes)?;
    let mut predicted = Vec::with_capacity(labels.len());
    let mut loss_sum = 0.0f64;
    model.each_chunk(x, |start, works| {
        for (i, work) in works.iter().enumerate() {
            let first = start + i * PART;
            for (row, p) in work.p.rows().into_iter().enumerate() {
                let label = usize::from(labels[first + row]);
                loss_sum -= ln(f64::from(p[label]).max(f64::from(f32::MIN_POSITIVE)));
            }
            predicted.extend(argmax_rows(work.p.view()));
        }
    })?;
    let confusion = ConfusionMatrix::from_predictions(classes, labels, &predicted)?;
    Ok(Evaluation {
        loss: loss_sum / labels.len().max(1) as f64,
        accuracy: confusion.accuracy(),
        confusion,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A tiny network: 8 x 8 images, 3 x 3 kernels, 2 then 3 filters,
    /// 4 hidden units, 3 classes.
    fn tiny() -> Cnn {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        Cnn::new(10, 3, &[2, 3], Some(4), 3, &mut rng).unwrap()
    }

    /// `n` random rows of `side * side` pixels in [-0.5, 0.5] and a bias of
    /// 1, with one-hot targets.
    fn batch(n: usize, side: usize, classes: usize, seed: u64) -> (Array2<f32>, Array2<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, side * side + 1), |(_, c)| {
            if c == side * side {
                1.0
            } else {
                rng.gen_range(-0.5..0.5)
            }
        });
        let y = Array2::from_shape_fn((n, classes), |(r, c)| f32::from(u8::from(r % classes == c)));
        (x, y)
    }

    /// The mean loss of `net` on the batch, in f64 from the forward pass.
    fn loss(net: &Cnn, x: &Array2<f32>, y: &Array2<f32>) -> f64 {
        let mut work = PartWork::default();
        net.forward(x.view(), &mut work).unwrap();
        let mut total = 0.0;
        Zip::from(&work.p).and(y).for_each(|&p, &y| {
            if y != 0.0 {
                total -= ln(f64::from(p));
            }
        });
        total / x.nrows() as f64
    }

    /// A plain convolution, pixel by pixel, channel by channel, for one
    /// image given as (row, column, channel).
    fn direct_conv(input: &[f32], side: usize, conv: &Conv) -> Vec<f32> {
        let image = Array2::from_shape_vec((1, input.len()), input.to_vec()).expect("one row");
        conv::tests::reference(&image, side, conv)
            .iter()
            .map(|&v| v as f32)
            .collect()
    }

    #[test]
    fn the_unrolled_convolution_matches_a_direct_one() {
        let net = tiny();
        let (x, _) = batch(3, 10, 3, 1);
        let mut work = PartWork::default();
        net.forward(x.view(), &mut work).unwrap();
        let conv = &net.convs[0];
        for img in 0..3 {
            let input: Vec<f32> = x.row(img).iter().take(100).copied().collect();
            let direct = direct_conv(&input, 10, conv);
            let rows = 8 * 8;
            let ours = work.convs[0].z.slice(s![img * rows..(img + 1) * rows, ..]);
            for (&a, &b) in ours.iter().zip(&direct) {
                // Ours is after ReLU.
                assert!((a - b.max(0.0)).abs() < 1e-5, "{a} {b}");
            }
        }
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let mut net = tiny();
        let (x, y) = batch(5, 10, 3, 2);
        let mut work = PartWork::default();
        net.forward(x.view(), &mut work).unwrap();
        let mut transposed = Vec::new();
        net.transpose_dense(&mut transposed);
        net.backward(x.view(), y.view(), 1.0 / 5.0, &mut work, &transposed)
            .unwrap();
        let grads = work.grads.clone();
        let eps = 1e-3f32;
        let layers = net.parameters().len();
        for layer in 0..layers {
            for probe in 0..4 {
                let (gw, gb) = &grads[layer];
                let (rows, cols) = gw.dim();
                let (r, c) = ((probe * 7) % rows, (probe * 3) % cols);
                let analytic = f64::from(gw[[r, c]]);
                let mut params = net.parameters_mut();
                params[layer].0[[r, c]] += eps;
                drop(params);
                let up = loss(&net, &x, &y);
                net.parameters_mut()[layer].0[[r, c]] -= 2.0 * eps;
                let down = loss(&net, &x, &y);
                net.parameters_mut()[layer].0[[r, c]] += eps;
                let numeric = (up - down) / (2.0 * f64::from(eps));
                assert!(
                    (numeric - analytic).abs() < 2e-3 + 2e-2 * analytic.abs(),
                    "layer {layer} weight ({r}, {c}): numeric {numeric}, analytic {analytic}"
                );
                let c = probe % gb.len();
                // (A bias moves every pixel of its filter: a step small
                // enough not to cross ReLU and pooling kinks.)
                let analytic = f64::from(gb[c]);
                net.parameters_mut()[layer].1[c] += eps;
                let up = loss(&net, &x, &y);
                net.parameters_mut()[layer].1[c] -= 2.0 * eps;
                let down = loss(&net, &x, &y);
                net.parameters_mut()[layer].1[c] += eps;
                let numeric = (up - down) / (2.0 * f64::from(eps));
                assert!(
                    (numeric - analytic).abs() < 2e-3 + 2e-2 * analytic.abs(),
                    "layer {layer} bias {c}: numeric {numeric}, analytic {analytic}"
                );
            }
        }
    }

    #[test]
    fn any_number_of_threads_gives_the_same_bits() {
        let (x, y) = batch(3 * PART + 5, 10, 3, 3);
        let trained: Vec<Cnn> = [1, 2, 3, 8]
            .into_iter()
            .map(|threads| {
                let mut net = tiny();
                let mut trainer = CnnTrainer::new(&net, 0.9, 1e-3)
                    .unwrap()
                    .with_threads(threads);
                for _ in 0..3 {
                    trainer.step(&mut net, x.view(), y.view(), 0.05).unwrap();
                }
                net
            })
            .collect();
        let bits = |net: &Cnn| -> Vec<u32> {
            net.parameters()
                .iter()
                .flat_map(|(w, b)| {
                    w.iter()
                        .chain(b.iter())
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        assert_ne!(
            bits(&trained[0]),
            bits(&tiny()),
            "the steps changed the weights"
        );
        for other in &trained[1..] {
            assert_eq!(bits(other), bits(&trained[0]));
        }
    }

    #[test]
    fn learns_a_separable_problem_and_evaluates_it() {
        // The class is the pattern: stripes across, stripes down, or a
        // checkerboard.
        let n = 96;
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
        let x = Array2::from_shape_fn((n, 101), |(r, c)| {
            if c == 100 {
                return 1.0;
            }
            let (row, col) = (c / 10, c % 10);
            let on = match labels[r] {
                0 => row % 2 == 0,
                1 => col % 2 == 0,
                _ => (row + col) % 2 == 0,
            };
            let noise: f32 = rng.gen_range(-0.1..0.1);
            if on {
                0.5 + noise
            } else {
                -0.5 + noise
            }
        });
        let y = Array2::from_shape_fn((n, 3), |(r, c)| {
            f32::from(u8::from(usize::from(labels[r]) == c))
        });
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut net = Cnn::new(10, 3, &[4, 8], Some(16), 3, &mut rng).unwrap();
        let mut trainer = CnnTrainer::new(&net, 0.9, 0.0).unwrap();
        for _ in 0..40 {
            trainer.step(&mut net, x.view(), y.view(), 0.01).unwrap();
        }
        let eval = evaluate_cnn(&net, x.view(), &labels).unwrap();
        assert_eq!(eval.accuracy, 1.0, "loss {}", eval.loss);
        assert_eq!(net.predict(x.view()).unwrap()[..3], [0, 1, 2]);
    }

    #[test]
    fn json_round_trips_bit_for_bit_and_rejects_bad_files() {
        let net = tiny();
        let text = net.to_json_string();
        assert_eq!(Cnn::from_json_str(&text).unwrap(), net);
        let bad = text.replace("\"kernel\":3", "\"kernel\":4");
        let err = Cnn::from_json_str(&bad).err().map(|e| e.to_string());
        assert!(
            err.is_some_and(|e| e.contains("convolution 0")),
            "{bad:.80}"
        );
        let err = Cnn::from_json_str(&text.replace("\"side\":10", "\"side\":4"))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("image side")));
    }
}
