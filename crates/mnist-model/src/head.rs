//! The output head of every model: how the last layer's outputs become
//! probabilities, and which loss the training minimises.

use crate::loss::bce_row_label;
use crate::sigmoid::{exp_nonpositive, sigmoid_in_place};

/// How a model turns its last layer's outputs (the logits) into
/// probabilities. The post's model has the sigmoid head; every other preset
/// the softmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Head {
    /// An independent sigmoid per class with the post's clipped binary
    /// cross-entropy, summed over the classes.
    #[default]
    Sigmoid,
    /// A softmax over the classes with cross-entropy.
    Softmax,
}

impl Head {
    /// The name used in model files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Head::Sigmoid => "sigmoid",
            Head::Softmax => "softmax",
        }
    }

    /// The head called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sigmoid" => Some(Head::Sigmoid),
            "softmax" => Some(Head::Softmax),
            _ => None,
        }
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Head {
    /// The probabilities of logits `z`, `classes` to a row, in place.
    #[inline(always)]
    pub(crate) fn activate_rows(self, z: &mut [f32], classes: usize) {
        match self {
            Head::Sigmoid => sigmoid_in_place(z),
            Head::Softmax => {
                for row in z.chunks_exact_mut(classes) {
                    softmax_row(row);
                }
            }
        }
    }

    /// The loss of one row of probabilities `p` against class `label`: the
    /// clipped binary cross-entropy summed over the classes for the sigmoid
    /// head, `-ln p[label]` (at most `-ln f32::MIN_POSITIVE`) for the
    /// softmax.
    pub(crate) fn row_loss(self, p: &[f32], label: usize) -> f64 {
        match self {
            Head::Sigmoid => bce_row_label(p, label),
            Head::Softmax => {
                let pl = p.get(label).copied().unwrap_or(f32::NAN);
                -f64::from(pl.max(f32::MIN_POSITIVE)).ln()
            }
        }
    }
}

/// The softmax of one row, in place: `e^(z - max)` in `f64` by the same
/// exponential as the sigmoid, summed in order, each divided by the sum and
/// rounded once, so every path and platform gives the same bits. Returns
/// the row's maximum and `ln` of the sum, for the cross-entropy.
#[inline(always)]
fn softmax_row(row: &mut [f32]) -> (f64, f64) {
    // NaN never wins the maximum but makes its own `e` NaN, hence the sum.
    let max = row
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    let max = f64::from(max);
    let mut sum = 0.0f64;
    for &v in row.iter() {
        sum += exp_nonpositive(f64::from(v) - max);
    }
    for v in row.iter_mut() {
        *v = (exp_nonpositive(f64::from(*v) - max) / sum) as f32;
    }
    (max, sum.ln())
}

/// Softmax of logits `z` against targets `y` (`classes` to a row): adds the
/// cross-entropy `sum_c y_c (ln sum_k e^(z_k - max) - (z_c - max))` of
/// every row to `loss` and leaves `p - y` in `z`.
#[inline(always)]
pub(crate) fn softmax_residuals(z: &mut [f32], y: &[f32], classes: usize, loss: &mut f64) {
    for (zr, yr) in z.chunks_exact_mut(classes).zip(y.chunks_exact(classes)) {
        // sum_c y_c (ln_sum + max - z_c): the targets' mass and their dot
        // product with the logits, taken before the row is overwritten.
        let mut dot = 0.0f64;
        let mut mass = 0.0f64;
        for (&zv, &yv) in zr.iter().zip(yr) {
            if yv != 0.0 {
                dot += f64::from(yv) * f64::from(zv);
                mass += f64::from(yv);
            }
        }
        let (max, ln_sum) = softmax_row(zr);
        *loss += mass * (ln_sum + max) - dot;
        for (pv, &yv) in zr.iter_mut().zip(yr) {
            *pv -= yv;
        }
    }
}
