//! The model: one linear layer followed by an activation.

use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::aligned::Floats;
use crate::error::{Error, Result};
use crate::head::Head;
use crate::kernel;
use crate::rows::RowSource;

/// How [`LinearModel::new`] fills the weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Independent draws from `N(0, std^2)`, in row-major order
    /// (feature by feature, class by class within a feature).
    Normal {
        /// Standard deviation; finite and non-negative.
        std: f32,
    },
    /// All zeros.
    Zeros,
}

impl Default for Init {
    /// The post's `N(0, 1)`.
    fn default() -> Self {
        Init::Normal { std: 1.0 }
    }
}

/// A linear classifier `p = activation(X W)` with `W` of shape
/// `(features, classes)`; for MNIST `(785, 10)`, the last feature being the
/// constant 1 of the bias.
///
/// The weights are stored in a layout suited to the training kernels;
/// [`LinearModel::weights`] returns them as an ordinary matrix.
#[derive(Debug, Clone)]
pub struct LinearModel {
    features: usize,
    classes: usize,
    head: Head,
    /// `[chunk][class][lane]`, zero beyond `features` (see `kernel`).
    packed: Floats,
    /// Names these weights: a fresh number from [`fresh_version`] whenever
    /// they are made or may change, so that two models of the same
    /// version (a model and its clone) hold the same weights. A step that
    /// computed ahead on the weights keeps their version to know its work
    /// is still good.
    version: u64,
}

/// Models are equal when their shapes, heads and weights are; the version
/// is not compared.
impl PartialEq for LinearModel {
    fn eq(&self, other: &Self) -> bool {
        (self.features, self.classes, self.head, &self.packed)
            == (other.features, other.classes, other.head, &other.packed)
    }
}

/// A version no model has had yet in this process.
fn fresh_version() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl LinearModel {
    /// A model with `features x classes` weights drawn by `init` from `rng`,
    /// with the sigmoid activation.
    ///
    /// The same `rng` state gives the same weights, bit for bit.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] if `features` or `classes` is 0, and
    /// [`Error::InvalidParameter`] if a normal `std` is negative or not finite.
    pub fn new<R: Rng + ?Sized>(
        features: usize,
        classes: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        check_dims(features, classes)?;
        let mut model = LinearModel {
            features,
            classes,
            head: Head::Sigmoid,
            packed: Floats::zeros(kernel::packed_len(features, classes)),
            version: fresh_version(),
        };
        match init {
            Init::Zeros => {}
            Init::Normal { std } => {
                if !(std.is_finite() && std >= 0.0) {
                    return Err(Error::InvalidParameter {
                        name: "initial standard deviation",
                        value: std.to_string(),
                        reason: "must be finite and non-negative",
                    });
                }
                for f in 0..features {
                    for c in 0..classes {
                        let z: f32 = rng.sample(StandardNormal);
                        model.packed[kernel::packed_index(f, c, classes)] = z * std;
                    }
                }
            }
        }
        Ok(model)
    }

    /// A sigmoid model with the given `(features, classes)` weights.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] if either dimension is 0, and
    /// [`Error::NonFiniteWeight`] naming the first NaN or infinite weight.
    pub fn from_weights(weights: ArrayView2<'_, f32>) -> Result<Self> {
        let (features, classes) = weights.dim();
        check_dims(features, classes)?;
        let mut packed = Floats::zeros(kernel::packed_len(features, classes));
        for ((f, c), &w) in weights.indexed_iter() {
            if !w.is_finite() {
                return Err(Error::NonFiniteWeight {
                    feature: f,
                    class: c,
                    value: w,
                });
            }
            packed[kernel::packed_index(f, c, classes)] = w;
        }
        Ok(LinearModel {
            features,
            classes,
            head: Head::Sigmoid,
            packed,
            version: fresh_version(),
        })
    }

    /// A copy of the weights, shape `(features, classes)`.
    pub fn weights(&self) -> Array2<f32> {
        Array2::from_shape_fn((self.features, self.classes), |(f, c)| {
            self.packed[kernel::packed_index(f, c, self.classes)]
        })
    }

    /// Number of input features (785 for MNIST with the bias feature).
    pub fn features(&self) -> usize {
        self.features
    }

    /// Number of classes (outputs).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The same weights with `head` applied to the logits.
    #[must_use]
    pub fn with_head(mut self, head: Head) -> Self {
        self.head = head;
        self
    }

    /// The head applied to the logits.
    pub fn head(&self) -> Head {
        self.head
    }

    /// The weights in the kernels' packed layout.
    pub(crate) fn packed(&self) -> &[f32] {
        &self.packed
    }

    /// The weights to change: they take a fresh version.
    pub(crate) fn packed_mut(&mut self) -> &mut [f32] {
        self.version = fresh_version();
        &mut self.packed
    }

    /// The version of the weights: the same for two models only if they
    /// hold the same weights.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Checks that `x` has `features` columns.
    pub(crate) fn check_input(&self, x: &ArrayView2<'_, f32>) -> Result<()> {
        crate::error::check_features(x, self.features)
    }

    /// Writes the probabilities `sigmoid(x W)` into `out`, without allocating
    /// when `x` and `out` are in standard (row-major, contiguous) layout.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `x` does not have [`features`](Self::features)
    /// columns, or `out` is not `(x.nrows(), classes)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mnist_model::LinearModel;
    /// use ndarray::{array, Array2};
    ///
    /// let model = LinearModel::from_weights(array![[1.0f32, -1.0], [0.0, 0.0]].view())?;
    /// let x = array![[0.0f32, 1.0], [100.0, 1.0]];
    /// let mut p = Array2::zeros((2, 2));
    /// model.forward_into(x.view(), p.view_mut())?;
    /// assert_eq!(p[[0, 0]], 0.5);
    /// assert_eq!(p[[1, 0]], 1.0);
    /// assert!(p[[1, 1]] < 1e-40);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forward_into(
        &self,
        x: ArrayView2<'_, f32>,
        mut out: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        self.check_input(&x)?;
        let rows = x.nrows();
        if out.dim() != (rows, self.classes) {
            let (what, expected, found) = if out.nrows() != rows {
                ("output rows", rows, out.nrows())
            } else {
                ("output columns (classes)", self.classes, out.ncols())
            };
            return Err(Error::DimensionMismatch {
                what,
                expected,
                found,
            });
        }
        let x = x.as_standard_layout();
        let xs = contiguous(&x, "input layout")?;
        match out.as_slice_mut() {
            Some(o) => self.forward_slice(xs, rows, o),
            None => {
                let mut tmp = vec![0.0; rows * self.classes];
                self.forward_slice(xs, rows, &mut tmp);
                for (dst, src) in out.iter_mut().zip(tmp) {
                    *dst = src;
                }
            }
        }
        Ok(())
    }

    /// Forward pass on row-major slices whose sizes the caller has checked.
    pub(crate) fn forward_slice(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        let f = self.features;
        let copy = |first: usize, dst: &mut [f32], stride: usize| {
            for (k, row) in dst.chunks_exact_mut(stride).enumerate() {
                row[..f].copy_from_slice(&x[(first + k) * f..(first + k + 1) * f]);
            }
        };
        let mut block = Vec::new();
        self.forward_rows(0..rows, &copy, out, &mut block);
    }

    /// Probabilities of rows `range` of a row source (see
    /// [`Sgd::step_rows`](crate::Sgd::step_rows)) into `out`, `range.len() x
    /// classes`, block by block through the scratch `block`, asking the
    /// source to prefetch the next block's rows as the products go.
    pub(crate) fn forward_rows<F>(
        &self,
        range: std::ops::Range<usize>,
        fill: &F,
        out: &mut [f32],
        block: &mut Vec<f32>,
    ) where
        F: RowSource + ?Sized,
    {
        let (f, classes) = (self.features, self.classes);
        let stride = kernel::stride(f);
        block.resize(kernel::BLOCK * stride, 0.0);
        let mut r = range.start;
        while r < range.end {
            let n = kernel::BLOCK.min(range.end - r);
            let xb = &mut block[..n * stride];
            fill.fill(r, xb, stride);
            let next = r + n;
            let ahead = kernel::ahead(fill, n, next, kernel::BLOCK.min(range.end - next));
            // The padding must be zero whatever the source wrote there.
            for row in xb.chunks_exact_mut(stride) {
                row[f..].fill(0.0);
            }
            let at = (r - range.start) * classes;
            kernel::run(kernel::Op::Forward {
                head: self.head,
                done: &ahead,
                block: kernel::Block {
                    x: xb,
                    rows: n,
                    chunks: kernel::chunks(f),
                    classes,
                    packed: &self.packed,
                },
                out: &mut out[at..at + n * classes],
            });
            r += n;
        }
    }

    /// The probabilities `sigmoid(x W)`, shape `(x.nrows(), classes)`.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `x` does not have
    /// [`features`](Self::features) columns.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let mut out = Array2::zeros((x.nrows(), self.classes));
        self.forward_into(x, out.view_mut())?;
        Ok(out)
    }

    /// The predicted class of each row of `x`: the index of the largest
    /// probability, the lowest index on ties.
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] if `x` does not have
    /// [`features`](Self::features) columns.
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Vec<usize>> {
        let p = self.predict_proba(x)?;
        Ok(p.rows()
            .into_iter()
            .map(|r| argmax(r.iter().copied()))
            .collect())
    }
}

/// Index of the largest value, the lowest on ties; NaNs never win.
pub(crate) fn argmax(values: impl IntoIterator<Item = f32>) -> usize {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (i, v) in values.into_iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best
}

fn check_dims(features: usize, classes: usize) -> Result<()> {
    if features == 0 {
        return Err(Error::ZeroSize { what: "features" });
    }
    if classes == 0 {
        return Err(Error::ZeroSize { what: "classes" });
    }
    Ok(())
}

/// The values of a standard-layout array, in order.
///
/// # Errors
///
/// [`Error::DimensionMismatch`] naming `what` if the array is not
/// contiguous: unreachable for the result of `as_standard_layout`, which is
/// always contiguous, but reported rather than unwrapped.
pub(crate) fn contiguous<'a>(
    a: &'a ndarray::CowArray<'_, f32, ndarray::Ix2>,
    what: &'static str,
) -> Result<&'a [f32]> {
    a.as_slice().ok_or(Error::DimensionMismatch {
        what,
        expected: 1,
        found: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, s, Array2};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The reference: ndarray's `dot` and an f64 sigmoid.
    fn reference_proba(w: &Array2<f32>, x: &Array2<f32>) -> Array2<f32> {
        let z = x.dot(w);
        z.mapv(|v| (1.0 / (1.0 + (-(v as f64)).exp())) as f32)
    }

    fn random(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |_| rng.gen_range(-1.0f32..1.0))
    }

    #[test]
    fn new_rejects_bad_settings() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(matches!(
            LinearModel::new(0, 10, Init::default(), &mut rng),
            Err(Error::ZeroSize { what: "features" })
        ));
        assert!(matches!(
            LinearModel::new(3, 0, Init::Zeros, &mut rng),
            Err(Error::ZeroSize { what: "classes" })
        ));
        assert!(matches!(
            LinearModel::new(3, 2, Init::Normal { std: -1.0 }, &mut rng),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            LinearModel::new(3, 2, Init::Normal { std: f32::NAN }, &mut rng),
            Err(Error::InvalidParameter { .. })
        ));
    }

    #[test]
    fn from_weights_rejects_non_finite_and_empty() {
        let w = array![[1.0f32, 2.0], [f32::NAN, 0.0]];
        match LinearModel::from_weights(w.view()) {
            Err(Error::NonFiniteWeight { feature, class, .. }) => {
                assert_eq!((feature, class), (1, 0));
            }
            other => panic!("expected NonFiniteWeight, got {other:?}"),
        }
        let empty = Array2::<f32>::zeros((0, 3));
        assert!(matches!(
            LinearModel::from_weights(empty.view()),
            Err(Error::ZeroSize { what: "features" })
        ));
    }

    #[test]
    fn weights_round_trip_through_packing() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (f, c) in [(1, 1), (17, 3), (785, 10), (33, 11)] {
            let w = random(f, c, &mut rng);
            let m = LinearModel::from_weights(w.view()).expect("finite weights");
            assert_eq!(m.weights(), w);
            assert_eq!((m.features(), m.classes()), (f, c));
        }
    }

    #[test]
    fn same_seed_same_initial_weights() {
        let a = LinearModel::new(785, 10, Init::default(), &mut ChaCha8Rng::seed_from_u64(7))
            .expect("valid");
        let b = LinearModel::new(785, 10, Init::default(), &mut ChaCha8Rng::seed_from_u64(7))
            .expect("valid");
        let c = LinearModel::new(785, 10, Init::default(), &mut ChaCha8Rng::seed_from_u64(8))
            .expect("valid");
        assert_eq!(a, b);
        assert_ne!(a, c);
        let w = a.weights();
        let mean = w.iter().map(|&v| v as f64).sum::<f64>() / w.len() as f64;
        let var = w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / w.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
        let z =
            LinearModel::new(5, 2, Init::Zeros, &mut ChaCha8Rng::seed_from_u64(8)).expect("valid");
        assert!(z.weights().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn forward_matches_reference_on_many_shapes() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let shapes = [
            (1, 1, 1),
            (3, 16, 10),
            (5, 17, 10),
            (7, 785, 10),
            (512, 785, 10),
            (13, 100, 3),
            (9, 40, 13),
            (33, 31, 7),
        ];
        for (rows, f, c) in shapes {
            let w = random(f, c, &mut rng);
            let x = random(rows, f, &mut rng);
            let m = LinearModel::from_weights(w.view()).expect("finite");
            let fast = m.predict_proba(x.view()).expect("shapes match");
            let slow = reference_proba(&w, &x);
            for (a, b) in fast.iter().zip(slow.iter()) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1e-3),
                    "{rows}x{f}x{c}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn forward_accepts_non_standard_layouts() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let w = random(20, 4, &mut rng);
        let m = LinearModel::from_weights(w.view()).expect("finite");
        let big = random(20, 30, &mut rng);
        let xt = big.t(); // 30 x 20, column-major
        let mut out = Array2::<f32>::zeros((4, 30));
        m.forward_into(xt, out.view_mut().reversed_axes())
            .expect("shapes match");
        let expected = m.predict_proba(xt.as_standard_layout().view()).expect("ok");
        assert_eq!(out.t(), expected);
        let sliced = big.slice(s![.., ..20]);
        assert_eq!(
            m.predict_proba(sliced).expect("ok"),
            m.predict_proba(sliced.to_owned().view()).expect("ok")
        );
    }

    #[test]
    fn forward_rejects_wrong_shapes() {
        let m = LinearModel::from_weights(Array2::<f32>::zeros((4, 3)).view()).expect("ok");
        let x = Array2::<f32>::zeros((2, 5));
        match m.predict(x.view()) {
            Err(Error::DimensionMismatch {
                expected, found, ..
            }) => assert_eq!((expected, found), (4, 5)),
            other => panic!("expected DimensionMismatch, got {other:?}"),
        }
        let x = Array2::<f32>::zeros((2, 4));
        let mut out = Array2::<f32>::zeros((3, 3));
        assert!(matches!(
            m.forward_into(x.view(), out.view_mut()),
            Err(Error::DimensionMismatch {
                what: "output rows",
                ..
            })
        ));
        let mut out = Array2::<f32>::zeros((2, 2));
        assert!(matches!(
            m.forward_into(x.view(), out.view_mut()),
            Err(Error::DimensionMismatch { .. })
        ));
    }

    #[test]
    fn predict_takes_argmax_lowest_on_ties() {
        // Two identical columns tie; column 2 wins where the input is negative.
        let w = array![[1.0f32, 1.0, -1.0]];
        let m = LinearModel::from_weights(w.view()).expect("ok");
        let x = array![[2.0f32], [-3.0], [0.0]];
        assert_eq!(m.predict(x.view()).expect("ok"), vec![0, 2, 0]);
        assert_eq!(argmax([f32::NAN, 1.0, 1.0]), 1);
    }

    #[test]
    fn every_path_gives_the_same_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (rows, f, c) = (37, 785, 10);
        let w = random(f, c, &mut rng);
        let x = random(rows, f, &mut rng);
        let m = LinearModel::from_weights(w.view()).expect("ok");
        let mut xb = vec![0.0f32; rows * kernel::stride(f)];
        for (dst, src) in xb.chunks_exact_mut(kernel::stride(f)).zip(x.rows()) {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *s;
            }
        }
        let block = || kernel::Block {
            x: &xb,
            rows,
            chunks: kernel::chunks(f),
            classes: c,
            packed: m.packed(),
        };
        let best = m.predict_proba(x.view()).expect("ok");
        let mut runs = kernel::runnable();
        runs.push((kernel::Path::Portable, kernel::run_small));
        for (path, run) in runs {
            let mut out = vec![0.0; rows * c];
            run(kernel::Op::Forward {
                head: m.head(),
                block: block(),
                done: &|_, _| {},
                out: &mut out,
            });
            let same = best
                .iter()
                .zip(&out)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{} differs", path.name());
        }
    }
}
