//! The post's bench: this build, its baselines and the numpy and candle
//! peers, run after run.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use super::cargo::cargo_build;
use super::flops::report_work;
use super::machine::{loadavg, HugePages};
use super::options::{Options, MNIST_FILES};
use super::output::{print_run, table, write_json};
use super::parse::parse_report;
use super::peers::{candle_peer, gz_label_count, numpy_peer, run_peer, Impl};
use super::process::{last_line, measure};
use super::stats::{sample, Results, Sample};
use crate::peak;

/// Builds the release trainer and records how its data file is mapped in
/// `results`; returns the trainer's path.
pub(super) fn build_trainer(options: &Options, results: &mut Results) -> anyhow::Result<PathBuf> {
    eprintln!("bench: building the trainer (cargo build --release -p mnist-cli)");
    let release = [
        OsStr::new("--release"),
        OsStr::new("-p"),
        OsStr::new("mnist-cli"),
    ];
    let trainer = cargo_build(&release, None, "mnist")?;
    results.pages = HugePages::of(&options.data_dir.join(MNIST_FILES[0]));
    if let Some(pages) = &results.pages {
        eprintln!("bench: {}", pages.describe());
    }
    Ok(trainer)
}

/// The post's bench (see [`super::run`]).
pub(super) fn run(options: &Options) -> anyhow::Result<Results> {
    options.check()?;
    let mut results = Results {
        load: (loadavg(), None),
        ..Results::default()
    };
    let trainer = build_trainer(options, &mut results)?;

    let mut peers = Vec::new();
    let mut peer_samples = 0;
    if let (Some(dir), Some(gz)) = (&options.compare, &options.gz_dir) {
        peer_samples = gz_label_count(&gz.join("train-labels-idx1-ubyte.gz"))?;
        for (which, made) in [
            (Impl::Numpy, numpy_peer(dir, gz, options.epochs)),
            (Impl::Candle, candle_peer(dir, gz, options.epochs)),
        ] {
            match made {
                Ok(peer) => peers.push(peer),
                Err(reason) => {
                    eprintln!("bench: skipping {}: {reason}", which.name());
                    results.skipped.push((which, reason));
                }
            }
        }
    }

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // The peak is measured twice, after the first run (the first moment
    // the kernel path is known) and after the last, and the higher counts:
    // the machine's speed moves, and a low peak would flatter the runs.
    let mut first_peak = None;
    let report = std::env::temp_dir().join(format!("xtask-bench-{}.json", std::process::id()));
    for run in 1..=options.runs {
        // With baselines, the builds take turns going first: the order
        // rotates by one each run, so each build runs in each position
        // equally often.
        let mut ours = vec![(Impl::Rust, trainer.as_path())];
        for (i, baseline) in options.baselines.iter().enumerate() {
            ours.push((Impl::Baseline(i), baseline.as_path()));
        }
        let turn = (run - 1) % ours.len();
        ours.rotate_left(turn);
        for (which, program) in ours {
            let sample = run_trainer(program, which, options, run, &report, &[]);
            if which == Impl::Rust && results.work.is_none() {
                let text = fs::read_to_string(&report).unwrap_or_default();
                results.work = report_work(&text, options.epochs);
                first_peak = results
                    .work
                    .as_ref()
                    .and_then(|work| peak::flops(&work.kernel, cores));
            }
            let _ = fs::remove_file(&report);
            let sample = sample?;
            print_run(&sample, options.runs);
            results.samples.push(sample);
        }

        let mut failed = Vec::new();
        for (index, peer) in peers.iter().enumerate() {
            match run_peer(peer, options.epochs, run, peer_samples) {
                Ok(sample) => {
                    print_run(&sample, options.runs);
                    results.samples.push(sample);
                }
                Err(e) => {
                    let reason = format!("run {run} failed: {e:#}");
                    eprintln!(
                        "bench: skipping {} from now on: {reason}",
                        peer.which.name()
                    );
                    results.skipped.push((peer.which, reason));
                    failed.push(index);
                }
            }
        }
        for index in failed.into_iter().rev() {
            peers.remove(index);
        }
    }
    results.load.1 = loadavg();
    if let Some(work) = &results.work {
        eprintln!(
            "bench: measuring the FMA peak of {cores} core(s) with {}",
            work.kernel
        );
        results.peak_flops = peak::higher(peak::flops(&work.kernel, cores), first_peak);
    }
    print!("{}", table(&results, options));
    if let Some(path) = &options.json {
        write_json(path, &results, options)?;
        eprintln!("bench: results written to {}", path.display());
    }
    Ok(results)
}

/// One timed `train` run of `trainer` with `seed = run`, the common flags
/// and `extra` (a preset and its threads, say); the report is read back.
pub(super) fn run_trainer(
    trainer: &Path,
    which: Impl,
    options: &Options,
    run: usize,
    report: &Path,
    extra: &[String],
) -> anyhow::Result<Sample> {
    let mut command = Command::new(trainer);
    command
        .arg("train")
        .arg("--quiet")
        .args(extra)
        .arg("--data-dir")
        .arg(&options.data_dir)
        .arg("--epochs")
        .arg(options.epochs.to_string())
        .arg("--seed")
        .arg(run.to_string())
        .arg("--report")
        .arg(report);
    let measured = measure(&mut command)?;
    if let Some(failure) = &measured.failure {
        bail!(
            "{} train {} failed ({failure}): {}",
            trainer.display(),
            extra.join(" "),
            last_line(&measured.stderr)
        );
    }
    let text = fs::read_to_string(report)
        .with_context(|| format!("cannot read the report {}", report.display()))?;
    let (printed, train_samples) = parse_report(&text)?;
    Ok(sample(
        which,
        run,
        options.epochs,
        train_samples,
        printed,
        &measured,
    ))
}
