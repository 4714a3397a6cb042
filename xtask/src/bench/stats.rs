//! The runs measured, their medians, and the run-by-run ratios of the
//! baselines.

use serde_json::{json, Value};

use super::flops::Work;
use super::machine::HugePages;
use super::parse::Printed;
use super::peers::Impl;
use super::process::Measured;

/// One run of one implementation.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Which implementation.
    pub implementation: Impl,
    /// 1-based run number (also the seed).
    pub run: usize,
    /// Process start to exit, seconds.
    pub wall_s: f64,
    /// What the process printed about itself.
    pub printed: Printed,
    /// Training samples per epoch.
    pub train_samples: u64,
    /// Epochs trained.
    pub epochs: usize,
    /// Peak resident set (`ru_maxrss`), KiB.
    pub max_rss_kib: Option<u64>,
    /// Peak `RssAnon` seen, KiB.
    pub peak_anon_kib: Option<u64>,
    /// Peak `RssFile` seen, KiB.
    pub peak_file_kib: Option<u64>,
}

impl Sample {
    /// Training samples processed per second of training.
    pub fn samples_per_s(&self) -> f64 {
        (self.epochs as f64) * (self.train_samples as f64) / self.printed.train_s
    }

    pub(super) fn to_json(&self) -> Value {
        json!({
            "impl": self.implementation.name(),
            "run": self.run,
            "wall_s": self.wall_s,
            "load_s": self.printed.load_s,
            "train_s": self.printed.train_s,
            "accuracy": self.printed.accuracy,
            "train_samples": self.train_samples,
            "epochs": self.epochs,
            "samples_per_s": self.samples_per_s(),
            "max_rss_kib": self.max_rss_kib,
            "peak_rss_anon_kib": self.peak_anon_kib,
            "peak_rss_file_kib": self.peak_file_kib,
        })
    }
}

/// The median of `values` (mean of the middle two for an even count), or
/// `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Medians of one implementation's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Medians {
    /// Runs measured.
    pub runs: usize,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Load time, seconds.
    pub load_s: f64,
    /// Training time, seconds.
    pub train_s: f64,
    /// Training samples per second.
    pub samples_per_s: f64,
    /// Test accuracy.
    pub accuracy: Option<f64>,
    /// Peak RSS, KiB.
    pub max_rss_kib: Option<f64>,
    /// Peak `RssAnon`, KiB.
    pub peak_anon_kib: Option<f64>,
    /// Peak `RssFile`, KiB.
    pub peak_file_kib: Option<f64>,
}

impl Medians {
    /// Medians of `samples` (all of one implementation), `None` if empty.
    pub fn of(samples: &[&Sample]) -> Option<Self> {
        let of = |f: &dyn Fn(&Sample) -> Option<f64>| {
            median(&samples.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
        };
        let kib = |v: Option<u64>| v.map(|v| v as f64);
        Some(Self {
            runs: samples.len(),
            wall_s: of(&|s| Some(s.wall_s))?,
            load_s: of(&|s| Some(s.printed.load_s))?,
            train_s: of(&|s| Some(s.printed.train_s))?,
            samples_per_s: of(&|s| Some(s.samples_per_s()))?,
            accuracy: of(&|s| s.printed.accuracy),
            max_rss_kib: of(&|s| kib(s.max_rss_kib)),
            peak_anon_kib: of(&|s| kib(s.peak_anon_kib)),
            peak_file_kib: of(&|s| kib(s.peak_file_kib)),
        })
    }

    pub(super) fn to_json(self) -> Value {
        json!({
            "runs": self.runs,
            "wall_s": self.wall_s,
            "load_s": self.load_s,
            "train_s": self.train_s,
            "samples_per_s": self.samples_per_s,
            "accuracy": self.accuracy,
            "max_rss_kib": self.max_rss_kib,
            "peak_rss_anon_kib": self.peak_anon_kib,
            "peak_rss_file_kib": self.peak_file_kib,
        })
    }
}

/// Everything one `bench` produced.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Every run, in the order run.
    pub samples: Vec<Sample>,
    /// Implementations that could not run, with the reason.
    pub skipped: Vec<(Impl, String)>,
    /// `/proc/loadavg` before and after, where there is one.
    pub load: (Option<String>, Option<String>),
    /// How the training images map, where this can be told (Linux).
    pub pages: Option<HugePages>,
    /// The kernel path this build's runs took and their FLOPs, where the
    /// report tells them (the post's linear model).
    pub work: Option<Work>,
    /// The FMA peak of all cores with that path's instructions, FLOP/s:
    /// the higher of two measurements, one early and one after the runs.
    pub peak_flops: Option<f64>,
}

impl Results {
    /// Medians of one implementation, if it ran.
    pub fn medians(&self, which: Impl) -> Option<Medians> {
        let mine: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.implementation == which)
            .collect();
        Medians::of(&mine)
    }

    /// `which`'s training time over ours, run by run (the runs of one
    /// number are interleaved, so each pair saw the same phase of the
    /// machine): the median and quartiles of the ratios, if any pair ran.
    pub fn paired_train_ratio(&self, which: Impl) -> Option<Paired> {
        let of = |who: Impl, run: usize| {
            self.samples
                .iter()
                .find(|s| s.implementation == who && s.run == run)
                .map(|s| s.printed.train_s)
        };
        let mut ratios: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.implementation == Impl::Rust)
            .filter_map(|ours| Some(of(which, ours.run)? / ours.printed.train_s))
            .collect();
        if ratios.is_empty() {
            return None;
        }
        ratios.sort_by(f64::total_cmp);
        let quartile = |q: usize| ratios.get((ratios.len() - 1) * q / 4).copied();
        Some(Paired {
            pairs: ratios.len(),
            median: median(&ratios)?,
            low: quartile(1)?,
            high: quartile(3)?,
        })
    }
}

/// Ratios of training times taken run by run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// Number of pairs.
    pub pairs: usize,
    /// Median ratio.
    pub median: f64,
    /// Lower quartile (nearest rank below).
    pub low: f64,
    /// Upper quartile (nearest rank below).
    pub high: f64,
}

pub(super) fn sample(
    implementation: Impl,
    run: usize,
    epochs: usize,
    train_samples: u64,
    printed: Printed,
    measured: &Measured,
) -> Sample {
    Sample {
        implementation,
        run,
        wall_s: measured.wall_s,
        printed,
        train_samples,
        epochs,
        max_rss_kib: measured.max_rss_kib,
        peak_anon_kib: measured.peak_anon_kib,
        peak_file_kib: measured.peak_file_kib,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{table, Options};

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn baseline_ratios_pair_runs_of_the_same_number() {
        let sample = |implementation, run, train_s| Sample {
            implementation,
            run,
            wall_s: train_s + 0.01,
            printed: Printed {
                load_s: 0.0,
                train_s,
                accuracy: None,
            },
            train_samples: 60_000,
            epochs: 10,
            max_rss_kib: None,
            peak_anon_kib: None,
            peak_file_kib: None,
        };
        let mut results = Results::default();
        assert_eq!(results.paired_train_ratio(Impl::Baseline(0)), None);
        // Run 3 of the baseline is missing: only runs 1, 2, 4 and 5 pair.
        for (run, ours, theirs) in [
            (1, 0.25, Some(0.375)),
            (2, 0.5, Some(0.5)),
            (3, 0.125, None),
            (4, 0.25, Some(0.125)),
            (5, 0.5, Some(1.0)),
        ] {
            results.samples.push(sample(Impl::Rust, run, ours));
            if let Some(t) = theirs {
                results.samples.push(sample(Impl::Baseline(0), run, t));
            }
            // A second baseline, twice as slow as ours in every run.
            results
                .samples
                .push(sample(Impl::Baseline(1), run, 2.0 * ours));
        }
        let p = results
            .paired_train_ratio(Impl::Baseline(0))
            .expect("pairs");
        // Ratios 1.5, 1.0, 0.5, 2.0: sorted 0.5, 1.0, 1.5, 2.0.
        assert_eq!(p.pairs, 4);
        assert!((p.median - 1.25).abs() < 1e-12, "{p:?}");
        assert_eq!((p.low, p.high), (0.5, 1.5));
        assert_eq!(results.paired_train_ratio(Impl::Numpy), None);
        let p2 = results
            .paired_train_ratio(Impl::Baseline(1))
            .expect("pairs");
        assert_eq!((p2.pairs, p2.median), (5, 2.0));
        let options = Options {
            runs: 5,
            baselines: vec!["old/mnist".into(), "older/mnist".into()],
            ..Options::default()
        };
        let printed = table(&results, &options);
        assert!(printed.contains("baseline / rust, run by run: train 1.250x (median of 4 pairs"));
        assert!(printed.contains("baseline2 / rust, run by run: train 2.000x (median of 5 pairs"));
    }
}
