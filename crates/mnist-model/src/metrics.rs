//! Confusion matrix, per-class scores, and evaluation of a model on a set.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::background::Background;
use crate::error::{Error, Result};
use crate::linear::{argmax, LinearModel};
use crate::pool;
use crate::rows::RowSource;
use crate::sgd::with_rows;

/// Rows per piece of work of an evaluation: small enough that a training
/// thread doing a piece while it waits (see [`PendingEvaluation`]) keeps
/// the other waiting for a few microseconds at most, and that two threads
/// sharing an evaluation finish together; large enough that taking a piece
/// costs little and that the forward pass's weights, read from L2 once per
/// piece and group of classes, serve many rows. (Whole training runs, paired
/// against 6 rows: 12 rows 1.002x, 24 rows 1.030x and 1.023x, 30 rows
/// 1.028x, 48 rows 1.001x.)
const EVAL_PIECE: usize = 24;

/// Below this many rows a second thread costs more than it saves.
const MIN_ROWS_FOR_THREADS: usize = 256;

/// Counts of (true class, predicted class) pairs: rows are the true class,
/// columns the predicted one.
///
/// Serialises as `{"classes": n, "counts": [[...n counts...] x n]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    counts: Array2<u64>,
}

impl Serialize for ConfusionMatrix {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr {
            classes: usize,
            counts: Vec<Vec<u64>>,
        }
        Repr {
            classes: self.classes(),
            counts: self.counts.rows().into_iter().map(|r| r.to_vec()).collect(),
        }
        .serialize(serializer)
    }
}

/// Precision, recall and F1 of one class against the rest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class.
    pub class: usize,
    /// Of the samples predicted as this class, the fraction that are; 0 if
    /// the class is never predicted.
    pub precision: f64,
    /// Of the samples of this class, the fraction predicted as it; 0 if the
    /// class never occurs.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// Number of samples of this class.
    pub support: u64,
}

/// Unweighted means of the per-class scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MacroAverage {
    /// Mean precision.
    pub precision: f64,
    /// Mean recall.
    pub recall: f64,
    /// Mean F1.
    pub f1: f64,
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl ConfusionMatrix {
    /// An empty `classes x classes` matrix.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] if `classes` is 0.
    pub fn new(classes: usize) -> Result<Self> {
        if classes == 0 {
            return Err(Error::ZeroSize { what: "classes" });
        }
        Ok(ConfusionMatrix {
            counts: Array2::zeros((classes, classes)),
        })
    }

    /// The matrix of `truth[i]` against `predicted[i]`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] if `classes` is 0, [`Error::DimensionMismatch`] if
    /// the slices differ in length, and [`Error::LabelOutOfRange`] for the
    /// first label that is not below `classes`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mnist_model::ConfusionMatrix;
    ///
    /// let m = ConfusionMatrix::from_predictions(3, &[0u8, 1, 2, 2], &[0, 2, 2, 2])?;
    /// assert_eq!(m.accuracy(), 0.75);
    /// assert_eq!(m.count(1, 2), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_predictions<T: Copy + Into<usize>>(
        classes: usize,
        truth: &[T],
        predicted: &[usize],
    ) -> Result<Self> {
        let mut m = Self::new(classes)?;
        if truth.len() != predicted.len() {
            return Err(Error::DimensionMismatch {
                what: "predictions (one per true label)",
                expected: truth.len(),
                found: predicted.len(),
            });
        }
        for (index, (&t, &p)) in truth.iter().zip(predicted).enumerate() {
            m.add(index, t.into(), p)?;
        }
        Ok(m)
    }

    fn add(&mut self, index: usize, truth: usize, predicted: usize) -> Result<()> {
        let classes = self.classes();
        for (what, label) in [("true", truth), ("predicted", predicted)] {
            if label >= classes {
                return Err(Error::LabelOutOfRange {
                    what,
                    index,
                    label,
                    classes,
                });
            }
        }
        self.counts[[truth, predicted]] += 1;
        Ok(())
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.counts.nrows()
    }

    /// The counts, rows = true class, columns = predicted class.
    pub fn counts(&self) -> ArrayView2<'_, u64> {
        self.counts.view()
    }

    /// How many samples of class `truth` were predicted as `predicted`
    /// (0 for classes out of range).
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts.get([truth, predicted]).copied().unwrap_or(0)
    }

    /// Number of samples counted.
    pub fn total(&self) -> u64 {
        self.counts.sum()
    }

    /// Number of correct predictions (the diagonal).
    pub fn correct(&self) -> u64 {
        self.counts.diag().sum()
    }

    /// Fraction of correct predictions; 0 for an empty matrix.
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct(), self.total())
    }

    /// Precision, recall, F1 and support of every class, one-vs-rest.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        (0..self.classes())
            .map(|c| {
                let tp = self.counts[[c, c]];
                let predicted = self.counts.column(c).sum();
                let support = self.counts.row(c).sum();
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics {
                    class: c,
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect()
    }

    /// Unweighted means of [`per_class`](Self::per_class) over all classes.
    pub fn macro_average(&self) -> MacroAverage {
        let rows = self.per_class();
        let n = rows.len() as f64;
        let mean = |f: fn(&ClassMetrics) -> f64| rows.iter().map(f).sum::<f64>() / n;
        MacroAverage {
            precision: mean(|r| r.precision),
            recall: mean(|r| r.recall),
            f1: mean(|r| r.f1),
        }
    }
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Mean loss against the one-hot labels: for the sigmoid head the
    /// clipped binary cross-entropy of [`bce_loss`](crate::bce_loss), for
    /// the softmax the cross-entropy `-ln p[label]`.
    pub loss: f64,
    /// Fraction of rows whose argmax is the label.
    pub accuracy: f64,
    /// True labels against predictions.
    pub confusion: ConfusionMatrix,
}

/// Checks that there is one label per row and that each is a class.
///
/// # Errors
/// [`Error::DimensionMismatch`] or [`Error::LabelOutOfRange`].
pub(crate) fn check_labels(labels: &[u8], rows: usize, classes: usize) -> Result<()> {
    if labels.len() != rows {
        return Err(Error::DimensionMismatch {
            what: "labels (one per row)",
            expected: rows,
            found: labels.len(),
        });
    }
    match labels.iter().position(|&l| usize::from(l) >= classes) {
        Some(index) => Err(Error::LabelOutOfRange {
            what: "true",
            index,
            label: usize::from(labels[index]),
            classes,
        }),
        None => Ok(()),
    }
}

/// Loss, accuracy and confusion matrix of `model` on the rows of `x` with
/// true `labels`, computed chunk by chunk with the fast forward pass (memory
/// beyond the inputs: a few thousand floats).
///
/// # Errors
///
/// [`Error::DimensionMismatch`] if `x` does not have the model's features or
/// `labels` is not one per row, [`Error::ZeroSize`] if there are no rows, and
/// [`Error::LabelOutOfRange`] for a label not below the number of classes.
///
/// # Examples
///
/// ```
/// use mnist_model::{evaluate, LinearModel};
/// use ndarray::array;
///
/// let model = LinearModel::from_weights(array![[1.0f32, -1.0]].view())?;
/// let x = array![[2.0f32], [-2.0], [3.0]];
/// let e = evaluate(&model, x.view(), &[0, 1, 1])?;
/// assert!((e.accuracy - 2.0 / 3.0).abs() < 1e-12);
/// assert_eq!(e.confusion.count(1, 0), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn evaluate(model: &LinearModel, x: ArrayView2<'_, f32>, labels: &[u8]) -> Result<Evaluation> {
    model.check_input(&x)?;
    let rows = x.nrows();
    if labels.len() != rows {
        return Err(Error::DimensionMismatch {
            what: "labels (one per row)",
            expected: rows,
            found: labels.len(),
        });
    }
    with_rows(x, |fill| evaluate_rows(model, labels, fill))?
}

/// [`evaluate`] on rows made on demand by `features`, as in
/// [`Sgd::step_rows`](crate::Sgd::step_rows), one row per label: nothing
/// but a block of rows per thread needs to exist as `f32` at a time. Two
/// threads take pieces of the rows in turn, so neither waits for the other;
/// each row's prediction and loss do not depend on which thread computed
/// it, and the losses are summed in row order afterwards, so the result is
/// the same as [`evaluate`]'s, bit for bit.
///
/// # Errors
///
/// [`Error::ZeroSize`] if there are no labels, and
/// [`Error::LabelOutOfRange`] for a label not below the number of classes.
pub fn evaluate_rows<F>(model: &LinearModel, labels: &[u8], features: &F) -> Result<Evaluation>
where
    F: RowSource + ?Sized,
{
    PendingEvaluation::new(model, labels, features)?.finish()
}

/// An evaluation as [`evaluate_rows`] of the model as it was when this was
/// made, done in pieces of a few rows by whoever has time. It is
/// [`Background`] work: with [`with_background`](crate::with_background),
/// the evaluation after one epoch fills the moments the threads of the next
/// epoch's steps would wait, and [`finish`](Self::finish) does what is
/// left. Each row's prediction and loss are the same whoever computes them
/// and whenever, and the losses are summed in row order at the end, so the
/// result is that of [`evaluate_rows`], bit for bit.
///
/// # Examples
///
/// ```
/// use mnist_model::{evaluate_rows, Background, LinearModel, PendingEvaluation};
/// use ndarray::array;
///
/// let mut model = LinearModel::from_weights(array![[1.0f32, -1.0]].view())?;
/// let rows = |first: usize, out: &mut [f32], stride: usize| {
///     for (k, row) in out.chunks_exact_mut(stride).enumerate() {
///         row[0] = if (first + k) % 3 == 0 { -2.0 } else { 2.0 };
///     }
/// };
/// let labels = vec![0u8; 100];
/// let now = evaluate_rows(&model, &labels, &rows)?;
/// let pending = PendingEvaluation::new(&model, &labels, &rows)?;
/// // The evaluation is of the model as it was: training may go on.
/// model = LinearModel::from_weights(array![[-1.0f32, 1.0]].view())?;
/// assert!(pending.piece());
/// let result = pending.finish()?;
/// assert_eq!(result, now);
/// assert!((result.accuracy - 0.66).abs() < 1e-12);
/// assert_ne!(evaluate_rows(&model, &labels, &rows)?, now);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PendingEvaluation<'a, F: ?Sized> {
    /// The model as it was when the evaluation was asked for.
    model: LinearModel,
    labels: &'a [u8],
    features: &'a F,
    /// The first row of the next piece to take.
    next: AtomicUsize,
    /// Each row's predicted class, and the bits of its `f64` loss.
    predicted: Vec<AtomicUsize>,
    row_loss: Vec<AtomicU64>,
    /// Buffers for the threads computing pieces: a block of rows and its
    /// probabilities.
    scratch: [Mutex<(Vec<f32>, Vec<f32>)>; 2],
}

impl<F: ?Sized> std::fmt::Debug for PendingEvaluation<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingEvaluation")
            .field("rows", &self.labels.len())
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<'a, F> PendingEvaluation<'a, F>
where
    F: RowSource + ?Sized,
{
    /// An evaluation of `model` as it is now (a copy is kept) on the rows
    /// made by `features`, one per label.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] if there are no labels.
    pub fn new(model: &LinearModel, labels: &'a [u8], features: &'a F) -> Result<Self> {
        let rows = labels.len();
        if rows == 0 {
            return Err(Error::ZeroSize { what: "rows" });
        }
        Ok(PendingEvaluation {
            model: model.clone(),
            labels,
            features,
            next: AtomicUsize::new(0),
            predicted: (0..rows).map(|_| AtomicUsize::new(0)).collect(),
            row_loss: (0..rows).map(|_| AtomicU64::new(0)).collect(),
            scratch: Default::default(),
        })
    }

    /// Computes the rows not yet computed, on two threads if there are
    /// enough, and the result.
    ///
    /// # Errors
    ///
    /// [`Error::LabelOutOfRange`] for a label not below the number of
    /// classes.
    pub fn finish(self) -> Result<Evaluation> {
        let rows = self.labels.len();
        let left = rows.saturating_sub(self.next.load(Ordering::Relaxed));
        let work = || while self.piece() {};
        if left >= MIN_ROWS_FOR_THREADS {
            pool::join(work, work);
        } else {
            work();
        }
        let mut confusion = ConfusionMatrix::new(self.model.classes())?;
        let mut loss = 0.0f64;
        let results = self.predicted.iter().zip(&self.row_loss);
        for (index, (&label, (p, l))) in self.labels.iter().zip(results).enumerate() {
            confusion.add(index, usize::from(label), p.load(Ordering::Relaxed))?;
            loss += f64::from_bits(l.load(Ordering::Relaxed));
        }
        Ok(Evaluation {
            loss: loss / rows as f64,
            accuracy: confusion.accuracy(),
            confusion,
        })
    }
}

impl<F> Background for PendingEvaluation<'_, F>
where
    F: RowSource + ?Sized,
{
    /// Computes the next few rows (`EVAL_PIECE`, 24) not yet taken.
    fn piece(&self) -> bool {
        let rows = self.labels.len();
        if self.next.load(Ordering::Relaxed) >= rows {
            return false;
        }
        let start = self.next.fetch_add(EVAL_PIECE, Ordering::Relaxed);
        if start >= rows {
            return false;
        }
        let end = rows.min(start + EVAL_PIECE);
        let classes = self.model.classes();
        let mut own = None;
        let mut held = self.scratch.iter().find_map(|m| m.try_lock().ok());
        let (block, p) = match held.as_deref_mut() {
            Some(buffers) => buffers,
            None => own.insert((Vec::new(), Vec::new())),
        };
        p.resize((end - start) * classes, 0.0);
        self.model.forward_rows(start..end, self.features, p, block);
        for (i, row) in p.chunks_exact(classes).enumerate() {
            let label = usize::from(self.labels[start + i]);
            self.predicted[start + i].store(argmax(row.iter().copied()), Ordering::Relaxed);
            let loss = self.model.head().row_loss(row, label);
            self.row_loss[start + i].store(loss.to_bits(), Ordering::Relaxed);
        }
        // The images of the next two pieces not yet taken, fetched into
        // cache until a thread takes them (pieces are done here and there
        // between other work, so nothing else asks for them in time).
        let next = self.next.load(Ordering::Relaxed);
        if next < rows {
            self.features
                .prefetch(next, (2 * EVAL_PIECE).min(rows - next));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bce_loss;
    use crate::loss::bce_row_label;
    use ndarray::{array, Array2};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn matches_hand_computed_matrix() {
        // truth:     0 0 0 1 1 2 2 2 2
        // predicted: 0 0 1 1 0 2 2 0 1
        let truth = [0u8, 0, 0, 1, 1, 2, 2, 2, 2];
        let predicted = [0, 0, 1, 1, 0, 2, 2, 0, 1];
        let m = ConfusionMatrix::from_predictions(3, &truth, &predicted).expect("valid");
        assert_eq!(m.counts(), array![[2u64, 1, 0], [1, 1, 0], [1, 1, 2]]);
        assert_eq!((m.total(), m.correct()), (9, 5));
        assert!((m.accuracy() - 5.0 / 9.0).abs() < 1e-15);
        let rows = m.per_class();
        // class 0: tp 2, predicted 4, support 3
        assert_eq!(rows[0].support, 3);
        assert!((rows[0].precision - 0.5).abs() < 1e-15);
        assert!((rows[0].recall - 2.0 / 3.0).abs() < 1e-15);
        assert!((rows[0].f1 - 4.0 / 7.0).abs() < 1e-15);
        // class 1: tp 1, predicted 3, support 2
        assert!((rows[1].precision - 1.0 / 3.0).abs() < 1e-15);
        assert!((rows[1].recall - 0.5).abs() < 1e-15);
        assert!((rows[1].f1 - 0.4).abs() < 1e-15);
        // class 2: tp 2, predicted 2, support 4
        assert_eq!((rows[2].precision, rows[2].recall), (1.0, 0.5));
        assert!((rows[2].f1 - 2.0 / 3.0).abs() < 1e-15);
        let avg = m.macro_average();
        assert!((avg.precision - (0.5 + 1.0 / 3.0 + 1.0) / 3.0).abs() < 1e-15);
        assert!((avg.recall - (2.0 / 3.0 + 0.5 + 0.5) / 3.0).abs() < 1e-15);
        assert!((avg.f1 - (4.0 / 7.0 + 0.4 + 2.0 / 3.0) / 3.0).abs() < 1e-15);
    }

    #[test]
    fn never_predicted_class_scores_zero_not_nan() {
        let m = ConfusionMatrix::from_predictions(3, &[0usize, 1, 2], &[0, 0, 0]).expect("valid");
        let rows = m.per_class();
        for r in &rows[1..] {
            assert_eq!((r.precision, r.recall, r.f1, r.support), (0.0, 0.0, 0.0, 1));
        }
        // A class that never occurs and is never predicted.
        let m = ConfusionMatrix::from_predictions(2, &[0u8], &[0]).expect("valid");
        assert_eq!(m.per_class()[1].precision, 0.0);
        assert_eq!(m.per_class()[1].support, 0);
        let empty = ConfusionMatrix::new(2).expect("valid");
        assert_eq!(empty.accuracy(), 0.0);
        assert!(empty.macro_average().f1 == 0.0);
    }

    #[test]
    fn rejects_bad_labels_and_lengths() {
        assert!(matches!(
            ConfusionMatrix::from_predictions(3, &[0u8, 1], &[0]),
            Err(Error::DimensionMismatch {
                expected: 2,
                found: 1,
                ..
            })
        ));
        match ConfusionMatrix::from_predictions(3, &[0u8, 3], &[0, 0]) {
            Err(e @ Error::LabelOutOfRange { .. }) => assert_eq!(
                e.to_string(),
                "true label 3 at index 1 is out of range for 3 classes"
            ),
            other => panic!("expected LabelOutOfRange, got {other:?}"),
        }
        assert!(matches!(
            ConfusionMatrix::from_predictions(3, &[0u8], &[7]),
            Err(Error::LabelOutOfRange {
                what: "predicted",
                label: 7,
                ..
            })
        ));
        assert!(matches!(
            ConfusionMatrix::new(0),
            Err(Error::ZeroSize { .. })
        ));
    }

    #[test]
    fn class_metrics_serialise_with_named_fields() {
        let row = ClassMetrics {
            class: 3,
            precision: 0.5,
            recall: 0.25,
            f1: 1.0 / 3.0,
            support: 8,
        };
        let json = serde_json::to_value(row).expect("serialisable");
        for key in ["class", "precision", "recall", "f1", "support"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        let m = ConfusionMatrix::from_predictions(2, &[0u8, 1], &[1, 1]).expect("valid");
        assert_eq!(
            serde_json::to_string(&m).expect("serialisable"),
            r#"{"classes":2,"counts":[[0,1],[0,1]]}"#
        );
    }

    /// A model with random weights, random inputs and random labels.
    fn random_set(
        seed: u64,
        rows: usize,
        f: usize,
        c: usize,
    ) -> (LinearModel, Array2<f32>, Vec<u8>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let w = Array2::from_shape_fn((f, c), |_| rng.gen_range(-1.0f32..1.0));
        let x = Array2::from_shape_fn((rows, f), |_| rng.gen_range(-1.0f32..1.0));
        let labels: Vec<u8> = (0..rows).map(|_| rng.gen_range(0..c as u8)).collect();
        let m = LinearModel::from_weights(w.view()).expect("finite");
        (m, x, labels)
    }

    #[test]
    fn evaluate_agrees_with_the_whole_set_at_once() {
        let (rows, c) = (2500, 10);
        let (m, x, labels) = random_set(20, rows, 30, c);
        let e = evaluate(&m, x.view(), &labels).expect("valid");
        let p = m.predict_proba(x.view()).expect("ok");
        let y = Array2::from_shape_fn((rows, c), |(r, k)| f32::from(usize::from(labels[r]) == k));
        let loss = bce_loss(p.view(), y.view()).expect("ok");
        assert!((e.loss - loss).abs() < 1e-9 * loss);
        // Row by row in order, as evaluation sums them, whichever thread
        // took which piece of the rows: the same bits every time.
        let in_order = p
            .rows()
            .into_iter()
            .zip(&labels)
            .map(|(row, &l)| bce_row_label(row.as_slice().expect("row"), usize::from(l)))
            .fold(0.0f64, |a, b| a + b)
            / rows as f64;
        for _ in 0..20 {
            let again = evaluate(&m, x.view(), &labels).expect("valid");
            assert_eq!(again.loss.to_bits(), in_order.to_bits());
            assert_eq!(again.confusion, e.confusion);
        }
        let predicted = m.predict(x.view()).expect("ok");
        let cm = ConfusionMatrix::from_predictions(c, &labels, &predicted).expect("valid");
        assert_eq!(e.confusion, cm);
        assert_eq!(e.accuracy, cm.accuracy());
    }

    #[test]
    fn a_pending_evaluation_done_in_the_background_gives_the_same_bits() {
        let _turn = crate::pool::tests::IDLE_TESTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (rows, f, c) = (1500, 40, 10);
        let (m, x, labels) = random_set(21, rows, f, c);
        let want = evaluate(&m, x.view(), &labels).expect("valid");
        let xs = x.as_slice().expect("standard layout");
        let fill = |first: usize, out: &mut [f32], stride: usize| {
            for (k, row) in out.chunks_exact_mut(stride).enumerate() {
                row[..f].copy_from_slice(&xs[(first + k) * f..(first + k + 1) * f]);
            }
        };
        let mut sgd = crate::Sgd::new(256).expect("valid");
        let y = Array2::from_shape_fn((256, c), |(r, k)| f32::from(r % c == k));
        let xb = x.slice(ndarray::s![..256, ..]);
        let mut scratch = crate::StepScratch::new();
        for pieces_first in [0, 3, 1000] {
            // Some pieces taken here, some in the background of training
            // steps (on the helper between steps, and here while waiting for
            // it), the rest by `finish`; the model being trained meanwhile.
            let pending = PendingEvaluation::new(&m, &labels, &fill).expect("rows");
            for _ in 0..pieces_first {
                pending.piece();
            }
            let mut trained = m.clone();
            crate::with_background(&pending, || {
                for _ in 0..5 {
                    sgd.step(&mut trained, xb, y.view(), 0.1, &mut scratch)
                        .expect("finite");
                }
            });
            assert_ne!(trained, m, "the model trained meanwhile");
            let got = pending.finish().expect("valid");
            assert_eq!(got.loss.to_bits(), want.loss.to_bits());
            assert_eq!(got.confusion, want.confusion);
            assert_eq!(got.accuracy.to_bits(), want.accuracy.to_bits());
        }
        // Many threads taking pieces at once.
        let pending = PendingEvaluation::new(&m, &labels, &fill).expect("rows");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| while pending.piece() {});
            }
        });
        assert!(!pending.piece(), "nothing left");
        assert_eq!(pending.finish().expect("valid"), want);
        assert!(matches!(
            PendingEvaluation::new(&m, &[], &fill),
            Err(Error::ZeroSize { .. })
        ));
    }

    #[test]
    fn evaluate_rejects_bad_input() {
        let m = LinearModel::from_weights(Array2::<f32>::zeros((2, 3)).view()).expect("ok");
        let x = Array2::<f32>::zeros((2, 2));
        assert!(matches!(
            evaluate(&m, x.view(), &[0]),
            Err(Error::DimensionMismatch { .. })
        ));
        assert!(matches!(
            evaluate(&m, x.view(), &[0, 3]),
            Err(Error::LabelOutOfRange { label: 3, .. })
        ));
        assert!(matches!(
            evaluate(&m, Array2::<f32>::zeros((0, 2)).view(), &[]),
            Err(Error::ZeroSize { .. })
        ));
    }
}
