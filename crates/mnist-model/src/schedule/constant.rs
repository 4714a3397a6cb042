//! A constant learning rate.

use super::LrSchedule;
use crate::error::{Error, Result};

/// The same learning rate every epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constant {
    lr: f64,
}

impl Constant {
    /// A constant `lr`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchedule`] if `lr` is negative or not finite.
    pub fn new(lr: f64) -> Result<Self> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::InvalidSchedule {
                reason: format!(
                    "constant learning rate must be finite and non-negative, found {lr}"
                ),
            });
        }
        Ok(Constant { lr })
    }
}

impl LrSchedule for Constant {
    fn lr(&self, _epoch: usize) -> f64 {
        self.lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_is_constant_and_validated() {
        let c = Constant::new(0.3).expect("valid");
        assert_eq!((c.lr(0), c.lr(99)), (0.3, 0.3));
        assert!(matches!(
            Constant::new(-0.1),
            Err(Error::InvalidSchedule { .. })
        ));
        assert!(matches!(
            Constant::new(f64::NAN),
            Err(Error::InvalidSchedule { .. })
        ));
    }
}
