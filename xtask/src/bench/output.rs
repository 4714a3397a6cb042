//! What a bench prints (a line per run, the medians table) and the JSON it
//! writes.

use std::fs;
use std::path::Path;

use anyhow::Context as _;
use serde_json::json;

use super::options::{parent_dir, Options};
use super::peers::Impl;
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
                ": {:.1}% of this machine's FMA peak with those instructions ({:.1} GFLOP/s on all cores, measured after the runs)",
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
    let text = serde_json::to_string_pretty(&value).context("cannot encode the results")?;
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
