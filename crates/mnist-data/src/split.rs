use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// How many samples to hold out for validation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Holdout {
    /// None: train on everything.
    #[default]
    None,
    /// This many samples.
    Count(usize),
    /// This fraction of the samples, rounded down, in `[0, 1)`.
    Fraction(f64),
}

impl Holdout {
    /// The number of held-out samples out of `len`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the fraction is not in `[0, 1)`, when a
    /// fraction above 0 holds out less than one sample, or when the hold-out
    /// would leave no training sample.
    pub fn count(self, len: usize) -> Result<usize> {
        let n = match self {
            Holdout::None => 0,
            Holdout::Count(n) => n,
            Holdout::Fraction(f) if f > 0.0 && f < 1.0 => {
                let n = (len as f64 * f).floor() as usize;
                if n == 0 {
                    return Err(Error::InvalidConfig {
                        name: "validation fraction",
                        reason: format!(
                            "{f} of {len} samples is less than one sample; hold out at least {}",
                            1.0 / len as f64
                        ),
                    });
                }
                n
            }
            Holdout::Fraction(0.0) => 0,
            Holdout::Fraction(f) => {
                return Err(Error::InvalidConfig {
                    name: "validation fraction",
                    reason: format!("{f} is not in [0, 1)"),
                })
            }
        };
        if n >= len {
            return Err(Error::InvalidConfig {
                name: "validation size",
                reason: format!("{n} of {len} samples would leave none to train on"),
            });
        }
        Ok(n)
    }
}

/// Splits `0..len` into training and validation indices, both sorted: a
/// seeded random choice of [`Holdout::count`] samples is held out.
///
/// # Errors
/// As [`Holdout::count`].
pub fn split_indices(len: usize, holdout: Holdout, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    let n_val = holdout.count(len)?;
    let mut all: Vec<usize> = (0..len).collect();
    if n_val > 0 {
        // A stream of its own, so the split never shares random numbers with
        // the epoch shuffles drawn from the same seed.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(u64::MAX);
        all.shuffle(&mut rng);
    }
    let mut val = all.split_off(len - n_val);
    all.sort_unstable();
    val.sort_unstable();
    Ok((all, val))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fraction_under_one_sample_is_refused_not_dropped() {
        let err = Holdout::Fraction(0.000016).count(60_000).err();
        assert!(
            err.is_some_and(|e| e.to_string().contains("less than one sample")),
            "0.000016 of 60000 is 0.96 samples"
        );
        assert!(Holdout::Fraction(0.5).count(1).is_err());
        assert_eq!(Holdout::Fraction(0.000017).count(60_000).ok(), Some(1));
        assert_eq!(Holdout::Fraction(0.0).count(60_000).ok(), Some(0));
        assert_eq!(Holdout::None.count(1).ok(), Some(0));
    }
}
