//! Beyond the post: a network with an optional hidden ReLU layer and a
//! sigmoid or softmax head, trained by SGD with momentum and weight decay.
//!
//! With no hidden layer and the softmax head this is multinomial logistic
//! regression; with a hidden layer, a two-layer perceptron. The post's own
//! model stays [`LinearModel`](crate::LinearModel) with its fused kernels;
//! this one is built on matrix products.
//!
//! - this module: the layers ([`Dense`]), the network ([`Mlp`]), its
//!   forward pass, predictions and [`evaluate_mlp`];
//! - `trainer`: [`MlpTrainer`], SGD with momentum on every core, the same
//!   bits for any number of threads;
//! - `file`: the JSON model file.

mod file;
mod trainer;

pub(crate) use file::parse_layer;
pub use file::NETWORK_VERSION;
pub use trainer::MlpTrainer;

use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2, Zip};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::error::{Error, Result};
use crate::gemm::product;
use crate::head::Head;
use crate::kernel;
use crate::loss::PROB_CLIP;
use crate::metrics::{check_labels, ConfusionMatrix, Evaluation};
use crate::parts::{default_threads, run_parts};
use crate::sigmoid::ln;

/// One fully connected layer: `x W + b`, `W` of shape `(inputs, outputs)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    w: Array2<f32>,
    b: Array1<f32>,
}

impl Dense {
    /// A layer from its weights and biases.
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for an empty dimension,
    /// [`Error::DimensionMismatch`] when the biases do not match the
    /// outputs, [`Error::NonFiniteWeight`] for a NaN or infinite value.
    pub fn new(w: Array2<f32>, b: Array1<f32>) -> Result<Self> {
        let (inputs, outputs) = w.dim();
        if inputs == 0 || outputs == 0 {
            return Err(Error::ZeroSize {
                what: "layer inputs and outputs",
            });
        }
        if b.len() != outputs {
            return Err(Error::DimensionMismatch {
                what: "layer biases",
                expected: outputs,
                found: b.len(),
            });
        }
        if let Some(((feature, class), &value)) = w.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteWeight {
                feature,
                class,
                value,
            });
        }
        if let Some((class, &value)) = b.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteWeight {
                feature: inputs,
                class,
                value,
            });
        }
        Ok(Self { w, b })
    }

    /// The weights, `(inputs, outputs)`.
    pub fn weights(&self) -> ArrayView2<'_, f32> {
        self.w.view()
    }

    /// The biases, one per output.
    pub fn biases(&self) -> &Array1<f32> {
        &self.b
    }

    fn outputs(&self) -> usize {
        self.w.ncols()
    }

    /// The weights and the biases, taken apart.
    pub(crate) fn into_parts(self) -> (Array2<f32>, Array1<f32>) {
        (self.w, self.b)
    }

    /// The weights and the biases, to update.
    pub(crate) fn parts_mut(&mut self) -> (&mut Array2<f32>, &mut Array1<f32>) {
        (&mut self.w, &mut self.b)
    }

    /// `out = x W + b`, then `max(0, out)` when `relu`, in one pass after
    /// the product.
    fn forward_into(&self, x: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>, relu: bool) {
        product(x, self.w.view(), out.view_mut());
        // Compiled for the kernels' instruction set, as `activate` is.
        kernel::compiled_for(
            kernel::path(),
            #[inline(always)]
            || {
                Zip::from(out.rows_mut()).for_each(|mut row| {
                    Zip::from(&mut row).and(&self.b).for_each(|v, &b| {
                        let z = *v + b;
                        *v = if relu { z.max(0.0) } else { z };
                    })
                })
            },
        );
    }
}

/// A network: an optional hidden ReLU layer, then an output layer and a
/// [`Head`].
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    layers: Vec<Dense>,
    head: Head,
}

impl Mlp {
    /// A network for `features` inputs and `classes` outputs, with a hidden
    /// ReLU layer of `hidden` units if given.
    ///
    /// The hidden layer starts from He-style `N(0, 2 / features)` weights
    /// and the output layer behind it from `N(0, 1 / hidden)`; biases start
    /// at 0. Without a hidden layer the output weights start at 0 (`zeros`)
    /// or from `N(0, 1)` as in the post. The same `rng` state gives the same
    /// weights, bit for bit.
    ///
    /// # Errors
    /// [`Error::ZeroSize`] when a size is 0.
    pub fn new<R: Rng + ?Sized>(
        features: usize,
        hidden: Option<usize>,
        classes: usize,
        head: Head,
        zeros: bool,
        rng: &mut R,
    ) -> Result<Self> {
        if features == 0 || classes == 0 || hidden == Some(0) {
            return Err(Error::ZeroSize {
                what: "features, hidden units and classes",
            });
        }
        let mut normal = |rows: usize, cols: usize, std: f32| {
            Array2::from_shape_simple_fn((rows, cols), || {
                let z: f32 = rng.sample(StandardNormal);
                z * std
            })
        };
        let layers = match hidden {
            Some(h) => vec![
                Dense::new(
                    normal(features, h, (2.0 / features as f32).sqrt()),
                    Array1::zeros(h),
                )?,
                Dense::new(
                    normal(h, classes, (1.0 / h as f32).sqrt()),
                    Array1::zeros(classes),
                )?,
            ],
            None if zeros => vec![Dense::new(
                Array2::zeros((features, classes)),
                Array1::zeros(classes),
            )?],
            None => vec![Dense::new(
                normal(features, classes, 1.0),
                Array1::zeros(classes),
            )?],
        };
        Ok(Self { layers, head })
    }

    /// A network from its layers, first to last.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no layers or more than two,
    /// [`Error::DimensionMismatch`] when one layer's outputs are not the next
    /// one's inputs.
    pub fn from_layers(layers: Vec<Dense>, head: Head) -> Result<Self> {
        if layers.is_empty() || layers.len() > 2 {
            return Err(Error::InvalidParameter {
                name: "number of layers",
                value: layers.len().to_string(),
                reason: "a network has one layer, or two (a hidden layer and the output)",
            });
        }
        for pair in layers.windows(2) {
            if pair[0].outputs() != pair[1].w.nrows() {
                return Err(Error::DimensionMismatch {
                    what: "layer inputs (the previous layer's outputs)",
                    expected: pair[0].outputs(),
                    found: pair[1].w.nrows(),
                });
            }
        }
        Ok(Self { layers, head })
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// The head.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Inputs per sample.
    pub fn features(&self) -> usize {
        self.layers[0].w.nrows()
    }

    /// Outputs per sample.
    pub fn classes(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs()
    }

    /// Units of the hidden layer, if there is one.
    pub fn hidden(&self) -> Option<usize> {
        (self.layers.len() == 2).then(|| self.layers[0].outputs())
    }

    fn check_input(&self, x: &ArrayView2<'_, f32>) -> Result<()> {
        crate::error::check_features(x, self.features())
    }

    /// Class probabilities for the rows of `x`.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `x` does not have the model's
    /// features.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.check_input(&x)?;
        let mut work = Work::default();
        let p = self.forward(x, &mut work);
        Ok(p.to_owned())
    }

    /// The most probable class of each row (ties: the lowest index).
    ///
    /// # Errors
    /// As [`predict_proba`](Self::predict_proba).
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Vec<usize>> {
        Ok(argmax_rows(self.predict_proba(x)?.view()))
    }

    /// Forward pass into `work`; returns the probabilities, `rows x classes`.
    fn forward<'w>(&self, x: ArrayView2<'_, f32>, work: &'w mut Work) -> ArrayView2<'w, f32> {
        let rows = x.nrows();
        work.fit(rows, self.hidden().unwrap_or(0), self.classes());
        let z_out = match self.layers.as_slice() {
            [hidden, out] => {
                let mut h = work.h.slice_mut(s![..rows, ..]);
                hidden.forward_into(x, h.view_mut(), true);
                let mut z = work.p.slice_mut(s![..rows, ..]);
                out.forward_into(work.h.slice(s![..rows, ..]), z.view_mut(), false);
                z
            }
            [out] => {
                let mut z = work.p.slice_mut(s![..rows, ..]);
                out.forward_into(x, z.view_mut(), false);
                z
            }
            _ => unreachable!("constructors allow one or two layers"),
        };
        activate(self.head, z_out);
        work.p.slice(s![..rows, ..])
    }

    /// Loss of probabilities `p` against one-hot `y`: mean over the rows.
    fn loss(&self, p: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> f64 {
        self.loss_sum(p, y) / p.nrows().max(1) as f64
    }

    /// Loss of probabilities `p` against one-hot `y`: sum over the rows,
    /// added row by row.
    fn loss_sum(&self, p: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> f64 {
        let mut total = 0.0f64;
        match self.head {
            Head::Sigmoid => Zip::from(&p).and(&y).for_each(|&p, &y| {
                let p = f64::from(p).clamp(PROB_CLIP, 1.0 - PROB_CLIP);
                let y = f64::from(y);
                total -= y * ln(p) + (1.0 - y) * ln(1.0 - p);
            }),
            Head::Softmax => Zip::from(&p).and(&y).for_each(|&p, &y| {
                if y != 0.0 {
                    total -= f64::from(y) * ln(f64::from(p).max(f64::from(f32::MIN_POSITIVE)));
                }
            }),
        }
        total
    }
}

/// Applies the head to the logits in place, by the crate's own logistic
/// function and exponential ([`Head::activate_rows`]): the same bits on
/// every platform, whatever the C library's `expf` (an `f32` exponential
/// differs between C libraries, and glibc picks one of two by whether the
/// CPU has FMA). Compiled for the kernels' instruction set
/// ([`kernel::compiled_for`]): for the baseline x86-64, each of the
/// exponential's fused multiply-adds was a call to the `fma` routine (2% of
/// an MLP run's time on an AVX-512 machine).
pub(crate) fn activate(head: Head, mut z: ArrayViewMut2<'_, f32>) {
    kernel::compiled_for(
        kernel::path(),
        #[inline(always)]
        || {
            let classes = z.ncols();
            if let Some(values) = z.as_slice_mut() {
                head.activate_rows(values, classes);
                return;
            }
            let mut values = Vec::with_capacity(classes);
            for mut row in z.rows_mut() {
                values.clear();
                values.extend(row.iter().copied());
                head.activate_rows(&mut values, classes);
                for (v, &a) in row.iter_mut().zip(&values) {
                    *v = a;
                }
            }
        },
    )
}

pub(crate) fn argmax_rows(p: ArrayView2<'_, f32>) -> Vec<usize> {
    p.rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv {
                        (i, v)
                    } else {
                        (bi, bv)
                    }
                })
                .0
        })
        .collect()
}

/// Buffers of a forward pass, grown once and reused.
#[derive(Debug, Default)]
struct Work {
    /// Hidden activations, `rows x hidden`.
    h: Array2<f32>,
    /// Probabilities (first the logits), `rows x classes`.
    p: Array2<f32>,
}

impl Work {
    fn fit(&mut self, rows: usize, hidden: usize, classes: usize) {
        if self.p.nrows() < rows || self.p.ncols() != classes || self.h.ncols() != hidden {
            self.h = Array2::zeros((rows, hidden));
            self.p = Array2::zeros((rows, classes));
        }
    }
}

/// Loss, accuracy and confusion matrix of `model` on the rows of `x` with
/// true `labels`, in chunks.
///
/// # Errors
/// [`Error::DimensionMismatch`] for inputs of the wrong width or a label
/// count that is not one per row, [`Error::LabelOutOfRange`] for a label
/// that is not a class.
pub fn evaluate_mlp(model: &Mlp, x: ArrayView2<'_, f32>, labels: &[u8]) -> Result<Evaluation> {
    model.check_input(&x)?;
    let classes = model.classes();
    check_labels(labels, x.nrows(), classes)?;
    // Chunks of fixed rows, two a thread at a time, each with its own
    // buffers; their losses and predictions taken in order, so the
    // threads change nothing.
    const CHUNK: usize = 1024;
    let threads = default_threads();
    let mut chunks: Vec<EvalChunk> = Vec::new();
    let mut predicted = Vec::with_capacity(labels.len());
    let mut loss_sum = 0.0;
    for first in (0..x.nrows()).step_by(CHUNK * 2 * threads) {
        let rows = (x.nrows() - first).min(CHUNK * 2 * threads);
        let count = rows.div_ceil(CHUNK);
        chunks.resize_with(chunks.len().max(count), EvalChunk::default);
        run_parts(&mut chunks[..count], threads, |i, chunk| {
            let start = first + i * CHUNK;
            let end = (start + CHUNK).min(first + rows);
            chunk.evaluate(model, x.slice(s![start..end, ..]), &labels[start..end]);
        });
        for chunk in &chunks[..count] {
            loss_sum += chunk.loss;
            predicted.extend_from_slice(&chunk.predicted);
        }
    }
    let confusion = ConfusionMatrix::from_predictions(classes, labels, &predicted)?;
    Ok(Evaluation {
        loss: loss_sum / labels.len().max(1) as f64,
        accuracy: confusion.accuracy(),
        confusion,
    })
}

/// The buffers and results of one chunk of [`evaluate_mlp`].
#[derive(Debug, Default)]
struct EvalChunk {
    work: Work,
    y: Array2<f32>,
    /// The loss summed over the chunk's rows.
    loss: f64,
    predicted: Vec<usize>,
}

impl EvalChunk {
    fn evaluate(&mut self, model: &Mlp, x: ArrayView2<'_, f32>, labels: &[u8]) {
        let rows = x.nrows();
        self.y = Array2::zeros((rows, model.classes()));
        for (mut y, &l) in self.y.rows_mut().into_iter().zip(labels) {
            y[usize::from(l)] = 1.0;
        }
        let p = model.forward(x, &mut self.work);
        self.loss = model.loss(p, self.y.view()) * rows as f64;
        self.predicted = argmax_rows(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_gives_the_same_bits_to_strided_and_contiguous_logits() {
        // Logits wide apart, small and large, so that the softmax's sum
        // and maximum matter; every other column of a wider array is a
        // strided view.
        let z = Array2::from_shape_fn((7, 10), |(r, c)| {
            ((r * 10 + c) as f32 * 0.37).sin() * (1.0 + 20.0 * r as f32)
        });
        for head in [Head::Softmax, Head::Sigmoid] {
            let mut contiguous = z.clone();
            activate(head, contiguous.view_mut());
            // The linear models' head, not the C library's `expf`.
            let mut rows = z.as_slice().expect("standard layout").to_vec();
            head.activate_rows(&mut rows, 10);
            assert_eq!(contiguous.as_slice().expect("standard layout"), &rows[..]);
            let mut wide = Array2::zeros((7, 20));
            wide.slice_mut(s![.., ..;2]).assign(&z);
            let mut strided = wide.slice_mut(s![.., ..;2]);
            assert!(strided.as_slice_mut().is_none());
            activate(head, strided.view_mut());
            let same = contiguous
                .iter()
                .zip(strided.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{head}");
        }
    }

    #[test]
    fn three_layers_are_refused_by_count() {
        let layer = |n: usize| Dense::new(Array2::zeros((n, n)), Array1::zeros(n));
        let layers = vec![layer(2).unwrap(), layer(2).unwrap(), layer(2).unwrap()];
        let err = Mlp::from_layers(layers, Head::Softmax)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid number of layers 3: a network has one layer, or two (a hidden layer \
                 and the output)"
            )
        );
    }

    #[test]
    fn softmax_rows_sum_to_one_even_for_huge_logits() {
        let w = Array2::from_shape_vec((1, 3), vec![1000.0f32, -1000.0, 0.0]).unwrap();
        let m = Mlp::from_layers(
            vec![Dense::new(w, Array1::zeros(3)).unwrap()],
            Head::Softmax,
        )
        .unwrap();
        let p = m
            .predict_proba(ndarray::array![[1.0f32], [-1.0]].view())
            .unwrap();
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-6);
            assert!(row.iter().all(|v| v.is_finite()));
        }
        assert_eq!(m.predict(ndarray::array![[1.0f32]].view()).unwrap(), [0]);
    }

    /// Chunks of rows evaluated on the threads give the loss and the
    /// confusion of the whole set, taken in order.
    #[test]
    fn evaluation_in_chunks_is_the_whole_evaluation() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let model = Mlp::new(6, Some(64), 4, Head::Softmax, false, &mut rng).unwrap();
        let n = 2 * 1024 + 300;
        let x = Array2::from_shape_fn((n, 6), |(r, c)| ((r * 7 + c * 3) % 11) as f32 / 5.0 - 1.0);
        let labels: Vec<u8> = (0..n).map(|r| (r % 4) as u8).collect();
        let e = evaluate_mlp(&model, x.view(), &labels).unwrap();
        let p = model.predict_proba(x.view()).unwrap();
        let predicted = argmax_rows(p.view());
        let want = ConfusionMatrix::from_predictions(4, &labels, &predicted).unwrap();
        assert_eq!(e.confusion, want);
        let loss = labels
            .iter()
            .zip(p.rows())
            .map(|(&l, p)| -ln(f64::from(p[usize::from(l)])))
            .sum::<f64>()
            / n as f64;
        assert!((e.loss - loss).abs() < 1e-6, "{} vs {loss}", e.loss);
    }
}
