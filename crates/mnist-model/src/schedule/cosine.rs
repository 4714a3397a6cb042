//! Cosine annealing with warm restarts.

use super::LrSchedule;
use crate::error::{Error, Result};

/// Cosine annealing from `lr_max` down towards `lr_min`, restarting every
/// `period` epochs: with `t = epoch % period`,
/// `lr = lr_min + 0.5 * (lr_max - lr_min) * (1 + cos(pi * t / period))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineWarmRestarts {
    lr_min: f64,
    lr_max: f64,
    period: usize,
}

impl Default for CosineWarmRestarts {
    /// The post's settings: `lr_min` 1e-4, `lr_max` 0.1, period 3.
    fn default() -> Self {
        CosineWarmRestarts {
            lr_min: 1e-4,
            lr_max: 0.1,
            period: 3,
        }
    }
}

impl CosineWarmRestarts {
    /// A schedule between `lr_min` and `lr_max` restarting every `period`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchedule`] unless both rates are finite and positive,
    /// `lr_min <= lr_max`, and `period > 0`.
    pub fn new(lr_min: f64, lr_max: f64, period: usize) -> Result<Self> {
        let reason = if !(lr_min.is_finite() && lr_min > 0.0) {
            format!("lr_min must be finite and positive, found {lr_min}")
        } else if !(lr_max.is_finite() && lr_max > 0.0) {
            format!("lr_max must be finite and positive, found {lr_max}")
        } else if lr_min > lr_max {
            format!("lr_min {lr_min} is greater than lr_max {lr_max}")
        } else if period == 0 {
            "period must be at least 1 epoch, found 0".to_string()
        } else {
            return Ok(CosineWarmRestarts {
                lr_min,
                lr_max,
                period,
            });
        };
        Err(Error::InvalidSchedule { reason })
    }

    /// The lowest rate, approached at the end of each period.
    pub fn lr_min(&self) -> f64 {
        self.lr_min
    }

    /// The highest rate, at the start of each period.
    pub fn lr_max(&self) -> f64 {
        self.lr_max
    }

    /// Epochs between restarts.
    pub fn period(&self) -> usize {
        self.period
    }
}

impl LrSchedule for CosineWarmRestarts {
    fn lr(&self, epoch: usize) -> f64 {
        let t = epoch % self.period;
        if t == 0 {
            // Exactly `lr_max` at every restart: the formula below can miss
            // it by an ulp.
            return self.lr_max;
        }
        let phase = std::f64::consts::PI * t as f64 / self.period as f64;
        // Rounding can step an ulp outside the range (or several, for
        // subnormal rates); the clamp keeps the documented bounds and does
        // not change any value inside them.
        (self.lr_min + 0.5 * (self.lr_max - self.lr_min) * (1.0 + phase.cos()))
            .clamp(self.lr_min, self.lr_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_with_the_period() {
        let s = CosineWarmRestarts::new(0.1, 0.5, 2).expect("valid");
        assert_eq!(s.lr(0), 0.5);
        assert!((s.lr(1) - 0.3).abs() < 1e-15);
        assert_eq!(s.lr(2), 0.5);
        let single = CosineWarmRestarts::new(0.2, 0.2, 1).expect("valid");
        assert_eq!((single.lr(0), single.lr(5)), (0.2, 0.2));
    }

    #[test]
    fn rejects_invalid_settings() {
        for (lo, hi, period) in [
            (0.0, 0.1, 3),
            (-1e-4, 0.1, 3),
            (1e-4, f64::INFINITY, 3),
            (f64::NAN, 0.1, 3),
            (0.2, 0.1, 3),
            (1e-4, 0.1, 0),
        ] {
            let r = CosineWarmRestarts::new(lo, hi, period);
            assert!(
                matches!(r, Err(Error::InvalidSchedule { .. })),
                "{lo} {hi} {period}"
            );
        }
        let d = CosineWarmRestarts::default();
        assert_eq!(
            CosineWarmRestarts::new(d.lr_min(), d.lr_max(), d.period()).expect("valid"),
            d
        );
    }
}
