//! Stochastic gradient descent for the linear model, on the fused
//! few-output kernels: the post's plain SGD, or SGD with momentum and
//! weight decay, with either head. The optimiser and its update are here;
//! how a step cuts its batch into parts of rows and runs them is in
//! `batch`, and how a small batch is cut by features instead in `columns`.

mod batch;
mod columns;

pub use batch::gradient;
pub(crate) use batch::with_rows;
use batch::{check_rows, in_parts, PartBuffers};
use columns::{cut_by_features, in_columns, ColumnScratch};

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::kernel;
use crate::linear::LinearModel;
use crate::optim::update_weight;
use crate::rows::RowSource;

/// SGD for a [`LinearModel`], with the post's plain rule or with momentum
/// and weight decay.
///
/// The post's rule ([`Sgd::new`]): `W -= lr * X^T (p - y) / nominal_batch`.
/// The gradient is divided by the *nominal* batch size even for a shorter
/// last batch of an epoch: the 96 rows left over from 60,000 = 117 x 512 + 96
/// move the weights less than a full batch would. This is kept deliberately
/// so that training reproduces the post.
///
/// With momentum ([`Sgd::with_momentum`]), as PyTorch's SGD: the gradient
/// `g` of the mean loss over the batch's rows, `v = momentum * v + g +
/// weight_decay * W`, `W -= lr * v`. The decay applies to every weight,
/// the bias feature's included.
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd {
    /// What the summed gradient is divided by: a nominal batch size, or
    /// (`None`) the batch's rows.
    nominal_batch: Option<usize>,
    momentum: f32,
    weight_decay: f32,
    /// The velocity in the kernels' packed layout; empty until the first
    /// step with momentum.
    velocity: Vec<f32>,
    /// The most threads a step runs on.
    threads: usize,
}

impl Default for Sgd {
    /// The post's nominal batch size, 512.
    fn default() -> Self {
        Sgd {
            nominal_batch: Some(512),
            momentum: 0.0,
            weight_decay: 0.0,
            velocity: Vec::new(),
            threads: crate::parts::default_threads(),
        }
    }
}

/// The update of one step, applied to the summed gradient `g0 + g1`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rule {
    /// `w -= scale * (g0 + g1)`.
    Plain { scale: f32 },
    /// `g = (g0 + g1) * inv_rows`, then the networks' update
    /// (`optim::update_weight`): `v = momentum * v + g + weight_decay *
    /// w`, `w -= lr * v`.
    Momentum {
        inv_rows: f32,
        lr: f32,
        momentum: f32,
        weight_decay: f32,
    },
}

/// Reusable buffers for [`Sgd::step`] and [`gradient`], so that an epoch loop
/// allocates only on its first step.
#[derive(Debug, Default, Clone)]
pub struct StepScratch {
    /// Each part's buffers, for a batch cut by rows.
    parts: Vec<PartBuffers>,
    /// The buffers of a batch cut by features, and what the last such
    /// step computed ahead for the next.
    columns: ColumnScratch,
}

impl StepScratch {
    /// Empty buffers; they grow on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sgd {
    /// The post's plain SGD, dividing the gradient by `nominal_batch`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] if `nominal_batch` is 0.
    pub fn new(nominal_batch: usize) -> Result<Self> {
        if nominal_batch == 0 {
            return Err(Error::ZeroSize {
                what: "nominal batch size",
            });
        }
        Ok(Sgd {
            nominal_batch: Some(nominal_batch),
            ..Sgd::default()
        })
    }

    /// SGD with `momentum` and L2 `weight_decay` on the mean gradient over
    /// each batch's rows (see [`Sgd`]). With both 0 it is plain SGD on the
    /// mean gradient.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] when `momentum` is not in `[0, 1)` or
    /// `weight_decay` is negative or not finite.
    pub fn with_momentum(momentum: f32, weight_decay: f32) -> Result<Self> {
        crate::optim::check_optimiser(momentum, weight_decay)?;
        Ok(Sgd {
            nominal_batch: None,
            momentum,
            weight_decay,
            ..Sgd::default()
        })
    }

    /// Runs each step on at most `threads` threads (at least 1; the default
    /// is every core). A step is split into fixed parts: with SGD on the
    /// mean gradient ([`with_momentum`](Self::with_momentum)), a batch of
    /// at most 128 rows into two halves of the features (each computes its
    /// share of the logits, which are added in order, then its half of
    /// the gradient and of the update); any other batch, and every batch of
    /// the post's SGD ([`new`](Self::new)), into parts of rows, two or one
    /// for every 256 rows, whose gradients are added in order.
    /// Either way the result is the same, bit for bit, on any number of
    /// threads; a step uses no more threads than it has parts.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The batch size the gradient is divided by, if fixed; `None` when it
    /// is divided by each batch's rows.
    pub fn nominal_batch(&self) -> Option<usize> {
        self.nominal_batch
    }

    /// The momentum.
    pub fn momentum(&self) -> f32 {
        self.momentum
    }

    /// The weight decay.
    pub fn weight_decay(&self) -> f32 {
        self.weight_decay
    }

    /// The velocity as a `(features, classes)` matrix for `model`'s shape
    /// (zeros before the first step), to save in a checkpoint; `None` for an
    /// optimiser without momentum.
    pub fn velocity(&self, model: &LinearModel) -> Option<Array2<f32>> {
        if self.nominal_batch.is_some() {
            return None;
        }
        let classes = model.classes();
        Some(Array2::from_shape_fn(
            (model.features(), classes),
            |(f, c)| {
                self.velocity
                    .get(kernel::packed_index(f, c, classes))
                    .copied()
                    .unwrap_or(0.0)
            },
        ))
    }

    /// Restores a velocity saved from [`velocity`](Self::velocity).
    ///
    /// # Errors
    ///
    /// [`Error::DimensionMismatch`] when `velocity` is not `model`'s shape,
    /// [`Error::NonFiniteWeight`] for a NaN or infinite value, and
    /// [`Error::InvalidParameter`] for the post's optimiser, which has none.
    pub fn set_velocity(
        &mut self,
        model: &LinearModel,
        velocity: ArrayView2<'_, f32>,
    ) -> Result<()> {
        if self.nominal_batch.is_some() {
            return Err(Error::InvalidParameter {
                name: "velocity",
                value: format!("{} values", velocity.len()),
                reason: "plain SGD keeps no velocity",
            });
        }
        let (features, classes) = (model.features(), model.classes());
        if velocity.dim() != (features, classes) {
            return Err(Error::DimensionMismatch {
                what: "velocity values (features x classes)",
                expected: features * classes,
                found: velocity.len(),
            });
        }
        let mut packed = vec![0.0; kernel::packed_len(features, classes)];
        for ((f, c), &v) in velocity.indexed_iter() {
            if !v.is_finite() {
                return Err(Error::NonFiniteWeight {
                    feature: f,
                    class: c,
                    value: v,
                });
            }
            packed[kernel::packed_index(f, c, classes)] = v;
        }
        self.velocity = packed;
        Ok(())
    }

    /// The update of a step of `rows` rows at rate `lr`.
    fn rule(&self, rows: usize, lr: f32) -> Rule {
        match self.nominal_batch {
            Some(n) => Rule::Plain {
                scale: lr / n as f32,
            },
            None => Rule::Momentum {
                inv_rows: 1.0 / rows as f32,
                lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
            },
        }
    }

    /// One step on a batch: forward pass, loss, gradient `X^T (p - y)`, then
    /// `W -= lr * gradient / nominal_batch`. Returns the batch loss (as
    /// [`bce_loss`](crate::bce_loss), to within the last bits: it is summed
    /// as logarithms of products of the likelihoods, one `ln` per 64 terms)
    /// computed from `p` *before* the update.
    ///
    /// `x` is `(rows, features)` and `y_onehot` is `(rows, classes)`. Inputs
    /// in standard (row-major) layout are used in place; others are copied.
    ///
    /// # Errors
    ///
    /// - [`Error::DimensionMismatch`] if the shapes do not fit the model or
    ///   each other, [`Error::ZeroSize`] for an empty batch, and
    ///   [`Error::InvalidParameter`] if `lr` is negative or not finite; the
    ///   model is then untouched.
    /// - [`Error::Diverged`] if the loss is not finite (the model is then
    ///   untouched) or some weight is not finite after the update (the model
    ///   keeps the diverged weights). The caller adds epoch and iteration.
    ///
    /// # Examples
    ///
    /// ```
    /// use mnist_model::{Init, LinearModel, Sgd, StepScratch};
    /// use ndarray::array;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    /// let mut model = LinearModel::new(2, 2, Init::Zeros, &mut rng)?;
    /// let x = array![[1.0f32, 1.0], [-1.0, 1.0]];
    /// let y = array![[1.0f32, 0.0], [0.0, 1.0]];
    /// let mut sgd = Sgd::new(2)?;
    /// let mut scratch = StepScratch::new();
    /// let first = sgd.step(&mut model, x.view(), y.view(), 1.0, &mut scratch)?;
    /// let second = sgd.step(&mut model, x.view(), y.view(), 1.0, &mut scratch)?;
    /// assert!(second < first);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn step(
        &mut self,
        model: &mut LinearModel,
        x: ArrayView2<'_, f32>,
        y_onehot: ArrayView2<'_, f32>,
        lr: f32,
        scratch: &mut StepScratch,
    ) -> Result<f64> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "learning rate",
                value: lr.to_string(),
                reason: "must be finite and non-negative",
            });
        }
        check_rows(model, &x, &y_onehot)?;
        with_rows(x, |fill| self.step_rows(model, y_onehot, fill, lr, scratch))?
    }

    /// [`step`](Self::step) on rows made on demand by a [`RowSource`] (a
    /// closure `|first, x, stride|` will do): `features.fill(first, x,
    /// stride)` must write the features of rows `first..first + n`, with
    /// `n = x.len() / stride`, into `x`, one row every `stride` values (the
    /// first [`LinearModel::features`] values of each row; the rest are
    /// ignored). It is called a block of a few dozen rows at a time, in
    /// increasing order within each of the batch's fixed parts (two, or
    /// one for every 256 rows), the parts on several threads at once: rows
    /// are made where and when they are used, while still in cache. While a
    /// block is computed, the source's [`prefetch`](RowSource::prefetch) is
    /// asked for the next one (after a part's last block: that part's first
    /// block of the next batch, rows numbered on past this batch). With
    /// SGD on the mean gradient, a batch of at most 128 rows is cut by
    /// features instead (see
    /// [`with_threads`](Self::with_threads)): each half asks
    /// [`fill_columns`](RowSource::fill_columns) for its features of every
    /// row, then [`prefetch_columns`](RowSource::prefetch_columns) for those
    /// of the next batch; and when the source names its rows
    /// ([`rows_key`](RowSource::rows_key)) and the step runs on several
    /// threads, each half goes on, after its update, to fill its features
    /// of the next batch's rows and compute their share of the logits,
    /// which the next step uses if its rows have that key and the weights
    /// have not changed since. `y_onehot` holds the targets, one row per
    /// batch row. The same rows give the same result, bit for bit, as
    /// [`step`](Self::step).
    ///
    /// # Errors
    ///
    /// As [`step`](Self::step).
    pub fn step_rows<F>(
        &mut self,
        model: &mut LinearModel,
        y_onehot: ArrayView2<'_, f32>,
        features: &F,
        lr: f32,
        scratch: &mut StepScratch,
    ) -> Result<f64>
    where
        F: RowSource + ?Sized,
    {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::InvalidParameter {
                name: "learning rate",
                value: lr.to_string(),
                reason: "must be finite and non-negative",
            });
        }
        let rule = self.rule(y_onehot.nrows(), lr);
        let velocity = match rule {
            Rule::Plain { .. } => None,
            Rule::Momentum { .. } => {
                let len = kernel::packed_len(model.features(), model.classes());
                if self.velocity.len() != len {
                    self.velocity = vec![0.0; len];
                }
                Some(self.velocity.as_mut_slice())
            }
        };
        let (loss_sum, weights_finite) =
            if cut_by_features(rule, y_onehot.nrows(), model.features()) {
                in_columns(
                    model,
                    y_onehot,
                    features,
                    &mut scratch.columns,
                    (rule, velocity),
                    self.threads,
                )?
            } else {
                in_parts(
                    model,
                    y_onehot,
                    features,
                    scratch,
                    Some((rule, velocity)),
                    self.threads,
                )?
            };
        let loss = loss_sum / y_onehot.nrows() as f64;
        if !loss.is_finite() {
            return Err(Error::Diverged {
                loss,
                weights_finite: true,
            });
        }
        if !weights_finite {
            return Err(Error::Diverged {
                loss,
                weights_finite,
            });
        }
        Ok(loss)
    }
}

/// Weights and their velocity, if any.
type Weights<'a> = (&'a mut [f32], Option<&'a mut [f32]>);

/// The weights `w` and the velocity `v` cut at `n`: the first `n` of each,
/// and the rest.
fn split_weights<'a>(
    w: &'a mut [f32],
    v: Option<&'a mut [f32]>,
    n: usize,
) -> (Weights<'a>, Weights<'a>) {
    let (w, w_rest) = w.split_at_mut(n);
    match v {
        Some(v) => {
            let (v, v_rest) = v.split_at_mut(n);
            ((w, Some(v)), (w_rest, Some(v_rest)))
        }
        None => ((w, None), (w_rest, None)),
    }
}

/// The update `rule` of weights `w` (and velocity `v`, with momentum) from
/// the gradient `g0 + g1`, or `g0` alone, compiled for `path`'s
/// instruction set: wider vectors, the same operations, so the same bits
/// (see [`kernel::compiled_for`]); returns whether every new weight is
/// finite.
pub(super) fn update(
    path: kernel::Path,
    w: &mut [f32],
    v: Option<&mut [f32]>,
    g0: &[f32],
    g1: Option<&[f32]>,
    rule: Rule,
) -> bool {
    kernel::compiled_for(
        path,
        #[inline(always)]
        || match g1 {
            Some(g1) => update_by(w, v, g0.iter().zip(g1).map(|(&a, &b)| a + b), rule),
            None => update_by(w, v, g0.iter().copied(), rule),
        },
    )
}

/// [`update`] from the gradient, weight by weight: plain loops over the
/// slices, which the compiler vectorises (an `and` of the weights'
/// finiteness is a reduction it vectorises too).
#[inline(always)]
fn update_by(
    w: &mut [f32],
    v: Option<&mut [f32]>,
    grads: impl Iterator<Item = f32>,
    rule: Rule,
) -> bool {
    let mut finite = true;
    match (rule, v) {
        (
            Rule::Momentum {
                inv_rows,
                lr,
                momentum,
                weight_decay,
            },
            Some(v),
        ) => {
            for ((w, v), g) in w.iter_mut().zip(v.iter_mut()).zip(grads) {
                update_weight(w, v, g * inv_rows, (momentum, weight_decay, lr));
                finite &= w.is_finite();
            }
        }
        (Rule::Plain { scale }, _) => {
            for (w, g) in w.iter_mut().zip(grads) {
                *w -= scale * g;
                finite &= w.is_finite();
            }
        }
        (Rule::Momentum { .. }, None) => {
            unreachable!("a step with momentum is always given the velocity (`step_rows`)")
        }
    }
    finite
}

#[cfg(test)]
mod tests {
    use super::batch::{run_part, Part};
    use super::*;
    use crate::head::Head;
    use crate::pool;
    use crate::{bce_loss, Init};
    use ndarray::{s, Array2};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn random(rows: usize, cols: usize, scale: f32, rng: &mut ChaCha8Rng) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |_| rng.gen_range(-scale..scale))
    }

    /// Random weights `(features, classes)` and inputs `(rows, features)`
    /// of the given scales, and one-hot targets of random labels, drawn in
    /// that order.
    fn problem(
        rows: usize,
        features: usize,
        classes: usize,
        (w_scale, x_scale): (f32, f32),
        rng: &mut ChaCha8Rng,
    ) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
        let w = random(features, classes, w_scale, rng);
        let x = random(rows, features, x_scale, rng);
        let y = one_hot(&random_labels(rows, classes, rng), classes);
        (w, x, y)
    }

    fn one_hot(labels: &[usize], classes: usize) -> Array2<f32> {
        Array2::from_shape_fn((labels.len(), classes), |(r, c)| {
            if labels[r] == c {
                1.0
            } else {
                0.0
            }
        })
    }

    fn random_labels(n: usize, classes: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
        (0..n).map(|_| rng.gen_range(0..classes)).collect()
    }

    /// `X^T (sigmoid(X W) - Y)` with ndarray's `dot`.
    fn reference_gradient(w: &Array2<f32>, x: &Array2<f32>, y: &Array2<f32>) -> Array2<f32> {
        let p = x
            .dot(w)
            .mapv(|v| (1.0 / (1.0 + (-(v as f64)).exp())) as f32);
        x.t().dot(&(p - y))
    }

    #[test]
    fn gradient_matches_reference_on_many_shapes() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let shapes = [
            (1, 1, 1),
            (2, 16, 10),
            (31, 17, 10),
            (33, 785, 10),
            (200, 100, 3),
            (512, 785, 10),
            (96, 785, 10),
            (65, 40, 13),
            // One row after others: the empty first part must give zeros,
            // whatever its buffer held.
            (1, 40, 13),
        ];
        let mut scratch = StepScratch::new();
        for (rows, f, c) in shapes {
            let (w, x, y) = problem(rows, f, c, (0.1, 1.0), &mut rng);
            let m = LinearModel::from_weights(w.view()).expect("finite");
            let fast = gradient(&m, x.view(), y.view(), &mut scratch).expect("shapes match");
            let slow = reference_gradient(&w, &x, &y);
            let norm = slow.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            for (a, b) in fast.iter().zip(slow.iter()) {
                assert!(
                    (a - b).abs() <= 1e-4 * norm.max(1.0),
                    "{rows}x{f}x{c}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (rows, f, c) = (6, 5, 3);
        // Small weights and inputs keep every p far from the clipping bounds.
        let (w, x, y) = problem(rows, f, c, (0.5, 1.0), &mut rng);
        let m = LinearModel::from_weights(w.view()).expect("finite");
        let g =
            gradient(&m, x.view(), y.view(), &mut StepScratch::new()).expect("ok") / rows as f32;
        // The loss in f64 throughout, so that the central difference is exact
        // to well below the tolerance.
        let loss64 = |w: &Array2<f64>| -> f64 {
            let x64 = x.mapv(f64::from);
            let z = x64.dot(w);
            let mut sum = 0.0;
            for ((r, k), &zv) in z.indexed_iter() {
                let p = 1.0 / (1.0 + (-zv).exp());
                assert!((1e-4..=1.0 - 1e-4).contains(&p));
                let yv = f64::from(y[[r, k]]);
                sum -= yv * p.ln() + (1.0 - yv) * (1.0 - p).ln();
            }
            sum / rows as f64
        };
        let w64 = w.mapv(f64::from);
        let h = 1e-6;
        for i in 0..f {
            for k in 0..c {
                let mut plus = w64.clone();
                plus[[i, k]] += h;
                let mut minus = w64.clone();
                minus[[i, k]] -= h;
                let numeric = (loss64(&plus) - loss64(&minus)) / (2.0 * h);
                let analytic = f64::from(g[[i, k]]);
                assert!(
                    (numeric - analytic).abs() < 1e-5,
                    "({i},{k}): {numeric} vs {analytic}"
                );
            }
        }
        // And the f32 loss of the crate agrees with the f64 one.
        let p = m.predict_proba(x.view()).expect("ok");
        let l = bce_loss(p.view(), y.view()).expect("ok");
        assert!((l - loss64(&w64)).abs() < 1e-5);
    }

    #[test]
    fn step_returns_loss_before_update_and_applies_update() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let (rows, f, c) = (100, 785, 10);
        let (w, x, y) = problem(rows, f, c, (0.1, 0.5), &mut rng);
        let mut m = LinearModel::from_weights(w.view()).expect("finite");
        let before = bce_loss(m.predict_proba(x.view()).expect("ok").view(), y.view()).expect("ok");
        let g = reference_gradient(&w, &x, &y);
        let loss = Sgd::default()
            .step(&mut m, x.view(), y.view(), 0.1, &mut StepScratch::new())
            .expect("ok");
        assert!((loss - before).abs() < 1e-9 * before, "{loss} vs {before}");
        // Divided by the nominal 512, not by the 100 rows of this batch.
        let expected = &w - &(g * (0.1 / 512.0));
        for (a, b) in m.weights().iter().zip(expected.iter()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn step_rejects_bad_input_without_touching_the_model() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let mut m = LinearModel::new(4, 3, Init::default(), &mut rng).expect("ok");
        let orig = m.clone();
        let mut sgd = Sgd::default();
        let mut s = StepScratch::new();
        let x = Array2::<f32>::zeros((2, 4));
        let y = Array2::<f32>::zeros((2, 3));
        let cases = [
            sgd.step(
                &mut m,
                Array2::<f32>::zeros((2, 5)).view(),
                y.view(),
                0.1,
                &mut s,
            ),
            sgd.step(
                &mut m,
                x.view(),
                Array2::<f32>::zeros((2, 2)).view(),
                0.1,
                &mut s,
            ),
            sgd.step(
                &mut m,
                x.view(),
                Array2::<f32>::zeros((3, 3)).view(),
                0.1,
                &mut s,
            ),
        ];
        for r in cases {
            assert!(matches!(r, Err(Error::DimensionMismatch { .. })), "{r:?}");
        }
        let empty = sgd.step(
            &mut m,
            Array2::<f32>::zeros((0, 4)).view(),
            Array2::<f32>::zeros((0, 3)).view(),
            0.1,
            &mut s,
        );
        assert!(matches!(empty, Err(Error::ZeroSize { .. })));
        for lr in [-1.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                sgd.step(&mut m, x.view(), y.view(), lr, &mut s),
                Err(Error::InvalidParameter {
                    name: "learning rate",
                    ..
                })
            ));
        }
        assert!(matches!(Sgd::new(0), Err(Error::ZeroSize { .. })));
        assert_eq!(m, orig);
    }

    #[test]
    fn every_update_gives_the_bits_of_the_formula_weight_by_weight() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let n = 7856;
        let draw = |rng: &mut ChaCha8Rng, scale: f32| -> Vec<f32> {
            (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
        };
        let (w0, v0) = (draw(&mut rng, 0.5), draw(&mut rng, 0.1));
        let (g0, g1) = (draw(&mut rng, 30.0), draw(&mut rng, 30.0));
        let momentum = Rule::Momentum {
            inv_rows: 1.0 / 64.0,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
        };
        for (path, _) in kernel::runnable() {
            let name = path.name();
            for second in [None, Some(&g1[..])] {
                let g = |i: usize| second.map_or(g0[i], |g1| g0[i] + g1[i]);
                let mut w = w0.clone();
                assert!(update(
                    path,
                    &mut w,
                    None,
                    &g0,
                    second,
                    Rule::Plain { scale: 0.003 }
                ));
                for i in 0..n {
                    let want = w0[i] - 0.003 * g(i);
                    assert_eq!(w[i].to_bits(), want.to_bits(), "{name}: plain, weight {i}");
                }
                let (mut w, mut v) = (w0.clone(), v0.clone());
                assert!(update(path, &mut w, Some(&mut v), &g0, second, momentum));
                for i in 0..n {
                    let (mut wi, mut vi) = (w0[i], v0[i]);
                    update_weight(&mut wi, &mut vi, g(i) * (1.0 / 64.0), (0.9, 5e-4, 0.01));
                    assert_eq!(w[i].to_bits(), wi.to_bits(), "{name}: momentum, weight {i}");
                    assert_eq!(
                        v[i].to_bits(),
                        vi.to_bits(),
                        "{name}: momentum, velocity {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_update_finds_a_weight_that_is_not_finite() {
        for (path, _) in kernel::runnable() {
            let name = path.name();
            // Anywhere: the first weight, one in the middle, the last.
            for at in [0, 4001, 7855] {
                for bad in [f32::INFINITY, f32::NAN] {
                    let mut w = vec![0.25f32; 7856];
                    let mut g = vec![1.0f32; 7856];
                    g[at] = bad;
                    assert!(
                        !update(path, &mut w, None, &g, None, Rule::Plain { scale: 0.1 }),
                        "{name}: plain, {bad} at {at}"
                    );
                    let mut w = vec![0.25f32; 7856];
                    let mut v = vec![0.0f32; 7856];
                    let rule = Rule::Momentum {
                        inv_rows: 1.0,
                        lr: 0.1,
                        momentum: 0.9,
                        weight_decay: 0.0,
                    };
                    assert!(
                        !update(path, &mut w, Some(&mut v), &g, None, rule),
                        "{name}: momentum, {bad} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn step_detects_divergence() {
        let w = Array2::from_elem((2, 1), 1.0f32);
        let mut m = LinearModel::from_weights(w.view()).expect("ok");
        let x = Array2::from_elem((1, 2), 1e30f32);
        let y = Array2::zeros((1, 1));
        let r = Sgd::new(1).expect("ok").step(
            &mut m,
            x.view(),
            y.view(),
            1e30,
            &mut StepScratch::new(),
        );
        match r {
            Err(Error::Diverged {
                weights_finite,
                loss,
            }) => {
                assert!(!weights_finite);
                assert!(loss.is_finite());
            }
            other => panic!("expected Diverged, got {other:?}"),
        }
        let mut m = LinearModel::from_weights(w.view()).expect("ok");
        let x = Array2::from_elem((1, 2), f32::NAN);
        let r = Sgd::default().step(&mut m, x.view(), y.view(), 0.1, &mut StepScratch::new());
        assert!(
            matches!(
                r,
                Err(Error::Diverged {
                    weights_finite: true,
                    ..
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn learns_a_separable_problem() {
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let (n, dims, classes) = (600, 20, 4);
        // Class k is centred at +3 on axis k; a constant bias feature last.
        let labels = random_labels(n, classes, &mut rng);
        let x = Array2::from_shape_fn((n, dims + 1), |(r, j)| {
            if j == dims {
                1.0
            } else if j == labels[r] {
                3.0 + rng.gen_range(-0.5f32..0.5)
            } else {
                rng.gen_range(-0.5f32..0.5)
            }
        });
        let y = one_hot(&labels, classes);
        let mut m = LinearModel::new(dims + 1, classes, Init::default(), &mut rng).expect("ok");
        let mut sgd = Sgd::new(50).expect("ok");
        let mut s = StepScratch::new();
        let mut first = None;
        let mut last = 0.0;
        for _epoch in 0..30 {
            for b in 0..n / 50 {
                let rows = s![b * 50..(b + 1) * 50, ..];
                last = sgd
                    .step(&mut m, x.slice(rows), y.slice(rows), 0.5, &mut s)
                    .expect("ok");
                first.get_or_insert(last);
            }
        }
        let first = first.expect("at least one step");
        assert!(last < first / 5.0, "loss {first} -> {last}");
        let predicted = m.predict(x.view()).expect("ok");
        let correct = predicted
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p == l)
            .count();
        assert!(correct as f64 / n as f64 > 0.99, "accuracy {correct}/{n}");
    }

    #[test]
    fn same_seed_same_bits_after_steps() {
        let run = || {
            let mut rng = ChaCha8Rng::seed_from_u64(15);
            let mut m = LinearModel::new(785, 10, Init::default(), &mut rng).expect("ok");
            let x = random(512, 785, 0.5, &mut rng);
            let y = one_hot(&random_labels(512, 10, &mut rng), 10);
            let mut s = StepScratch::new();
            let mut losses = Vec::new();
            for i in 0..5 {
                let rows = if i == 4 { s![..96, ..] } else { s![.., ..] };
                losses.push(
                    Sgd::default()
                        .step(&mut m, x.slice(rows), y.slice(rows), 0.1, &mut s)
                        .expect("ok"),
                );
            }
            (m, losses)
        };
        let (a, la) = run();
        let (b, lb) = run();
        assert_eq!(la, lb);
        let (wa, wb) = (a.weights(), b.weights());
        assert!(wa
            .iter()
            .zip(wb.iter())
            .all(|(p, q)| p.to_bits() == q.to_bits()));
    }

    /// Runs rows `range` of `x` as one part through `run`.
    fn one_part(
        m: &LinearModel,
        x: &Array2<f32>,
        y: &Array2<f32>,
        range: std::ops::Range<usize>,
        run: fn(kernel::Op<'_>),
    ) -> (f64, Vec<f32>) {
        let (f, c) = (m.features(), m.classes());
        let mut grad = vec![0.0f32; kernel::packed_len(f, c)];
        let mut xb = vec![0.0f32; kernel::BLOCK * kernel::stride(f)];
        let mut p = vec![0.0f32; kernel::BLOCK * c];
        let loss = with_rows(x.view(), |fill| {
            run_part(
                Part {
                    head: m.head(),
                    packed: m.packed(),
                    features: f,
                    classes: c,
                    ys: y.as_slice().expect("standard"),
                    rows: x.nrows(),
                    fill,
                    kernel: run,
                },
                range,
                &mut grad,
                &mut xb,
                &mut p,
            )
        })
        .expect("standard");
        (loss, grad)
    }

    /// A row source over `x` that logs what it is asked for.
    struct Logged<'a> {
        x: &'a Array2<f32>,
        log: std::sync::Mutex<Vec<(bool, usize, usize)>>,
    }

    impl RowSource for Logged<'_> {
        fn fill(&self, first: usize, out: &mut [f32], stride: usize) {
            let n = out.len() / stride;
            for (k, row) in out.chunks_exact_mut(stride).enumerate() {
                for (d, s) in row.iter_mut().zip(self.x.row(first + k)) {
                    *d = *s;
                }
            }
            self.log
                .lock()
                .expect("not poisoned")
                .push((true, first, n));
        }

        fn prefetch(&self, first: usize, n: usize) {
            self.log
                .lock()
                .expect("not poisoned")
                .push((false, first, n));
        }
    }

    /// What a source was asked: a fill (or a prefetch), the first row, the
    /// number of rows and the columns.
    type ColumnsAsked = (bool, usize, usize, std::ops::Range<usize>);

    /// A row source over `x` that serves and logs ranges of columns only.
    struct ColumnsLogged<'a> {
        x: &'a Array2<f32>,
        log: std::sync::Mutex<Vec<ColumnsAsked>>,
    }

    impl RowSource for ColumnsLogged<'_> {
        fn fill(&self, _: usize, _: &mut [f32], _: usize) {
            panic!("whole rows asked of a step cut by features");
        }

        fn fill_columns(
            &self,
            first: usize,
            out: &mut [f32],
            stride: usize,
            columns: std::ops::Range<usize>,
            _features: usize,
        ) {
            let n = out.len() / stride;
            for (k, row) in out.chunks_exact_mut(stride).enumerate() {
                let src = self.x.row(first + k);
                for (d, s) in row.iter_mut().zip(src.slice(s![columns.clone()])) {
                    *d = *s;
                }
            }
            let mut log = self.log.lock().expect("not poisoned");
            log.push((true, first, n, columns));
        }

        fn prefetch_columns(&self, first: usize, n: usize, columns: std::ops::Range<usize>) {
            let mut log = self.log.lock().expect("not poisoned");
            log.push((false, first, n, columns));
        }
    }

    #[test]
    fn a_small_mean_gradient_batch_asks_each_half_for_its_columns() {
        let mut rng = ChaCha8Rng::seed_from_u64(32);
        let (rows, f, c) = (64, 785, 10);
        let (w, x, y) = problem(rows, f, c, (0.1, 0.5), &mut rng);
        let source = ColumnsLogged {
            x: &x,
            log: std::sync::Mutex::new(Vec::new()),
        };
        let start = LinearModel::from_weights(w.view())
            .expect("ok")
            .with_head(Head::Softmax);
        let (mut a, mut b) = (start.clone(), start);
        let mut sgd = Sgd::with_momentum(0.9, 1e-3).expect("valid");
        let la = sgd
            .step_rows(&mut a, y.view(), &source, 0.1, &mut StepScratch::new())
            .expect("ok");
        // Features 0..400 (25 chunks) and 400..785, every row; then the
        // same columns of the next batch's rows.
        let mut log = source.log.into_inner().expect("not poisoned");
        log.sort_by_key(|(fill, _, _, cols)| (!*fill, cols.start));
        assert_eq!(
            log,
            [
                (true, 0, 64, 0..400),
                (true, 0, 64, 400..785),
                (false, 64, 64, 0..400),
                (false, 64, 64, 400..785),
            ]
        );
        // The same bits as `step` on the matrix (its own row source).
        let lb = Sgd::with_momentum(0.9, 1e-3)
            .expect("valid")
            .step(&mut b, x.view(), y.view(), 0.1, &mut StepScratch::new())
            .expect("ok");
        assert_eq!(la.to_bits(), lb.to_bits());
        assert_eq!(a, b);
        // The post's SGD asks for whole rows even of a small batch.
        let mut c = LinearModel::from_weights(w.view()).expect("ok");
        let logged = Logged {
            x: &x,
            log: std::sync::Mutex::new(Vec::new()),
        };
        Sgd::default()
            .step_rows(&mut c, y.view(), &logged, 0.1, &mut StepScratch::new())
            .expect("ok");
        let whole = logged.log.into_inner().expect("not poisoned");
        assert!(whole.iter().any(|(fill, ..)| *fill));
    }

    /// Batches of 64 rows of `x`, the batch starting at row `start`; with
    /// `keyed`, rows are named by their row of `x`. Logs the first row of
    /// every fill.
    struct Windows<'a> {
        x: &'a Array2<f32>,
        start: usize,
        keyed: bool,
        fills: std::sync::Mutex<Vec<usize>>,
    }

    impl RowSource for Windows<'_> {
        fn fill(&self, first: usize, out: &mut [f32], stride: usize) {
            let features = self.x.ncols();
            self.fill_columns(first, out, stride, 0..features, features);
        }

        fn fill_columns(
            &self,
            first: usize,
            out: &mut [f32],
            stride: usize,
            columns: std::ops::Range<usize>,
            _features: usize,
        ) {
            for (k, row) in out.chunks_exact_mut(stride).enumerate() {
                let src = self.x.row(self.start + first + k);
                for (d, s) in row.iter_mut().zip(src.slice(s![columns.clone()])) {
                    *d = *s;
                }
            }
            self.fills.lock().expect("not poisoned").push(first);
        }

        fn rows_key(&self, first: usize, n: usize) -> Option<crate::RowsKey> {
            let at = self.start + first;
            (self.keyed && at + n <= self.x.nrows())
                .then(|| crate::RowsKey::new([at as u64, n as u64]))
        }
    }

    /// Softmax models of weights `w` and of `w / 2`.
    fn softmax_and_halved(w: &Array2<f32>) -> (LinearModel, LinearModel) {
        let model = |w: &Array2<f32>| {
            LinearModel::from_weights(w.view())
                .expect("ok")
                .with_head(Head::Softmax)
        };
        (model(w), model(&(w * 0.5)))
    }

    #[test]
    fn steps_computed_ahead_give_the_bits_of_steps_computed_in_turn() {
        let mut rng = ChaCha8Rng::seed_from_u64(33);
        let (rows, f, c) = (64, 785, 10);
        let (w, x, _) = problem(8 * rows, f, c, (0.1, 0.5), &mut rng);
        let labels = random_labels(x.nrows(), c, &mut rng);
        let y = one_hot(&labels, c);
        let (start, other) = softmax_and_halved(&w);
        // Batches in turn, a batch skipped (its rows are not those computed
        // ahead), and other weights put in before a step (the shares
        // computed ahead are stale): `(first row, weights replaced)`.
        let plan = [
            (0, false),
            (64, false),
            (128, false),
            (256, false),
            (320, true),
            (384, false),
            (448, false),
        ];
        for threads in [1, 2] {
            let run = |keyed: bool| {
                let (mut model, mut scratch) = (start.clone(), StepScratch::new());
                let mut sgd = Sgd::with_momentum(0.9, 1e-3)
                    .expect("valid")
                    .with_threads(threads);
                let mut first_fills = 0;
                let mut losses = Vec::new();
                for (at, replace) in plan {
                    if replace {
                        model = other.clone();
                    }
                    let window = Windows {
                        x: &x,
                        start: at,
                        keyed,
                        fills: std::sync::Mutex::new(Vec::new()),
                    };
                    let y = y.slice(s![at..at + rows, ..]);
                    let loss = sgd
                        .step_rows(&mut model, y, &window, 0.1, &mut scratch)
                        .expect("finite");
                    losses.push(loss.to_bits());
                    let fills = window.fills.into_inner().expect("not poisoned");
                    first_fills += fills.iter().filter(|&&first| first == 0).count();
                }
                (model, losses, sgd.velocity(&start), first_fills)
            };
            let (ahead, in_turn) = (run(true), run(false));
            assert!(ahead.0 == in_turn.0, "other weights, {threads} threads");
            assert_eq!(ahead.1, in_turn.1);
            assert!(ahead.2 == in_turn.2, "other velocity, {threads} threads");
            // Without keys, or on one thread, every step makes its rows;
            // with them, only the first, the one after the skipped batch
            // and the one with other weights do (two parts each).
            assert_eq!(in_turn.3, 2 * plan.len());
            let computing = if threads > 1 { 3 } else { plan.len() };
            assert_eq!(ahead.3, 2 * computing, "{threads} threads");
        }
    }

    #[test]
    fn step_rows_asks_for_each_block_ahead_and_the_next_batch() {
        let mut rng = ChaCha8Rng::seed_from_u64(31);
        let (rows, f, c) = (301, 785, 10);
        let (w, x, y) = problem(rows, f, c, (0.1, 0.5), &mut rng);
        let source = Logged {
            x: &x,
            log: std::sync::Mutex::new(Vec::new()),
        };
        let mut a = LinearModel::from_weights(w.view()).expect("ok");
        let mut b = a.clone();
        let mut sgd = Sgd::default();
        let la = sgd
            .step_rows(&mut a, y.view(), &source, 0.1, &mut StepScratch::new())
            .expect("ok");
        let lb = sgd
            .step(&mut b, x.view(), y.view(), 0.1, &mut StepScratch::new())
            .expect("ok");
        assert_eq!(la.to_bits(), lb.to_bits());
        assert_eq!(a, b, "hints change nothing");

        let log = source.log.into_inner().expect("not poisoned");
        let mid = rows / 2;
        for part in [0..mid, mid..rows] {
            let events: Vec<_> = log
                .iter()
                .filter(|&&(_, first, _)| {
                    part.contains(&first) || (first >= rows && part.contains(&(first - rows)))
                })
                .collect();
            let mut asked = std::collections::BTreeSet::new();
            for &&(fill, first, n) in &events {
                if fill {
                    // Every block but the part's first was asked for before.
                    if first != part.start {
                        assert!((first..first + n).all(|r| asked.contains(&r)), "{first}");
                    }
                } else {
                    asked.extend(first..first + n);
                }
            }
            // The part's last block asks for its first block in the next
            // batch, numbered on from the end of this one.
            let first_block = kernel::BLOCK.min(part.len());
            let next: Vec<_> = asked.iter().filter(|&&r| r >= rows).copied().collect();
            let want: Vec<_> = (part.start + rows..part.start + rows + first_block).collect();
            assert_eq!(next, want);
        }
    }

    #[test]
    fn neither_path_nor_register_blocking_changes_the_gradient_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let (rows, f, c) = (77, 785, 10);
        let (w, x, y) = problem(rows, f, c, (0.1, 0.5), &mut rng);
        let m = LinearModel::from_weights(w.view()).expect("ok");
        let mut runs: Vec<fn(kernel::Op<'_>)> = vec![kernel::run, kernel::run_small];
        // Every path this CPU has: AVX2 for CPUs without AVX-512, portable
        // for CPUs without FMA.
        runs.extend(kernel::runnable().into_iter().map(|(_, run)| run));
        let results: Vec<_> = runs
            .into_iter()
            .map(|run| one_part(&m, &x, &y, 0..rows, run))
            .collect();
        for other in &results[1..] {
            assert_eq!(results[0].0.to_bits(), other.0.to_bits());
            assert!(results[0]
                .1
                .iter()
                .zip(&other.1)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn threads_do_not_change_the_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        // Two parts of 256 rows; five parts of 220.
        for (rows, cuts) in [
            (512, &[0, 256, 512][..]),
            (1100, &[0, 220, 440, 660, 880, 1100]),
        ] {
            let (w, x, y) = problem(rows, 785, 10, (0.1, 0.5), &mut rng);
            let m = LinearModel::from_weights(w.view()).expect("ok");
            let mut s = StepScratch::new();
            let threaded = gradient(&m, x.view(), y.view(), &mut s).expect("ok");
            // Same fixed parts, computed one after the other on this
            // thread, added in order.
            let grads: Vec<_> = cuts
                .windows(2)
                .map(|c| one_part(&m, &x, &y, c[0]..c[1], kernel::run).1)
                .collect();
            for ((f, c), &v) in threaded.indexed_iter() {
                let i = kernel::packed_index(f, c, 10);
                let want = grads[1..].iter().fold(grads[0][i], |sum, g| sum + g[i]);
                assert_eq!(v.to_bits(), want.to_bits(), "{rows} rows");
            }
            threads_give_the_same_steps(&m, &x, &y);
        }
    }

    #[test]
    fn weights_put_in_between_steps_replace_the_parts_copies() {
        // On several threads, each half of a step cut by features keeps a
        // copy of its weights between steps; other weights put in must
        // replace it, as on one thread, which keeps none.
        let mut rng = ChaCha8Rng::seed_from_u64(34);
        let (w, x, y) = problem(64, 785, 10, (0.1, 0.5), &mut rng);
        let (start, other) = softmax_and_halved(&w);
        let run = |threads: usize| {
            let (mut model, mut scratch) = (start.clone(), StepScratch::new());
            let mut sgd = Sgd::with_momentum(0.9, 1e-3)
                .expect("valid")
                .with_threads(threads);
            let mut kept = start.clone();
            let mut losses = Vec::new();
            for step in 0..8 {
                match step {
                    2 => model = other.clone(),
                    4 => kept = model.clone(),
                    // Back to weights of before: a clone of an earlier
                    // model, with that model's version.
                    6 => model = kept.clone(),
                    _ => {}
                }
                let loss = sgd
                    .step(&mut model, x.view(), y.view(), 0.1, &mut scratch)
                    .expect("finite");
                losses.push(loss.to_bits());
            }
            (model, losses, sgd.velocity(&start))
        };
        let one = run(1);
        for threads in [2, 3] {
            let many = run(threads);
            assert!(many.0 == one.0, "other weights on {threads} threads");
            assert_eq!(many.1, one.1, "{threads} threads");
            assert!(many.2 == one.2, "other velocity on {threads} threads");
        }
    }

    #[test]
    fn small_batches_cut_by_features_give_the_same_bits_on_any_threads() {
        let mut rng = ChaCha8Rng::seed_from_u64(20);
        // Two halves of 25 chunks, on two threads; halves of one and two
        // chunks; batches too small for a second thread (the smallest
        // leaves the first part no rows of its own).
        for (rows, f) in [(64, 785), (100, 37), (13, 785), (3, 37), (1, 785)] {
            let rule = Sgd::with_momentum(0.9, 1e-3)
                .expect("valid")
                .rule(rows, 0.1);
            assert!(cut_by_features(rule, rows, f));
            let (w, x, y) = problem(rows, f, 10, (0.1, 0.5), &mut rng);
            let m = LinearModel::from_weights(w.view()).expect("ok");
            threads_give_the_same_steps(&m, &x, &y);
        }
    }

    /// Whole steps, with either optimiser and head, on 1, 2, 3 and 5
    /// threads.
    fn threads_give_the_same_steps(m: &LinearModel, x: &Array2<f32>, y: &Array2<f32>) {
        let mut s = StepScratch::new();
        for (head, optimiser) in [
            (Head::Sigmoid, Sgd::default()),
            (Head::Softmax, Sgd::with_momentum(0.9, 1e-3).expect("valid")),
        ] {
            let start = m.clone().with_head(head);
            let trained: Vec<_> = [1, 2, 3, 5]
                .into_iter()
                .map(|threads| {
                    let (mut model, mut sgd) =
                        (start.clone(), optimiser.clone().with_threads(threads));
                    let losses: Vec<u64> = (0..3)
                        .map(|_| {
                            sgd.step(&mut model, x.view(), y.view(), 0.1, &mut s)
                                .expect("finite")
                                .to_bits()
                        })
                        .collect();
                    (model, losses, sgd.velocity(&start))
                })
                .collect();
            assert!(trained.windows(2).all(|t| t[0] == t[1]), "{head}");
        }
    }

    #[test]
    fn the_update_in_ranges_is_the_whole_update_bit_for_bit() {
        let _turn = pool::tests::IDLE_TESTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut rng = ChaCha8Rng::seed_from_u64(19);
        // The post's SGD cuts every batch by rows: below and above the
        // size at which the parts go to several threads, more than two
        // parts, and odd numbers of features (a range of the chunks is
        // rounded).
        for (rows, f) in [(60, 785), (512, 785), (300, 37), (129, 17), (1300, 53)] {
            let (w, x, y) = problem(rows, f, 10, (0.1, 0.5), &mut rng);
            let mut m = LinearModel::from_weights(w.view()).expect("ok");
            let mut s = StepScratch::new();
            let g = gradient(&m, x.view(), y.view(), &mut s).expect("ok");
            let mut sgd = Sgd::default();
            let scale = 0.3f32 / 512.0;
            // Background work makes either thread wait differently.
            let busy = AtomicU64::new(0);
            let idle = || busy.fetch_add(1, Ordering::Relaxed) < 1000;
            pool::with_idle(&idle, || {
                sgd.step(&mut m, x.view(), y.view(), 0.3, &mut s)
                    .expect("ok");
            });
            for ((fi, c), &v) in m.weights().indexed_iter() {
                let want = w[[fi, c]] - scale * g[[fi, c]];
                assert_eq!(v.to_bits(), want.to_bits(), "rows {rows}, ({fi}, {c})");
            }
        }
    }

    #[test]
    fn step_rows_equals_step_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(18);
        let (w, x, y) = problem(300, 785, 10, (0.1, 0.5), &mut rng);
        let mut a = LinearModel::from_weights(w.view()).expect("ok");
        let mut b = a.clone();
        let mut s = StepScratch::new();
        let la = Sgd::default()
            .step(&mut a, x.view(), y.view(), 0.1, &mut s)
            .expect("ok");
        let xs = x.as_slice().expect("standard");
        // A source that scribbles on the padding, which must not matter.
        let fill = |first: usize, out: &mut [f32], stride: usize| {
            for (k, row) in out.chunks_exact_mut(stride).enumerate() {
                row[..785].copy_from_slice(&xs[(first + k) * 785..(first + k + 1) * 785]);
                row[785..].fill(f32::NAN);
            }
        };
        let lb = Sgd::default()
            .step_rows(&mut b, y.view(), &fill, 0.1, &mut s)
            .expect("ok");
        assert_eq!(la.to_bits(), lb.to_bits());
        assert_eq!(a, b);
    }

    /// Softmax regression with momentum and weight decay, three steps, in
    /// `f64` with ndarray: `p = softmax(X W)`, `g = X^T (p - y) / rows`,
    /// `v = mu v + g + wd W`, `W -= lr v`.
    fn reference_momentum(
        w: &Array2<f32>,
        batches: &[(Array2<f32>, Array2<f32>)],
        (mu, wd, lr): (f64, f64, f64),
    ) -> (Array2<f64>, Array2<f64>, Vec<f64>) {
        let mut w = w.mapv(f64::from);
        let mut v = Array2::<f64>::zeros(w.raw_dim());
        let mut losses = Vec::new();
        for (x, y) in batches {
            let (x, y) = (x.mapv(f64::from), y.mapv(f64::from));
            let mut p = x.dot(&w);
            let mut loss = 0.0;
            for (mut row, yr) in p.rows_mut().into_iter().zip(y.rows()) {
                let max = row.fold(f64::NEG_INFINITY, |m, &z| m.max(z));
                row.mapv_inplace(|z| (z - max).exp());
                let sum = row.sum();
                row.mapv_inplace(|e| e / sum);
                loss -= row.iter().zip(yr).map(|(p, y)| y * p.ln()).sum::<f64>();
            }
            losses.push(loss / x.nrows() as f64);
            let g = x.t().dot(&(p - &y)) / x.nrows() as f64;
            v = v * mu + g + &w * wd;
            w = w - &v * lr;
        }
        (w, v, losses)
    }

    #[test]
    fn softmax_with_momentum_and_weight_decay_matches_a_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(77);
        let (features, classes) = (40, 7);
        let (w, _, _) = problem(1, features, classes, (0.3, 1.0), &mut rng);
        // A full batch, one above the threads' threshold, short ones (a
        // single row leaves the first part no rows of its own).
        let batches: Vec<_> = [64, 130, 9, 1, 3]
            .into_iter()
            .map(|rows| {
                let (_, x, y) = problem(rows, features, classes, (0.3, 1.0), &mut rng);
                (x, y)
            })
            .collect();
        let (mu, wd, lr) = (0.9f32, 0.01f32, 0.2f32);
        let mut model = LinearModel::from_weights(w.view())
            .expect("finite")
            .with_head(Head::Softmax);
        let mut sgd = Sgd::with_momentum(mu, wd).expect("valid");
        let mut scratch = StepScratch::new();
        let mut losses = Vec::new();
        for (x, y) in &batches {
            losses.push(
                sgd.step(&mut model, x.view(), y.view(), lr, &mut scratch)
                    .expect("finite"),
            );
        }
        let (want_w, want_v, want_losses) =
            reference_momentum(&w, &batches, (mu.into(), wd.into(), lr.into()));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
        for (got, want) in losses.iter().zip(&want_losses) {
            assert!(close(*got, *want), "loss {got} against {want}");
        }
        for (got, want) in model.weights().iter().zip(&want_w) {
            assert!(close(f64::from(*got), *want), "weight {got} against {want}");
        }
        let v = sgd.velocity(&model).expect("momentum keeps a velocity");
        for (got, want) in v.iter().zip(&want_v) {
            assert!(
                close(f64::from(*got), *want),
                "velocity {got} against {want}"
            );
        }
        // A velocity put back continues the same run, bit for bit.
        let mut copy = Sgd::with_momentum(mu, wd).expect("valid");
        copy.set_velocity(&model, v.view()).expect("same shape");
        let mut twin = model.clone();
        let (x, y) = &batches[0];
        let a = sgd.step(&mut model, x.view(), y.view(), lr, &mut scratch);
        let b = copy.step(&mut twin, x.view(), y.view(), lr, &mut scratch);
        assert_eq!(a.ok().map(f64::to_bits), b.ok().map(f64::to_bits));
        assert_eq!(model, twin);
        // The post's optimiser has no velocity to restore.
        assert!(Sgd::default().set_velocity(&model, v.view()).is_err());
        assert!(Sgd::with_momentum(1.0, 0.0).is_err());
    }
}
