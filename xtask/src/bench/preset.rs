//! The presets' bench: `mnist train --preset NAME` and its PyTorch peer,
//! run after run, with the GFLOP/s of both and the fraction of the
//! machine's FMA peak.

use std::fs;

use serde_json::Value;

use super::flops::{run_flops, Work};
use super::machine::{cpu_model, loadavg};
use super::options::Options;
use super::output::{preset_table, print_run, write_preset_json};
use super::peers::{gz_label_count, Impl};
use super::post::{build_trainer, run_trainer};
use super::stats::Results;
use super::torch;
use crate::peak;

/// What a preset's bench knows besides the runs.
#[derive(Debug, Clone, Default)]
pub struct PresetInfo {
    /// The CPU's model name.
    pub cpu_model: Option<String>,
    /// Threads given to each side (every core).
    pub threads: usize,
    /// The instructions the FMA peak was measured with: those of the runs'
    /// kernel path, or the widest of this CPU when the path has none.
    pub peak_kernel: Option<&'static str>,
    /// Threads torch said it used.
    pub torch_threads: Option<u64>,
    /// torch's version.
    pub torch_version: Option<String>,
    /// The `OMP_WAIT_POLICY` torch ran with.
    pub torch_wait_policy: String,
}

/// The presets' bench (see [`super::run`]).
pub(super) fn run(options: &Options) -> anyhow::Result<Results> {
    options.check()?;
    let mut results = Results {
        load: (loadavg(), None),
        ..Results::default()
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut info = PresetInfo {
        cpu_model: cpu_model(),
        threads,
        torch_wait_policy: torch::wait_policy(),
        ..PresetInfo::default()
    };
    let trainer = build_trainer(options, &mut results)?;

    let mut peer = None;
    let mut peer_samples = 0;
    if let Some(gz) = options.compare.as_ref().and(options.gz_dir.as_ref()) {
        peer_samples = gz_label_count(&gz.join("train-labels-idx1-ubyte.gz"))?;
        match torch::peer(options, threads) {
            Ok(p) => peer = Some(p),
            Err(reason) => {
                eprintln!("bench: skipping torch: {reason}");
                results.skipped.push((Impl::Torch, reason));
            }
        }
    }

    let report = std::env::temp_dir().join(format!("xtask-bench-{}.json", std::process::id()));
    let mut evaluated = None;
    // Every model takes --threads; both sides get the same number.
    let extra = [
        "--preset".to_string(),
        options.preset.name().to_string(),
        "--threads".to_string(),
        threads.to_string(),
    ];
    // The peak of the instructions the runs' kernel path uses (AVX2 for a
    // run forced onto it), measured after the first run and after the
    // last, the higher counting: the machine's speed moves, and a low peak
    // would flatter the runs.
    let mut first_peak = None;
    for run in 1..=options.runs {
        let sample = run_trainer(&trainer, Impl::Rust, options, run, &report, &extra);
        if results.work.is_none() {
            let text = fs::read_to_string(&report).unwrap_or_default();
            if let Some((kernel, train, val)) = report_counts(&text) {
                info.peak_kernel = peak::kernel_of_run(&kernel);
                first_peak = info
                    .peak_kernel
                    .and_then(|kernel| peak::flops(kernel, threads));
                results.work = Some(Work {
                    kernel,
                    flops: run_flops(options.preset, train, val, options.epochs),
                });
                evaluated = Some(val);
            }
        }
        let _ = fs::remove_file(&report);
        let sample = sample?;
        print_run(&sample, options.runs);
        results.samples.push(sample);

        if let Some(p) = &peer {
            match torch::run(p, options.epochs, run, peer_samples) {
                Ok((sample, line)) => {
                    print_run(&sample, options.runs);
                    results.samples.push(sample);
                    info.torch_threads = line.threads;
                    info.torch_version = line.version;
                }
                Err(e) => {
                    let reason = format!("run {run} failed: {e:#}");
                    eprintln!("bench: skipping torch from now on: {reason}");
                    results.skipped.push((Impl::Torch, reason));
                    peer = None;
                }
            }
        }
    }
    results.load.1 = loadavg();
    if evaluated == Some(0) {
        eprintln!("bench: the runs evaluated no test set after each epoch; the FLOPs leave it out");
    }
    if let Some(kernel) = info.peak_kernel {
        eprintln!("bench: measuring the FMA peak of {threads} core(s) with {kernel}");
        results.peak_flops = peak::higher(peak::flops(kernel, threads), first_peak);
    }
    print!("{}", preset_table(&results, options, &info));
    if let Some(path) = &options.json {
        write_preset_json(path, &results, options, &info)?;
        eprintln!("bench: results written to {}", path.display());
    }
    Ok(results)
}

/// The kernel path, training samples and evaluated samples a report names.
fn report_counts(text: &str) -> Option<(String, u64, u64)> {
    let report: Value = serde_json::from_str(text).ok()?;
    Some((
        report.get("kernel")?.as_str()?.to_string(),
        report.get("train_samples")?.as_u64()?,
        report.get("val_samples")?.as_u64()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counts_of_a_report() {
        let text = r#"{"kernel": "ndarray matrix products", "train_samples": 60000,
            "val_samples": 10000, "model": "network 785 -> 10, softmax"}"#;
        assert_eq!(
            report_counts(text),
            Some(("ndarray matrix products".into(), 60_000, 10_000))
        );
        assert_eq!(report_counts(r#"{"kernel": "x"}"#), None);
        assert_eq!(report_counts("not json"), None);
    }
}
