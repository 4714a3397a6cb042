//! What a bench prints (a line per run, the medians table) and the JSON it
//! writes.

use std::fs;
use std::path::Path;

use anyhow::Context as _;
use serde_json::{json, Value};

use super::options::{parent_dir, Options};
use super::peers::Impl;
use super::preset::PresetInfo;
use super::stats::{Results, Sample};

pub(super) fn mib(kib: Option<f64>) -> String {
    kib.map_or_else(|| "-".into(), |k| format!("{:.0}", k / 1024.0))
}

pub(super) fn print_run(sample: &Sample, runs: usize) {
    eprintln!(
        "bench: run {}/{runs} {:<6} wall {:.3} s, train {:.3} s, peak RSS {} MiB",
        sample.run,
        sample.implementation.name(),
        sample.wall_s,
        sample.printed.train_s,
        mib(sample.max_rss_kib.map(|v| v as f64)),
    );
}

/// The medians table and the ratios, as printed.
pub fn table(results: &Results, options: &Options) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} epoch(s), medians of {} run(s); load average before {}, after {}",
        options.epochs,
        options.runs,
        results.load.0.as_deref().unwrap_or("?"),
        results.load.1.as_deref().unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "{:<8} {:>4} {:>8} {:>8} {:>8} {:>11} {:>8} {:>9} {:>9} {:>8}",
        "impl",
        "runs",
        "wall_s",
        "load_s",
        "train_s",
        "samples/s",
        "rss_MiB",
        "anon_MiB",
        "file_MiB",
        "accuracy"
    );
    if let Some(pages) = &results.pages {
        let _ = writeln!(out, "{}", pages.describe());
    }
    for which in implementations(options) {
        if let Some(m) = results.medians(which) {
            let _ = writeln!(
                out,
                "{:<8} {:>4} {:>8.3} {:>8.3} {:>8.3} {:>11.0} {:>8} {:>9} {:>9} {:>8}",
                which.name(),
                m.runs,
                m.wall_s,
                m.load_s,
                m.train_s,
                m.samples_per_s,
                mib(m.max_rss_kib),
                mib(m.peak_anon_kib),
                mib(m.peak_file_kib),
                m.accuracy.map_or_else(|| "-".into(), |a| format!("{a:.4}")),
            );
        }
    }
    if let (Some(work), Some(m)) = (&results.work, results.medians(Impl::Rust)) {
        let reached = work.flops / m.train_s;
        let _ = write!(
            out,
            "rust: {:.1} GFLOP in the median train_s, {:.1} GFLOP/s ({})",
            work.flops / 1e9,
            reached / 1e9,
            work.kernel
        );
        let _ = match results.peak_flops {
            Some(peak) => writeln!(
                out,
                ": {:.1}% of this machine's FMA peak with those instructions ({:.1} GFLOP/s on all cores, the higher of two measurements, after the first run and after the last)",
                100.0 * reached / peak,
                peak / 1e9
            ),
            None => writeln!(out),
        };
    }
    for i in 0..options.baselines.len() {
        let which = Impl::Baseline(i);
        if let Some(paired) = results.paired_train_ratio(which) {
            let _ = writeln!(
                out,
                "{} / rust, run by run: train {:.3}x (median of {} pairs; middle half {:.3}x to {:.3}x)",
                which.name(), paired.median, paired.pairs, paired.low, paired.high
            );
        }
    }
    if let Some(ours) = results.medians(Impl::Rust) {
        for which in [Impl::Numpy, Impl::Candle] {
            if let Some(m) = results.medians(which) {
                let _ = writeln!(
                    out,
                    "{} / rust: wall {:.2}x, train {:.2}x",
                    which.name(),
                    m.wall_s / ours.wall_s,
                    m.train_s / ours.train_s
                );
            }
        }
    }
    for (which, reason) in &results.skipped {
        let _ = writeln!(out, "{}: skipped: {reason}", which.name());
    }
    out
}

/// Every implementation a bench with `options` may run, in table order.
pub(super) fn implementations(options: &Options) -> Vec<Impl> {
    let mut all = vec![Impl::Rust];
    all.extend((0..options.baselines.len()).map(Impl::Baseline));
    all.extend([Impl::Numpy, Impl::Candle]);
    all
}

pub(super) fn write_json(path: &Path, results: &Results, options: &Options) -> anyhow::Result<()> {
    let mut medians = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    let ours = results.medians(Impl::Rust);
    let mut paired = serde_json::Map::new();
    for i in 0..options.baselines.len() {
        let which = Impl::Baseline(i);
        if let Some(p) = results.paired_train_ratio(which) {
            paired.insert(
                which.name().into(),
                json!({
                    "binary": options.baselines[i], "pairs": p.pairs, "train_median": p.median,
                    "train_low_quartile": p.low, "train_high_quartile": p.high,
                }),
            );
        }
    }
    for which in implementations(options) {
        if let Some(m) = results.medians(which) {
            medians.insert(which.name().into(), m.to_json());
            if let (Some(o), true) = (ours, which != Impl::Rust) {
                ratios.insert(
                    which.name().into(),
                    json!({ "wall": m.wall_s / o.wall_s, "train": m.train_s / o.train_s }),
                );
            }
        }
    }
    let value = json!({
        "runs": options.runs,
        "epochs": options.epochs,
        "data_dir": options.data_dir,
        "gz_dir": options.gz_dir,
        "loadavg_before": results.load.0,
        "loadavg_after": results.load.1,
        "train_images_pages": results.pages.map(|p| json!({
            "huge_kib": p.huge_kib, "size_kib": p.size_kib,
        })),
        "medians": medians,
        "ratios_peer_over_rust": ratios,
        "paired_baselines_over_rust": paired,
        "skipped": results.skipped.iter()
            .map(|(w, r)| json!({ "impl": w.name(), "reason": r }))
            .collect::<Vec<_>>(),
        "samples": results.samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
    });
    write_atomically(path, &value)
}

/// Writes `value` to a temporary file next to `path`, then renames it.
fn write_atomically(path: &Path, value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("cannot encode the results")?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bench.json".into());
    let tmp = parent_dir(path).join(format!(".{name}.part-{}", std::process::id()));
    let written = fs::write(&tmp, text + "\n").and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// A preset's GFLOP/s of one implementation, from its median training
/// time, and the fraction of the peak.
fn preset_rates(results: &Results, which: Impl) -> Option<(f64, Option<f64>)> {
    let work = results.work.as_ref()?;
    let m = results.medians(which)?;
    let rate = work.flops / m.train_s;
    Some((rate / 1e9, results.peak_flops.map(|peak| rate / peak)))
}

/// The presets' medians table, as printed: train seconds, accuracy,
/// GFLOP/s and the fraction of the FMA peak, for ours and torch, then
/// torch / rust.
pub fn preset_table(results: &Results, options: &Options, info: &PresetInfo) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "preset {}: {} epoch(s), medians of {} run(s), {} thread(s) each; load average before {}, after {}",
        options.preset.name(),
        options.epochs,
        options.runs,
        info.threads,
        results.load.0.as_deref().unwrap_or("?"),
        results.load.1.as_deref().unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "CPU: {}; FMA peak {}",
        info.cpu_model.as_deref().unwrap_or("unknown"),
        match (results.peak_flops, info.peak_kernel) {
            (Some(p), Some(k)) => format!(
                "{:.1} GFLOP/s on {} core(s) with {k}, the FMAs of the runs' kernel path or, without any, the widest of this CPU (the higher of two measurements, after the first run and after the last)",
                p / 1e9,
                info.threads
            ),
            _ => "not measured (no SIMD FMAs known on this CPU)".into(),
        }
    );
    if let Some(work) = &results.work {
        let _ = writeln!(
            out,
            "work: {:.1} GFLOP a run (the products: forward, weight and input gradients, per-epoch test evaluation); rust kernel: {}",
            work.flops / 1e9,
            work.kernel
        );
    }
    let _ = writeln!(
        out,
        "{:<6} {:>4} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "impl", "runs", "wall_s", "train_s", "accuracy", "GFLOP/s", "peak_%", "rss_MiB"
    );
    for which in [Impl::Rust, Impl::Torch] {
        let Some(m) = results.medians(which) else {
            continue;
        };
        let rates = preset_rates(results, which);
        let _ = writeln!(
            out,
            "{:<6} {:>4} {:>8.3} {:>8.3} {:>8} {:>8} {:>7} {:>7}",
            which.name(),
            m.runs,
            m.wall_s,
            m.train_s,
            m.accuracy.map_or_else(|| "-".into(), |a| format!("{a:.4}")),
            rates.map_or_else(|| "-".into(), |(g, _)| format!("{g:.1}")),
            rates
                .and_then(|(_, f)| f)
                .map_or_else(|| "-".into(), |f| format!("{:.1}", 100.0 * f)),
            mib(m.max_rss_kib),
        );
    }
    if let (Some(ours), Some(torch)) = (results.medians(Impl::Rust), results.medians(Impl::Torch)) {
        let _ = writeln!(
            out,
            "torch / rust: train {:.2}x, wall {:.2}x (torch {}, OMP_WAIT_POLICY={}, {} thread(s))",
            torch.train_s / ours.train_s,
            torch.wall_s / ours.wall_s,
            info.torch_version.as_deref().unwrap_or("?"),
            info.torch_wait_policy,
            info.torch_threads
                .map_or_else(|| "?".into(), |t| t.to_string()),
        );
    }
    for (which, reason) in &results.skipped {
        let _ = writeln!(out, "{}: skipped: {reason}", which.name());
    }
    out
}

/// Writes a preset's results as JSON: the preset, the CPU, both medians
/// (with GFLOP/s and the fraction of the peak), torch / rust, every run.
pub(super) fn write_preset_json(
    path: &Path,
    results: &Results,
    options: &Options,
    info: &PresetInfo,
) -> anyhow::Result<()> {
    let mut medians = serde_json::Map::new();
    for which in [Impl::Rust, Impl::Torch] {
        if let Some(m) = results.medians(which) {
            let mut value = m.to_json();
            let rates = preset_rates(results, which);
            if let Some(fields) = value.as_object_mut() {
                fields.insert("gflop_per_s".into(), json!(rates.map(|(g, _)| g)));
                fields.insert("peak_fraction".into(), json!(rates.and_then(|(_, f)| f)));
            }
            medians.insert(which.name().into(), value);
        }
    }
    let ratio = match (results.medians(Impl::Rust), results.medians(Impl::Torch)) {
        (Some(o), Some(t)) => {
            json!({ "train": t.train_s / o.train_s, "wall": t.wall_s / o.wall_s })
        }
        _ => Value::Null,
    };
    let value = json!({
        "preset": options.preset.name(),
        "runs": options.runs,
        "epochs": options.epochs,
        "threads": info.threads,
        "cpu_model": info.cpu_model,
        "data_dir": options.data_dir,
        "gz_dir": options.gz_dir,
        "loadavg_before": results.load.0,
        "loadavg_after": results.load.1,
        "kernel": results.work.as_ref().map(|w| &w.kernel),
        "flops_per_run": results.work.as_ref().map(|w| w.flops),
        "peak_flops": results.peak_flops,
        "peak_kernel": info.peak_kernel,
        "torch_version": info.torch_version,
        "torch_threads": info.torch_threads,
        "torch_omp_wait_policy": info.torch_wait_policy,
        "medians": medians,
        "ratio_torch_over_rust": ratio,
        "skipped": results.skipped.iter()
            .map(|(w, r)| json!({ "impl": w.name(), "reason": r }))
            .collect::<Vec<_>>(),
        "samples": results.samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
    });
    write_atomically(path, &value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Preset, Printed, Work};

    #[test]
    fn preset_table_gives_rates_and_the_ratio() {
        let sample = |implementation, run, train_s| Sample {
            implementation,
            run,
            wall_s: train_s + 1.0,
            printed: Printed {
                load_s: 0.0,
                train_s,
                accuracy: Some(0.98),
            },
            train_samples: 60_000,
            epochs: 2,
            max_rss_kib: Some(2048),
            peak_anon_kib: None,
            peak_file_kib: None,
        };
        let results = Results {
            samples: vec![
                sample(Impl::Rust, 1, 2.0),
                sample(Impl::Torch, 1, 4.0),
                sample(Impl::Rust, 2, 2.0),
                sample(Impl::Torch, 2, 4.0),
            ],
            work: Some(Work {
                kernel: "ndarray matrix products".into(),
                flops: 100e9,
            }),
            peak_flops: Some(200e9),
            ..Results::default()
        };
        let options = Options {
            preset: Preset::Mlp,
            epochs: 2,
            runs: 2,
            ..Options::default()
        };
        let info = PresetInfo {
            cpu_model: Some("Test CPU".into()),
            threads: 2,
            peak_kernel: Some("avx2+fma"),
            torch_threads: Some(2),
            torch_version: Some("2.0".into()),
            torch_wait_policy: "PASSIVE".into(),
        };
        let printed = preset_table(&results, &options, &info);
        assert!(
            printed.starts_with("preset mlp: 2 epoch(s), medians of 2 run(s)"),
            "{printed}"
        );
        assert!(
            printed.contains("CPU: Test CPU; FMA peak 200.0 GFLOP/s on 2 core(s) with avx2+fma")
        );
        // 100 GFLOP in 2 s and in 4 s: 50 and 25 GFLOP/s, 25% and 12.5%.
        assert!(
            printed.contains("\nrust      2    3.000    2.000   0.9800     50.0    25.0       2\n"),
            "{printed}"
        );
        assert!(
            printed.contains("\ntorch     2    5.000    4.000   0.9800     25.0    12.5       2\n"),
            "{printed}"
        );
        assert!(
            printed.contains("torch / rust: train 2.00x, wall 1.67x"),
            "{printed}"
        );
    }
}
