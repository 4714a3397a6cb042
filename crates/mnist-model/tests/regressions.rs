//! Inputs that broke a property of `tests/properties.rs` or a fuzz target
//! under `fuzz/`, kept as fixed cases.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use mnist_model::{CosineWarmRestarts, LinearModel, LrSchedule};

/// Smallest positive subnormal f64.
const ULP: f64 = 5e-324;

/// Checks that every epoch of the first two periods lies in
/// `[lr_min, lr_max]` and that each restart is exactly `lr_max`.
fn assert_exact_restarts(lo: f64, hi: f64, period: usize) {
    let cos = CosineWarmRestarts::new(lo, hi, period).unwrap();
    for epoch in 0..2 * period {
        let lr = cos.lr(epoch);
        assert!(
            lo <= lr && lr <= hi,
            "({lo:e}, {hi:e}, {period}) epoch {epoch}: {lr:e}"
        );
    }
    assert_eq!(cos.lr(0), hi, "({lo:e}, {hi:e}, {period})");
    assert_eq!(cos.lr(period), hi, "({lo:e}, {hi:e}, {period})");
}

/// Found by `cosine_restarts_at_lr_max_exactly`: the restart computes
/// `lr_min + 0.5 * (lr_max - lr_min) * 2`, and `lr_min + (lr_max - lr_min)`
/// rounds one ulp away from `lr_max` for about 1.5% of valid settings, below
/// it (first case, 9.999999999999999e-5) or above it, outside the schedule's
/// documented range (second case, 8.667974261117405e-7).
#[test]
fn cosine_restarts_exactly_at_lr_max() {
    assert_exact_restarts(2.1191946172940643e-5, 1e-4, 1);
    assert_exact_restarts(1.241684897392731e-7, 8.667974261117404e-7, 3);
}

/// Found once subnormal rates were allowed, which `CosineWarmRestarts::new`
/// accepts: halving 3 ulps rounds to 2, so the restart lands on 5 ulps,
/// above `lr_max`.
#[test]
fn cosine_with_subnormal_rates_stays_in_range() {
    for (lo, hi) in [(ULP, 4.0 * ULP), (2.0 * ULP, 5.0 * ULP), (ULP, 6.0 * ULP)] {
        assert_exact_restarts(lo, hi, 3);
    }
}

/// A model file whose `classes` is far larger than its one weight row.
const HUGE_CLASSES: &str = r#"{"format":"mnist-model","version":1,"activation":"sigmoid","features":1,"classes":99999999999,"weights":[[0]]}"#;

/// A model file whose `features * classes` overflows `isize`.
const OVERFLOWING_CLASSES: &str = r#"{"format":"mnist-model","version":1,"activation":"sigmoid","features":2,"classes":9223372036854775807,"weights":[[0],[0]]}"#;

/// Found with the `model_file` fuzz target: the loader allocates the
/// `features x classes` matrix (here 400 GB) before it checks the rows'
/// lengths, so a 110-byte file aborts the process on allocation failure.
#[test]
fn huge_classes_is_an_error_not_an_allocation() {
    let e = LinearModel::from_json_str(HUGE_CLASSES).unwrap_err();
    assert!(e.to_string().contains("expected 99999999999 values"), "{e}");
}

/// Found with the `model_file` fuzz target: `Array2::zeros((2, 2^63 - 1))`
/// panics with "ndarray: Shape too large, product of non-zero axis lengths
/// overflows isize".
#[test]
fn overflowing_classes_is_an_error_not_a_panic() {
    assert!(LinearModel::from_json_str(OVERFLOWING_CLASSES).is_err());
}
