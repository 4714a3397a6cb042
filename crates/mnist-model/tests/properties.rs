//! Properties of the learning-rate schedules and the model file, checked on
//! random valid (and deliberately broken) settings.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use mnist_model::{CosineWarmRestarts, LinearModel, LrSchedule, Product, Warmup};
use ndarray::Array2;
use proptest::prelude::*;

/// Positive normal rates spread over many orders of magnitude. Subnormal
/// rates are left out: there `0.5 * (lr_max - lr_min)` rounds, and the cosine
/// leaves its bounds (see `tests/regressions.rs`).
fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![
        (1.0f64..2.0, -40i32..10).prop_map(|(m, e)| m * 2f64.powi(e)),
        Just(f64::MIN_POSITIVE),
        Just(1e-4),
        Just(0.1),
        Just(1.0),
    ]
}

/// `(lr_min, lr_max)` with `lr_min <= lr_max`, equal ones included.
fn rates() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        (rate(), rate()).prop_map(|(a, b)| if a <= b { (a, b) } else { (b, a) }),
        rate().prop_map(|a| (a, a)),
    ]
}

fn cosine() -> impl Strategy<Value = CosineWarmRestarts> {
    (rates(), 1usize..50)
        .prop_map(|((lo, hi), period)| CosineWarmRestarts::new(lo, hi, period).unwrap())
}

/// Finite non-negative warm-up factors, zero and large ones included.
fn factor() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(1.0),
        0.0f64..2.0,
        (1.0f64..2.0, -30i32..30).prop_map(|(m, e)| m * 2f64.powi(e)),
    ]
}

/// A valid warm-up list: strictly increasing epochs, finite factors >= 0.
fn warmup_steps() -> impl Strategy<Value = Vec<(usize, f64)>> {
    proptest::collection::btree_set(0usize..60, 1..8)
        .prop_flat_map(|epochs| {
            let n = epochs.len();
            (
                Just(epochs.into_iter().collect::<Vec<_>>()),
                proptest::collection::vec(factor(), n),
            )
        })
        .prop_map(|(epochs, factors)| epochs.into_iter().zip(factors).collect())
}

/// The factor in force at `epoch`, written out independently of `Warmup`:
/// the one of the last pair at or before `epoch`, 1 before the first pair.
fn factor_at(steps: &[(usize, f64)], epoch: usize) -> f64 {
    steps
        .iter()
        .rev()
        .find(|&&(e, _)| e <= epoch)
        .map_or(1.0, |&(_, f)| f)
}

/// The comma-separated `epoch:factor` list that `Warmup::from_str` reads;
/// `{}` prints the shortest decimal that reads back to the same f64.
fn format_steps(steps: &[(usize, f64)]) -> String {
    steps
        .iter()
        .map(|(e, f)| format!("{e}:{f}"))
        .collect::<Vec<_>>()
        .join(",")
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn product_stays_between_the_scaled_bounds(
        cos in cosine(),
        steps in warmup_steps(),
        epoch in 0usize..200,
    ) {
        let schedule = Product::new(cos, Warmup::new(steps.clone()).unwrap());
        let (f, lr) = (factor_at(&steps, epoch), schedule.lr(epoch));
        prop_assert!(
            cos.lr_min() * f <= lr && lr <= cos.lr_max() * f,
            "epoch {epoch}: {lr} outside [{} * {f}, {} * {f}]",
            cos.lr_min(),
            cos.lr_max()
        );
    }

    #[test]
    fn cosine_restarts_at_lr_max_exactly(cos in cosine(), k in 0usize..1000) {
        prop_assert_eq!(cos.lr(k * cos.period()).to_bits(), cos.lr_max().to_bits());
        prop_assert!(cos.lr(k * cos.period()) >= cos.lr(k * cos.period() + 1));
    }

    #[test]
    fn cosine_stays_between_its_bounds(cos in cosine(), epoch in 0usize..1000) {
        let lr = cos.lr(epoch);
        prop_assert!(cos.lr_min() <= lr && lr <= cos.lr_max(), "epoch {epoch}: {lr}");
    }
    #[test]
    fn cosine_repeats_every_period_bit_for_bit(cos in cosine(), epoch in 0usize..100_000) {
        let later = epoch + cos.period();
        prop_assert_eq!(cos.lr(epoch).to_bits(), cos.lr(later).to_bits());
    }

    #[test]
    fn warmup_factor_holds_until_the_next_pair(steps in warmup_steps()) {
        let w = Warmup::new(steps.clone()).unwrap();
        prop_assert_eq!(w.steps(), &steps[..]);
        let first = steps[0].0;
        for epoch in 0..first {
            prop_assert_eq!(w.lr(epoch), 1.0);
        }
        for (i, &(from, f)) in steps.iter().enumerate() {
            let until = steps.get(i + 1).map_or(from + 10, |&(next, _)| next);
            for epoch in from..until {
                prop_assert_eq!(w.lr(epoch).to_bits(), f.to_bits(), "epoch {}", epoch);
            }
        }
    }

    #[test]
    fn formatted_warmup_parses_to_the_same_schedule(steps in warmup_steps(), spaced in any::<bool>()) {
        let mut text = format_steps(&steps);
        if spaced {
            text = text.replace(',', " , ").replace(':', " : ");
        }
        let parsed: Warmup = text.parse().unwrap();
        prop_assert_eq!(&parsed, &Warmup::new(steps.clone()).unwrap());
        for epoch in 0..70 {
            prop_assert_eq!(parsed.lr(epoch).to_bits(), factor_at(&steps, epoch).to_bits());
        }
    }

    #[test]
    fn unsorted_duplicate_or_negative_lists_are_errors(
        steps in warmup_steps().prop_filter("two pairs", |s| s.len() >= 2),
        kind in 0..4usize,
        at in any::<prop::sample::Index>(),
        bad in prop_oneof![-1e9f64..-1e-300, Just(-0.5), Just(f64::NAN), Just(f64::INFINITY)],
    ) {
        let mut steps = steps;
        let i = at.index(steps.len() - 1);
        match kind {
            0 => steps.swap(i, i + 1),
            1 => steps[i + 1].0 = steps[i].0,
            2 => steps[i].1 = bad,
            _ => steps.push(steps[i]),
        }
        prop_assert!(Warmup::new(steps.clone()).is_err(), "{:?}", steps);
        prop_assert!(format_steps(&steps).parse::<Warmup>().is_err(), "{:?}", steps);
    }

    #[test]
    fn parsing_any_text_never_panics(text in "[0-9:,. eE+-]{0,40}|\\PC{0,40}") {
        if let Ok(w) = text.parse::<Warmup>() {
            let steps = w.steps();
            prop_assert!(!steps.is_empty());
            prop_assert!(steps.windows(2).all(|p| p[0].0 < p[1].0));
            prop_assert!(steps.iter().all(|&(_, f)| f.is_finite() && f >= 0.0));
        }
    }
}

/// Finite f32 weights, the awkward ones over-represented.
fn weight() -> impl Strategy<Value = f32> {
    use proptest::num::f32 as f;
    prop_oneof![
        f::NORMAL | f::SUBNORMAL | f::ZERO | f::POSITIVE | f::NEGATIVE,
        f::SUBNORMAL | f::POSITIVE | f::NEGATIVE,
        prop::sample::select(vec![
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::EPSILON,
            1.0 / 3.0,
            16_777_217.0,
        ]),
    ]
}

fn weights() -> impl Strategy<Value = Array2<f32>> {
    (1usize..6, 1usize..6).prop_flat_map(|(features, classes)| {
        proptest::collection::vec(weight(), features * classes)
            .prop_map(move |v| Array2::from_shape_vec((features, classes), v).unwrap())
    })
}

fn bits(w: &Array2<f32>) -> Vec<u32> {
    w.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #[test]
    fn model_file_round_trips_bit_for_bit(w in weights()) {
        let model = LinearModel::from_weights(w.view()).unwrap();
        let text = model.to_json_string().unwrap();
        let back = LinearModel::from_json_str(&text).unwrap();
        prop_assert_eq!(bits(&back.weights()), bits(&w));
        prop_assert_eq!(back.to_json_string().unwrap(), text);
    }

    #[test]
    fn every_truncation_of_a_model_file_is_an_error(
        w in weights(),
        cut in any::<prop::sample::Index>(),
    ) {
        let text = LinearModel::from_weights(w.view()).unwrap().to_json_string().unwrap();
        // The trailing newline is whitespace after a complete document:
        // cutting it off leaves a valid file, so only cuts into the document
        // itself must fail.
        let document = text.trim_end();
        let n = cut.index(document.len());
        let prefix = document.get(..n).unwrap();
        prop_assert!(LinearModel::from_json_str(prefix).is_err(), "prefix of {} bytes loaded", n);
    }
}
