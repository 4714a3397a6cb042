//! The report a run writes with `--report`, and the final tables it prints.

use std::fmt::Write as _;

use mnist_model::ConfusionMatrix;
use serde::Serialize;

pub use mnist_train::EpochRecord;

/// One class's row of the final table.
#[derive(Debug, Clone, Serialize)]
pub struct ClassRow {
    /// Class index.
    pub class: usize,
    /// Class name (the digit for MNIST).
    pub name: String,
    /// Precision; 0 for a class never predicted.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1 score; 0 when precision and recall are both 0.
    pub f1: f64,
    /// Number of true samples of the class.
    pub support: u64,
}

/// The final evaluation on the test set.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// Number of samples evaluated.
    pub samples: u64,
    /// Accuracy.
    pub accuracy: f64,
    /// Mean loss.
    pub loss: f64,
    /// Per-class metrics.
    pub per_class: Vec<ClassRow>,
    /// Macro averages of precision, recall and F1.
    pub macro_avg: MacroAvg,
    /// Confusion matrix, rows = true class, columns = predicted class.
    pub confusion: Vec<Vec<u64>>,
}

/// Macro averages over the classes.
#[derive(Debug, Clone, Serialize)]
pub struct MacroAvg {
    /// Mean precision.
    pub precision: f64,
    /// Mean recall.
    pub recall: f64,
    /// Mean F1.
    pub f1: f64,
}

impl TestReport {
    /// The report of a confusion matrix and a mean loss.
    pub fn new(confusion: &ConfusionMatrix, loss: f64, names: &[String]) -> Self {
        let per_class: Vec<ClassRow> = confusion
            .per_class()
            .into_iter()
            .map(|m| ClassRow {
                class: m.class,
                name: names
                    .get(m.class)
                    .cloned()
                    .unwrap_or_else(|| m.class.to_string()),
                precision: m.precision,
                recall: m.recall,
                f1: m.f1,
                support: m.support,
            })
            .collect();
        let macro_avg = confusion.macro_average();
        Self {
            samples: confusion.total(),
            accuracy: confusion.accuracy(),
            loss,
            per_class,
            macro_avg: MacroAvg {
                precision: macro_avg.precision,
                recall: macro_avg.recall,
                f1: macro_avg.f1,
            },
            confusion: confusion
                .counts()
                .rows()
                .into_iter()
                .map(|r| r.to_vec())
                .collect(),
        }
    }

    /// The per-class table and the confusion matrix, as printed.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let w = self
            .per_class
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(
            s,
            "{:>w$}  {:>9}  {:>6}  {:>6}  {:>7}",
            "class", "precision", "recall", "f1", "support"
        );
        for r in &self.per_class {
            let _ = writeln!(
                s,
                "{:>w$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}",
                r.name, r.precision, r.recall, r.f1, r.support
            );
        }
        let _ = writeln!(
            s,
            "{:>w$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}",
            "macro",
            self.macro_avg.precision,
            self.macro_avg.recall,
            self.macro_avg.f1,
            self.samples
        );
        let _ = writeln!(
            s,
            "\nconfusion matrix (rows: true class, columns: predicted)"
        );
        let cw = self
            .confusion
            .iter()
            .flatten()
            .map(|v| v.to_string().len())
            .max()
            .unwrap_or(1)
            .max(4);
        let _ = write!(s, "{:>w$} ", "");
        for r in &self.per_class {
            let _ = write!(s, " {:>cw$}", truncate(&r.name, cw));
        }
        s.push('\n');
        for (r, row) in self.per_class.iter().zip(&self.confusion) {
            let _ = write!(s, "{:>w$} ", r.name);
            for v in row {
                let _ = write!(s, " {v:>cw$}");
            }
            s.push('\n');
        }
        s
    }
}

fn truncate(name: &str, width: usize) -> &str {
    match name.char_indices().nth(width) {
        Some((i, _)) => &name[..i],
        None => name,
    }
}

/// Wall-clock times of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Opening the data and preparing the evaluation features.
    pub load_seconds: f64,
    /// The training loop, per-epoch evaluation included.
    pub train_seconds: f64,
    /// The final test evaluation.
    pub test_seconds: f64,
}
