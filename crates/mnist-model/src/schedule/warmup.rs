//! A piecewise-constant warm-up factor.

use std::str::FromStr;

use super::LrSchedule;
use crate::error::{Error, Result};

/// A factor given at some epochs and held until the next one, e.g. the
/// post's `0:0.01,1:0.1,2:1`: 0.01 in epoch 0, 0.1 in epoch 1, 1 from epoch 2
/// on. Before the first listed epoch the factor is 1 (no change), so a
/// warm-up that should apply from the start lists epoch 0, as the post does.
///
/// Used as a schedule on its own it yields the factor; multiply it with a
/// rate schedule through [`Product`](super::Product).
#[derive(Debug, Clone, PartialEq)]
pub struct Warmup {
    steps: Vec<(usize, f64)>,
}

impl Default for Warmup {
    /// The post's `0:0.01,1:0.1,2:1`.
    fn default() -> Self {
        Warmup {
            steps: vec![(0, 0.01), (1, 0.1), (2, 1.0)],
        }
    }
}

impl Warmup {
    /// A warm-up from `(epoch, factor)` pairs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchedule`] if `steps` is empty, the epochs are not
    /// strictly increasing (unsorted or duplicated), or a factor is negative
    /// or not finite.
    pub fn new(steps: Vec<(usize, f64)>) -> Result<Self> {
        check(&steps).map_err(|reason| Error::InvalidSchedule { reason })?;
        Ok(Warmup { steps })
    }

    /// The `(epoch, factor)` pairs, sorted by epoch.
    pub fn steps(&self) -> &[(usize, f64)] {
        &self.steps
    }
}

fn check(steps: &[(usize, f64)]) -> std::result::Result<(), String> {
    if steps.is_empty() {
        return Err("warm-up needs at least one epoch:factor pair".into());
    }
    for pair in steps.windows(2) {
        let (a, b) = (pair[0].0, pair[1].0);
        if a == b {
            return Err(format!("epoch {a} is listed twice"));
        }
        if a > b {
            return Err(format!("epochs must increase, found {b} after {a}"));
        }
    }
    for &(epoch, factor) in steps {
        if !(factor.is_finite() && factor >= 0.0) {
            return Err(format!(
                "factor for epoch {epoch} must be finite and non-negative, found {factor}"
            ));
        }
    }
    Ok(())
}

impl LrSchedule for Warmup {
    fn lr(&self, epoch: usize) -> f64 {
        self.steps
            .iter()
            .take_while(|&&(e, _)| e <= epoch)
            .last()
            .map_or(1.0, |&(_, f)| f)
    }
}

impl FromStr for Warmup {
    type Err = Error;

    /// Parses comma-separated `epoch:factor` pairs, e.g. `"0:0.01,1:0.1,2:1"`.
    fn from_str(input: &str) -> Result<Self> {
        let fail = |reason: String| Error::ParseWarmup {
            input: input.to_string(),
            reason,
        };
        let mut steps = Vec::new();
        for item in input.split(',') {
            let item = item.trim();
            let Some((epoch, factor)) = item.split_once(':') else {
                return Err(fail(format!("expected epoch:factor, found {item:?}")));
            };
            let epoch: usize = epoch.trim().parse().map_err(|_| {
                fail(format!(
                    "epoch {:?} is not a non-negative integer",
                    epoch.trim()
                ))
            })?;
            let factor: f64 = factor
                .trim()
                .parse()
                .map_err(|_| fail(format!("factor {:?} is not a number", factor.trim())))?;
            steps.push((epoch, factor));
        }
        check(&steps).map_err(fail)?;
        Ok(Warmup { steps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_post_warmup() {
        let w: Warmup = "0:0.01,1:0.1,2:1".parse().expect("valid");
        assert_eq!(w, Warmup::default());
        assert_eq!(
            (0..5).map(|e| w.lr(e)).collect::<Vec<_>>(),
            [0.01, 0.1, 1.0, 1.0, 1.0]
        );
        let spaced: Warmup = " 0 : 0.5 , 3:2 ".parse().expect("valid");
        assert_eq!(spaced.steps(), &[(0, 0.5), (3, 2.0)]);
    }

    #[test]
    fn factor_is_one_before_the_first_epoch_listed() {
        let w = Warmup::new(vec![(2, 0.5), (4, 0.25)]).expect("valid");
        assert_eq!(
            (0..6).map(|e| w.lr(e)).collect::<Vec<_>>(),
            [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
        );
    }

    fn reason(input: &str) -> String {
        match input.parse::<Warmup>() {
            Err(Error::ParseWarmup { input: i, reason }) => {
                assert_eq!(i, input);
                reason
            }
            other => panic!("expected ParseWarmup for {input:?}, got {other:?}"),
        }
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert_eq!(reason(""), "expected epoch:factor, found \"\"");
        assert_eq!(reason("0:0.1,"), "expected epoch:factor, found \"\"");
        assert_eq!(reason("0=0.1"), "expected epoch:factor, found \"0=0.1\"");
        assert_eq!(reason("a:0.1"), "epoch \"a\" is not a non-negative integer");
        assert_eq!(
            reason("-1:0.1"),
            "epoch \"-1\" is not a non-negative integer"
        );
        assert_eq!(reason("0:x"), "factor \"x\" is not a number");
        assert_eq!(reason("1:0.1,0:1"), "epochs must increase, found 0 after 1");
        assert_eq!(reason("0:0.1,0:1"), "epoch 0 is listed twice");
        assert_eq!(
            reason("0:-0.5"),
            "factor for epoch 0 must be finite and non-negative, found -0.5"
        );
        assert_eq!(
            reason("0:inf"),
            "factor for epoch 0 must be finite and non-negative, found inf"
        );
        let e = "1:0.1,0:1".parse::<Warmup>().expect_err("unsorted");
        assert_eq!(
            e.to_string(),
            "invalid warm-up \"1:0.1,0:1\": epochs must increase, found 0 after 1"
        );
    }

    #[test]
    fn constructor_validates() {
        assert!(matches!(
            Warmup::new(vec![]),
            Err(Error::InvalidSchedule { .. })
        ));
        assert!(matches!(
            Warmup::new(vec![(1, 0.1), (1, 0.2)]),
            Err(Error::InvalidSchedule { .. })
        ));
        assert!(matches!(
            Warmup::new(vec![(0, f64::NAN)]),
            Err(Error::InvalidSchedule { .. })
        ));
    }
}
