//! `mnist train`: the post's training loop, with the post's settings as
//! defaults.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use mnist_data::{Holdout, Part};
use mnist_model::{CosineWarmRestarts, Head, Init, Warmup};
use mnist_train::{EpochRecord, Observer, RunInfo, StateView, TrainConfig, TrainState, Trainer};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, FILE as CHECKPOINT_FILE};
use crate::data::{open_part, DatasetInfo};
use crate::data_home;
use crate::output::write_atomic;
use crate::paths::{real_location, Files};
use crate::predict::plural;
use crate::progress::Log;
use crate::report::{TestReport, Timing};

/// How the weights start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitArg {
    /// Standard normal N(0, 1), as in the post.
    Normal,
    /// All zeros.
    Zeros,
}

/// The output head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadArg {
    /// Ten independent sigmoids with clipped binary cross-entropy, as in the
    /// post.
    Sigmoid,
    /// A softmax over the ten classes with cross-entropy.
    Softmax,
}

impl From<Head> for HeadArg {
    fn from(head: Head) -> Self {
        match head {
            Head::Sigmoid => HeadArg::Sigmoid,
            Head::Softmax => HeadArg::Softmax,
        }
    }
}

/// A warm-up as `--warmup` takes it, e.g. `0:0.01,1:0.1,2:1`.
fn warmup_text(warmup: &Warmup) -> String {
    let pairs: Vec<String> = warmup
        .steps()
        .iter()
        .map(|(epoch, factor)| format!("{epoch}:{factor}"))
        .collect();
    pairs.join(",")
}

/// Named sets of settings; flags given explicitly override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The post's settings (the defaults).
    Post,
    /// Softmax regression: softmax head, zero start, 60 epochs of batches of
    /// 64, one cosine cycle from 0.05, momentum 0.9, weight decay 1e-4.
    Softmax,
    /// A hidden layer of 256 ReLU units, softmax head, 20 epochs of batches
    /// of 128, one cosine cycle from 0.05, momentum 0.9, weight decay 1e-4.
    Mlp,
    /// A convolutional network: 5x5 convolutions of 16 and 32 filters (ReLU,
    /// 2x2 max-pooling), 128 hidden ReLU units, softmax; 12 epochs of
    /// batches of 64, one cosine cycle from 0.05, momentum 0.9, weight
    /// decay 5e-4.
    Cnn,
}

/// The settings a resumed run takes from its checkpoint: given again, each
/// must equal the checkpoint's (`--epochs` may grow).
pub const FROM_CHECKPOINT: [&str; 15] = [
    "preset",
    "head",
    "conv",
    "hidden",
    "momentum",
    "weight_decay",
    "epochs",
    "batch_size",
    "lr_min",
    "lr_max",
    "cosine_period",
    "warmup",
    "init",
    "seed",
    "val_size",
];

/// Arguments of `mnist train`; the defaults are the post's settings.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct TrainArgs {
    /// Folder with the four decompressed IDX files [default: mnist/ in the
    /// data home: $MNIST_DATA, the workspace's data/, the user data folder].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Samples per SGD step; the gradient is divided by this even for the
    /// short last batch, as in the post.
    #[arg(long, default_value_t = 512)]
    pub batch_size: usize,
    /// Lowest learning rate of the cosine schedule.
    #[arg(long, default_value_t = 1e-4)]
    pub lr_min: f64,
    /// Highest learning rate of the cosine schedule.
    #[arg(long, default_value_t = 0.1)]
    pub lr_max: f64,
    /// Period of the cosine warm restarts, in epochs.
    #[arg(long, default_value_t = 3)]
    pub cosine_period: usize,
    /// Warm-up factors as EPOCH:FACTOR pairs; each holds until the next.
    #[arg(long, default_value = "0:0.01,1:0.1,2:1")]
    pub warmup: String,
    /// Initial weights of the output layer of a model without a hidden
    /// layer (a network with --hidden is He-initialised, so --init zeros
    /// with --hidden is refused).
    #[arg(long, value_enum, default_value_t = InitArg::Normal)]
    pub init: InitArg,
    /// Seed of the initial weights, the shuffles and the validation split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the batch loss every N batches of an epoch (0: never).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub log_every: usize,
    /// Hold out this many training samples (or this fraction, if below 1)
    /// for validation; 0 evaluates on the test set after each epoch, as the
    /// post does.
    #[arg(long, value_name = "N|FRACTION", default_value = "0")]
    pub val_size: String,
    /// Write the trained model here (JSON).
    #[arg(long, value_name = "MODEL.json")]
    pub save: Option<PathBuf>,
    /// Write the full report here (JSON).
    #[arg(long, value_name = "REPORT.json")]
    pub report: Option<PathBuf>,
    /// Output head: the post's ten sigmoids, or a softmax.
    #[arg(long, value_enum, default_value_t = HeadArg::Sigmoid)]
    pub head: HeadArg,
    /// Start with 5x5 convolutions of these many filters each (ReLU and 2x2
    /// max-pooling after each), e.g. 16,32; needs the softmax head.
    #[arg(long, value_name = "FILTERS", value_delimiter = ',')]
    #[serde(default)]
    pub conv: Vec<usize>,
    /// Add a hidden layer of N ReLU units (He-initialised).
    #[arg(long, value_name = "N")]
    pub hidden: Option<usize>,
    /// Momentum of SGD, in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    pub momentum: f32,
    /// L2 weight decay added to the gradient of the weights.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Threads of each training step (default: every core); the results
    /// are the same, bit for bit, for any number. A linear model's step is
    /// split in two parts, so it uses one thread or two.
    #[arg(long, value_name = "N")]
    #[serde(default)]
    pub threads: Option<usize>,
    /// Start from a named set of settings; explicit flags override it.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Write a checkpoint into DIR after every epoch (DIR is created; its
    /// parent must exist). A DIR holding another run's checkpoint is
    /// refused: resume it, or pass --overwrite-checkpoint.
    #[arg(long, value_name = "DIR")]
    #[serde(skip)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Start over in a --checkpoint-dir that holds a checkpoint, replacing
    /// it.
    #[arg(long)]
    #[serde(skip)]
    pub overwrite_checkpoint: bool,
    /// Continue the run whose checkpoints are in DIR, with its settings and
    /// outputs, and keep checkpointing there; ends with the same model as a
    /// run that was never interrupted. The original command line plus
    /// --resume works: settings given again must equal the checkpoint's,
    /// except a larger --epochs, which trains on; --data-dir may point
    /// elsewhere if it holds the same dataset.
    #[arg(long, value_name = "DIR")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Print only the final results.
    #[arg(long, short)]
    #[serde(skip)]
    pub quiet: bool,
}

impl TrainArgs {
    /// Applies `--preset`: each setting the preset names takes the preset's
    /// value unless its flag was given on the command line (`matches`). A
    /// preset's cosine period is its number of epochs: one cycle, from
    /// `lr_max` down towards `lr_min`.
    pub fn apply_preset(&mut self, matches: &clap::ArgMatches) {
        let Some(preset) = self.preset else {
            return;
        };
        let given =
            |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        macro_rules! set {
            ($field:ident, $value:expr) => {
                if !given(stringify!($field)) {
                    self.$field = $value;
                }
            };
        }
        let values = TrainConfig::from(match preset {
            Preset::Post => return,
            Preset::Softmax => mnist_train::Preset::Softmax,
            Preset::Mlp => mnist_train::Preset::Mlp,
            Preset::Cnn => mnist_train::Preset::Cnn,
        });
        set!(head, HeadArg::from(values.head));
        set!(hidden, values.hidden);
        set!(conv, values.conv.clone());
        set!(
            init,
            match values.init {
                Init::Zeros => InitArg::Zeros,
                Init::Normal { .. } => InitArg::Normal,
            }
        );
        set!(epochs, values.epochs);
        set!(batch_size, values.batch_size);
        set!(lr_max, values.lr_max);
        set!(lr_min, values.lr_min);
        set!(warmup, warmup_text(&values.warmup));
        set!(momentum, values.momentum);
        set!(weight_decay, values.weight_decay);
        // The preset's cycle is the run, however many epochs it is given.
        set!(cosine_period, self.epochs);
    }

    /// Checks every setting before any data is read, naming the flags, and
    /// gives the library's settings.
    fn config(&self) -> Result<TrainConfig> {
        if self.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        if self.epochs > 1_000_000 {
            bail!("--epochs {}: at most 1000000", self.epochs);
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        for (flag, v) in [("--lr-min", self.lr_min), ("--lr-max", self.lr_max)] {
            // The arithmetic is f32: a larger rate would be infinite.
            if v.abs() > f64::from(f32::MAX) {
                bail!("{flag} {v:e}: larger than the largest f32 ({:e})", f32::MAX);
            }
        }
        CosineWarmRestarts::new(self.lr_min, self.lr_max, self.cosine_period)
            .context("--lr-min/--lr-max/--cosine-period")?;
        let warmup: Warmup = self
            .warmup
            .parse()
            .with_context(|| format!("--warmup {:?}", self.warmup))?;
        if let Some(&(epoch, factor)) = warmup
            .steps()
            .iter()
            .find(|&&(_, f)| f * self.lr_max > f64::from(f32::MAX))
        {
            bail!(
                "--warmup {:?}: epoch {epoch}'s factor {factor:e} times --lr-max {} is larger \
                 than the largest f32 ({:e})",
                self.warmup,
                self.lr_max,
                f32::MAX
            );
        }
        let holdout = parse_holdout(&self.val_size)?;
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("--momentum {}: must be in [0, 1)", self.momentum);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!(
                "--weight-decay {}: must be finite and non-negative",
                self.weight_decay
            );
        }
        if !self.conv.is_empty() && self.head != HeadArg::Softmax {
            bail!(
                "--conv {}: a convolutional network has a softmax head; add --head softmax",
                self.conv
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        if self.threads == Some(0) {
            bail!("--threads 0: must be at least 1");
        }
        if let Some(h) = self.hidden {
            if !(1..=100_000).contains(&h) {
                bail!("--hidden {h}: must be between 1 and 100000");
            }
            if self.init == InitArg::Zeros {
                bail!(
                    "--init zeros with --hidden {h}: a hidden layer is He-initialised \
                     (from zeros its units would all stay the same); drop --init zeros"
                );
            }
        }
        let config = TrainConfig {
            head: match self.head {
                HeadArg::Sigmoid => Head::Sigmoid,
                HeadArg::Softmax => Head::Softmax,
            },
            conv: self.conv.clone(),
            hidden: self.hidden,
            init: match self.init {
                InitArg::Normal => Init::Normal { std: 1.0 },
                InitArg::Zeros => Init::Zeros,
            },
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr_min: self.lr_min,
            lr_max: self.lr_max,
            cosine_period: self.cosine_period,
            warmup,
            seed: self.seed,
            holdout,
            threads: self.threads,
        };
        // What the flags above did not check.
        config.check()?;
        Ok(config)
    }
}

fn parse_holdout(s: &str) -> Result<Holdout> {
    let bad = || {
        anyhow::anyhow!(
            "--val-size {s:?}: expected a count (e.g. 10000) or a fraction in [0, 1) (e.g. 0.1)"
        )
    };
    if let Ok(n) = s.parse::<usize>() {
        return Ok(if n == 0 {
            Holdout::None
        } else {
            Holdout::Count(n)
        });
    }
    let f: f64 = s.parse().map_err(|_| bad())?;
    if (0.0..1.0).contains(&f) {
        Ok(Holdout::Fraction(f))
    } else {
        Err(bad())
    }
}

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

/// Where checkpoints go, and what they record beside the state.
struct Keep<'a> {
    /// `--checkpoint-dir` as given.
    dir: &'a Path,
    /// Where it really is.
    real: &'a Path,
    /// The settings, with the real locations of the data and outputs.
    recorded: &'a TrainArgs,
    /// The training set's fingerprint.
    dataset: &'a str,
}

/// What a training run shows: the post's log, a progress bar on a
/// terminal, and checkpoints; Ctrl-C stops it between steps.
struct Shown<'a> {
    log: Log,
    epochs: usize,
    batch_size: usize,
    log_every: usize,
    interrupted: &'a AtomicBool,
    checkpoint: Option<Keep<'a>>,
}

impl Observer for Shown<'_> {
    fn started(&mut self, info: &RunInfo) {
        self.log.line(&format!(
            "train {} samples, validation {} ({}), test {}; {} features; {} of {} per epoch",
            info.train_samples,
            info.val_samples,
            if info.held_out {
                "held out"
            } else {
                "the test set, as in the post"
            },
            info.test_samples,
            info.features,
            plural(info.batches_per_epoch, "batch"),
            self.batch_size
        ));
        if let Some(done) = info.resumed_after {
            self.log
                .line(&format!("resuming after epoch {done} of {}", self.epochs));
        }
        self.log.line(&format!("model: {}", info.model));
        let left = self.epochs - info.resumed_after.unwrap_or(0);
        self.log.start_bar((left * info.batches_per_epoch) as u64);
    }

    fn epoch_started(&mut self, _epoch: usize, lr: f64) {
        self.log.line(&format!("Set learning rate to {lr:.5}"));
    }

    fn step(&mut self, epoch: usize, iteration: usize, batch: usize, loss: f64, lr: f64) {
        if self.log_every > 0 && batch.is_multiple_of(self.log_every) {
            self.log.line(&format!(
                "Iter {iteration:>5}  Epoch {epoch:>3}  Loss {loss:.5}  LR {lr:.5}"
            ));
        }
    }

    fn progress(&mut self) {
        self.log.tick();
    }

    fn epoch_finished(&mut self, r: &EpochRecord) {
        self.log.line(&format!(
            "Epoch {:>3}  train loss {:.5}  val loss {:.5}  val accuracy {:.4}",
            r.epoch, r.train_loss, r.val_loss, r.val_accuracy
        ));
    }

    fn wants_checkpoints(&self) -> bool {
        self.checkpoint.is_some()
    }

    fn checkpoint(&mut self, state: StateView<'_>) -> std::result::Result<(), String> {
        let Some(keep) = &self.checkpoint else {
            return Ok(());
        };
        Checkpoint::new(
            keep.recorded,
            keep.dataset,
            state.model,
            state.velocity,
            state.epochs,
            state.iterations,
        )
        .and_then(|ck| ck.save(keep.dir, keep.real))
        .map_err(|e| format!("{e:#}"))
    }

    fn should_stop(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }
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
