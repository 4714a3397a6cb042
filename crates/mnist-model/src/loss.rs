//! Binary cross-entropy, clipped as in the post.

use ndarray::ArrayView2;

use crate::error::{Error, Result};

/// Probabilities are clipped to `[PROB_CLIP, 1 - PROB_CLIP]` before the
/// logarithm, so a confident wrong answer costs at most `-ln(1e-4) ≈ 9.21`.
pub const PROB_CLIP: f64 = 1e-4;

/// `-(y ln p + (1 - y) ln(1 - p))` for one output, `p` clipped, in f64.
///
/// For the usual one-hot targets only one logarithm is taken.
#[inline]
pub(crate) fn bce_term(p: f32, y: f32) -> f64 {
    let p = f64::from(p).clamp(PROB_CLIP, 1.0 - PROB_CLIP);
    if y == 1.0 {
        -p.ln()
    } else if y == 0.0 {
        -(1.0 - p).ln()
    } else {
        let y = f64::from(y);
        -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
    }
}

/// The summed cross-entropy of one row of probabilities against the one-hot
/// encoding of `label`.
pub(crate) fn bce_row_label(p: &[f32], label: usize) -> f64 {
    p.iter()
        .enumerate()
        .map(|(c, &pv)| bce_term(pv, if c == label { 1.0 } else { 0.0 }))
        .sum()
}

/// Binary cross-entropy of probabilities `p` against targets `y`, both
/// `(n, classes)`: summed over the classes, averaged over the `n` rows,
/// with `p` clipped to `[1e-4, 1 - 1e-4]`:
/// `-sum(y ln p + (1 - y) ln(1 - p)) / n`, accumulated in f64.
///
/// # Errors
///
/// [`Error::DimensionMismatch`] if the shapes differ, and [`Error::ZeroSize`]
/// if there are no rows (the mean would be undefined).
///
/// # Examples
///
/// ```
/// use mnist_model::bce_loss;
/// use ndarray::array;
///
/// let p = array![[0.5f32, 0.5]];
/// let y = array![[1.0f32, 0.0]];
/// let loss = bce_loss(p.view(), y.view())?;
/// assert!((loss - 2.0 * 2f64.ln()).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn bce_loss(p: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> Result<f64> {
    if p.nrows() != y.nrows() {
        return Err(Error::DimensionMismatch {
            what: "target rows",
            expected: p.nrows(),
            found: y.nrows(),
        });
    }
    if p.ncols() != y.ncols() {
        return Err(Error::DimensionMismatch {
            what: "target columns (classes)",
            expected: p.ncols(),
            found: y.ncols(),
        });
    }
    if p.nrows() == 0 {
        return Err(Error::ZeroSize { what: "rows" });
    }
    let sum: f64 = p
        .iter()
        .zip(y.iter())
        .map(|(&pv, &yv)| bce_term(pv, yv))
        .sum();
    Ok(sum / p.nrows() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn matches_hand_computation() {
        let p = array![[0.9f32, 0.2], [0.3, 0.6]];
        let y = array![[1.0f32, 0.0], [0.0, 1.0]];
        let expected = -((0.9f32 as f64).ln()
            + (1.0 - 0.2f32 as f64).ln()
            + (1.0 - 0.3f32 as f64).ln()
            + (0.6f32 as f64).ln())
            / 2.0;
        let got = bce_loss(p.view(), y.view()).expect("same shapes");
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn clips_probabilities() {
        let p = array![[0.0f32, 1.0]];
        let y = array![[1.0f32, 0.0]];
        let got = bce_loss(p.view(), y.view()).expect("same shapes");
        assert!((got - 2.0 * -(1e-4f64).ln()).abs() < 1e-9, "{got}");
        let perfect = bce_loss(y.view(), y.view()).expect("same shapes");
        assert!((perfect - 2.0 * -(1.0 - 1e-4f64).ln()).abs() < 1e-12);
    }

    #[test]
    fn soft_targets_use_both_terms() {
        let p = array![[0.25f32]];
        let y = array![[0.5f32]];
        let expected = -(0.5 * 0.25f64.ln() + 0.5 * 0.75f64.ln());
        let got = bce_loss(p.view(), y.view()).expect("same shapes");
        assert!((got - expected).abs() < 1e-12);
        assert_eq!(
            bce_row_label(&[0.25, 0.5], 1),
            bce_term(0.25, 0.0) + bce_term(0.5, 1.0)
        );
    }

    #[test]
    fn rejects_mismatched_or_empty() {
        let p = array![[0.5f32, 0.5]];
        let y = array![[1.0f32, 0.0, 0.0]];
        assert!(matches!(
            bce_loss(p.view(), y.view()),
            Err(Error::DimensionMismatch {
                expected: 2,
                found: 3,
                ..
            })
        ));
        let e = ndarray::Array2::<f32>::zeros((0, 2));
        assert!(matches!(
            bce_loss(e.view(), e.view()),
            Err(Error::ZeroSize { what: "rows" })
        ));
    }
}
