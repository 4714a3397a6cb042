//! Confusion matrix, per-class scores, and evaluation of a model on a set.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linear::{argmax, LinearModel};
use crate::loss::bce_row_label;
use crate::pool;
use crate::rows::RowSource;
use crate::sgd::with_rows;

/// Rows per piece of work in [`evaluate_rows`]: small enough that the two
/// threads finish together, large enough that taking a piece costs nothing.
const EVAL_PIECE: usize = 240;

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
    /// Mean clipped cross-entropy against the one-hot labels, as
    /// [`bce_loss`](crate::bce_loss).
    pub loss: f64,
    /// Fraction of rows whose argmax is the label.
    pub accuracy: f64,
    /// True labels against predictions.
    pub confusion: ConfusionMatrix,
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
    let rows = labels.len();
    if rows == 0 {
        return Err(Error::ZeroSize { what: "rows" });
    }
    let classes = model.classes();
    let mut confusion = ConfusionMatrix::new(classes)?;
    // Per row: the prediction and the row's loss, computed by both threads
    // taking pieces of the rows in turn: however the pieces fall, each row's
    // results are the same.
    let mut predicted = vec![0usize; rows];
    let mut row_loss = vec![0.0f64; rows];
    let pieces = std::sync::Mutex::new(
        (0..rows)
            .step_by(EVAL_PIECE)
            .zip(predicted.chunks_mut(EVAL_PIECE))
            .zip(row_loss.chunks_mut(EVAL_PIECE)),
    );
    let work = || {
        let mut block = Vec::new();
        let mut p = Vec::new();
        loop {
            let next = pieces
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .next();
            let Some(((start, pred), loss)) = next else {
                break;
            };
            let end = start + pred.len();
            p.resize(pred.len() * classes, 0.0);
            model.forward_rows(start..end, features, &mut p, &mut block);
            for (i, row) in p.chunks_exact(classes).enumerate() {
                pred[i] = argmax(row.iter().copied());
                loss[i] = bce_row_label(row, usize::from(labels[start + i]));
            }
        }
    };
    if rows >= MIN_ROWS_FOR_THREADS {
        pool::join(work, work);
    } else {
        work();
    }
    let mut loss = 0.0f64;
    for (index, ((&label, &p), &l)) in labels.iter().zip(&predicted).zip(&row_loss).enumerate() {
        confusion.add(index, usize::from(label), p)?;
        loss += l;
    }
    Ok(Evaluation {
        loss: loss / rows as f64,
        accuracy: confusion.accuracy(),
        confusion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bce_loss;
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

    #[test]
    fn evaluate_agrees_with_the_whole_set_at_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(20);
        let (rows, f, c) = (2500, 30, 10);
        let w = Array2::from_shape_fn((f, c), |_| rng.gen_range(-1.0f32..1.0));
        let x = Array2::from_shape_fn((rows, f), |_| rng.gen_range(-1.0f32..1.0));
        let labels: Vec<u8> = (0..rows).map(|_| rng.gen_range(0..c as u8)).collect();
        let m = LinearModel::from_weights(w.view()).expect("finite");
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
