//! `mnist train`: the post's training loop, with the post's settings as
//! defaults. The flags and their checks are in `args`, what a run shows
//! and keeps as it goes in `observe`; here, the run itself and its files.

mod args;
mod observe;

pub use args::{TrainArgs, FROM_CHECKPOINT};
use observe::{Keep, Shown};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use mnist_data::Part;
use mnist_train::{EpochRecord, TrainState, Trainer};
use serde::Serialize;

use crate::checkpoint::{Checkpoint, FILE as CHECKPOINT_FILE};
use crate::data::{open_part, DatasetInfo};
use crate::data_home;
use crate::output::write_atomic;
use crate::paths::{real_location, Files};
use crate::progress::Log;
use crate::report::{TestReport, Timing};
/// Everything `--report` writes for a training run.
#[derive(Debug, Serialize)]
struct TrainReport<'a> {
    command: &'static str,
    config: &'a TrainArgs,
    dataset: &'a DatasetInfo,
    train_samples: usize,
    val_samples: usize,
    val_source: &'static str,
    kernel: &'static str,
    model: String,
    epochs: Vec<EpochRecord>,
    iterations: Vec<(usize, f64)>,
    test: TestReport,
    timing: Timing,
}

/// Where a run's files really are, checked against each other before any
/// data is read (see [`crate::paths`]).
struct RunFiles {
    /// The dataset folder.
    data_dir: PathBuf,
    save: Option<PathBuf>,
    report: Option<PathBuf>,
    checkpoint_dir: Option<PathBuf>,
}

impl RunFiles {
    /// Resolves and checks every input and output of `args`; `resume` is
    /// the checkpoint folder resumed from, if any.
    fn new(args: &TrainArgs, data_dir: &Path, resume: Option<&Path>) -> Result<Self> {
        let mut files = Files::new();
        files.dataset(data_dir, &[Part::Train, Part::Test])?;
        let resumed_file = resume.map(|dir| real_location(&Checkpoint::path(dir)));
        let checkpoint_dir = match &args.checkpoint_dir {
            Some(dir) => {
                let real = files.output_dir("--checkpoint-dir", dir, CHECKPOINT_FILE)?;
                let file = Checkpoint::path(&real);
                let continues = resumed_file
                    .as_ref()
                    .is_some_and(|r| r.as_ref().ok() == Some(&file));
                if file.exists() && !continues && !args.overwrite_checkpoint {
                    bail!(
                        "--checkpoint-dir {}: holds another run's checkpoint; continue it with \
                         --resume {}, choose another folder, or pass --overwrite-checkpoint \
                         to start over",
                        dir.display(),
                        dir.display()
                    );
                }
                Some(real)
            }
            None => None,
        };
        if let (Some(dir), Some(Ok(real))) = (resume, &resumed_file) {
            let same = checkpoint_dir
                .as_ref()
                .is_some_and(|d| Checkpoint::path(d) == *real);
            if !same {
                files.input("--resume", &Checkpoint::path(dir))?;
            }
        }
        let save = match &args.save {
            Some(path) => Some(files.output_file("--save", path)?),
            None => None,
        };
        let report = match &args.report {
            Some(path) => Some(files.output_file("--report", path)?),
            None => None,
        };
        Ok(Self {
            data_dir: real_location(data_dir).unwrap_or_else(|_| data_dir.to_path_buf()),
            save,
            report,
            checkpoint_dir,
        })
    }
}

/// A `--threads` above the number of cores is honoured (the results do
/// not depend on it), but its threads take turns on the cores: `--preset
/// mlp --threads 4` took 1.37 to 1.49 s for two epochs on a 2-core Zen 4,
/// against 1.12 to 1.23 s on two threads. Says so on standard error.
fn warn_of_more_threads_than_cores(threads: Option<usize>) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if let Some(n) = threads.filter(|&n| n > cores) {
        eprintln!(
            "warning: --threads {n} is more than this machine's {cores} cores: \
             the same results, usually more slowly"
        );
    }
}

/// Runs `mnist train`; `matches` tells which flags the command line gave.
pub fn run(given: &TrainArgs, matches: &clap::ArgMatches) -> Result<()> {
    // A resumed run takes its settings and outputs from the checkpoint,
    // unless the command line gives them.
    let (args, resumed) = match &given.resume {
        Some(dir) => {
            let (ck, model, velocity) = Checkpoint::load(dir)?;
            let args = ck.settings(given, matches, dir)?;
            (args, Some((ck, model, velocity)))
        }
        None => (given.clone(), None),
    };
    let args = &args;
    let config = args.config()?;
    warn_of_more_threads_than_cores(args.threads);
    let data_dir = &data_home::resolve(args.data_dir.as_deref(), "mnist")?;
    let files = RunFiles::new(args, data_dir, given.resume.as_deref())?;
    // Checkpoints record where the data and the outputs are, so that a run
    // resumed from another folder finds and writes the same files.
    let mut recorded = args.clone();
    recorded.data_dir = Some(files.data_dir.clone());
    recorded.save.clone_from(&files.save);
    recorded.report.clone_from(&files.report);
    let interrupted = interrupt_flag()?;
    let mut log = Log::new(args.quiet);
    log.line(&format!("seed {}", args.seed));

    let t_load = Instant::now();
    let train = open_part(data_dir, Part::Train)?;
    let test = open_part(data_dir, Part::Test)?;
    // A resumed run names a dataset it does not recognise after the folder
    // its first run read, wherever that data is now, so that its model
    // records the same dataset as an uninterrupted run's.
    let named_after = resumed
        .as_ref()
        .and_then(|(ck, ..)| ck.config.data_dir.clone())
        .unwrap_or_else(|| data_dir.clone());
    let info = DatasetInfo::of(&named_after, &test, Some(&train));
    let names = info.class_names.clone();
    let dataset = train.fingerprint().to_string();
    let trainer =
        Trainer::new(config, &train, &test).with_context(|| format!("{}", data_dir.display()))?;
    let resume = match resumed {
        Some((ck, model, velocity)) => {
            ck.check_dataset(&dataset, data_dir)?;
            Some(TrainState {
                epochs: ck.epochs,
                iterations: ck.iterations,
                model,
                velocity,
            })
        }
        None => None,
    };
    let load_seconds = t_load.elapsed().as_secs_f64();
    let mut shown = Shown {
        log,
        epochs: args.epochs,
        batch_size: args.batch_size,
        log_every: args.log_every,
        interrupted: &interrupted,
        checkpoint: match (&args.checkpoint_dir, &files.checkpoint_dir) {
            (Some(dir), Some(real)) => Some(Keep {
                dir,
                real,
                recorded: &recorded,
                dataset: &dataset,
            }),
            _ => None,
        },
    };
    let fitted = trainer.fit(resume, &mut shown);
    shown.log.finish_bar();
    let fitted = fitted.map_err(|e| match e {
        mnist_train::Error::Stopped { epoch } => Interrupted {
            epoch,
            checkpoint_dir: args.checkpoint_dir.clone(),
        }
        .into(),
        mnist_train::Error::Step {
            epoch,
            iteration,
            lr,
            source,
        } => anyhow::anyhow!(
            "epoch {epoch}, iteration {iteration}, learning rate {lr:e}; no model saved: {source}"
        ),
        mnist_train::Error::Resume(reason) => {
            anyhow::anyhow!("--resume: the checkpoint does not fit: {reason}")
        }
        other => anyhow::Error::new(other),
    })?;

    let test_report = TestReport::new(&fitted.test.confusion, fitted.test.loss, &names);
    say!(
        "test accuracy {:.4}  loss {:.5}  ({} samples)",
        test_report.accuracy,
        test_report.loss,
        test_report.samples
    );
    if !args.quiet {
        say_raw!("{}", test_report.render());
    }
    say!(
        "timing: load {:.3} s, train {:.3} s (kernel: {})",
        load_seconds + fitted.setup_seconds,
        fitted.train_seconds,
        fitted.kernel
    );

    if let (Some(path), Some(real)) = (&args.save, &files.save) {
        fitted
            .model
            .save_with(real, &info.to_metadata()?)
            .with_context(|| format!("--save {}", path.display()))?;
        say!("model saved to {}", path.display());
    }
    if let (Some(path), Some(real)) = (&args.report, &files.report) {
        let report = TrainReport {
            command: "train",
            config: args,
            dataset: &info,
            train_samples: fitted.train_samples,
            val_samples: fitted.val_samples,
            val_source: if fitted.held_out { "held-out" } else { "test" },
            kernel: fitted.kernel,
            model: fitted.model.describe(),
            epochs: fitted.epochs,
            iterations: fitted.iterations,
            test: test_report,
            timing: Timing {
                load_seconds: load_seconds + fitted.setup_seconds,
                train_seconds: fitted.train_seconds,
                test_seconds: fitted.test_seconds,
            },
        };
        write_report(path, real, &report)?;
    }
    Ok(())
}

/// Serialises `report` and writes it atomically to `real`, where `path`
/// (as given to `--report`) really is.
pub fn write_report(path: &Path, real: &Path, report: &impl Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(report).context("serialising the report")?;
    write_atomic(real, &json).with_context(|| format!("--report {}", path.display()))?;
    say!("report written to {}", path.display());
    Ok(())
}

/// Training stopped by Ctrl-C (SIGINT).
#[derive(Debug)]
pub struct Interrupted {
    /// The epoch under way; as many epochs are complete.
    epoch: usize,
    checkpoint_dir: Option<PathBuf>,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted during epoch {}; ", self.epoch)?;
        match &self.checkpoint_dir {
            Some(dir) if self.epoch > 0 => write!(
                f,
                "{} saved in {}: continue with `mnist train --resume {}`",
                if self.epoch == 1 {
                    "1 epoch is".to_string()
                } else {
                    format!("{} epochs are", self.epoch)
                },
                dir.display(),
                dir.display()
            ),
            Some(_) => f.write_str("no epoch was complete, so there is no checkpoint to resume"),
            None => f.write_str(
                "no checkpoint was written (pass --checkpoint-dir DIR to be able to resume)",
            ),
        }
    }
}

impl std::error::Error for Interrupted {}

/// A flag that Ctrl-C sets; the training loop checks it between batches.
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    ctrlc::set_handler(move || set.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    Ok(flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interruption_counts_its_epochs_in_words() {
        let after = |epoch| {
            Interrupted {
                epoch,
                checkpoint_dir: Some(PathBuf::from("ck")),
            }
            .to_string()
        };
        assert!(
            after(1).contains("; 1 epoch is saved in ck"),
            "{}",
            after(1)
        );
        assert!(
            after(2).contains("; 2 epochs are saved in ck"),
            "{}",
            after(2)
        );
        assert!(after(0).contains("no epoch was complete"), "{}", after(0));
    }
}
