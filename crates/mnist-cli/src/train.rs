//! `mnist train`: the post's training loop, with the post's settings as
//! defaults.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use mnist_data::{
    split_indices, Dataset, Holdout, LazyBatch, Loader, LoaderConfig, Part, PendingOrder,
    Preprocess,
};
use mnist_model::{
    evaluate, Background, CosineWarmRestarts, Evaluation, Head, Init, LinearModel, LrSchedule, Mlp,
    MlpTrainer, Model, PendingEvaluation, Product, RowSource, Sgd, StepScratch, Warmup,
};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::checkpoint::{Checkpoint, Velocity, FILE as CHECKPOINT_FILE};
use crate::data::{open_part, DatasetInfo};
use crate::data_home;
use crate::output::write_atomic;
use crate::paths::{real_location, Files};
use crate::predict::plural;
use crate::progress::Log;
use crate::report::{EpochRecord, TestReport, Timing};

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
}

/// The settings a resumed run takes from its checkpoint: given again, each
/// must equal the checkpoint's (`--epochs` may grow).
pub const FROM_CHECKPOINT: [&str; 14] = [
    "preset",
    "head",
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
    /// Add a hidden layer of N ReLU units (He-initialised).
    #[arg(long, value_name = "N")]
    pub hidden: Option<usize>,
    /// Momentum of SGD, in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    pub momentum: f32,
    /// L2 weight decay added to the gradient of the weights.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
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

/// Settings checked and turned into the objects that use them.
struct Plan {
    schedule: Product<CosineWarmRestarts, Warmup>,
    holdout: Holdout,
    init: Init,
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
        match preset {
            Preset::Post => return,
            Preset::Softmax => {
                set!(head, HeadArg::Softmax);
                set!(init, InitArg::Zeros);
                set!(epochs, 60);
                set!(batch_size, 64);
            }
            Preset::Mlp => {
                set!(hidden, Some(256));
                set!(head, HeadArg::Softmax);
                set!(epochs, 20);
                set!(batch_size, 128);
            }
        }
        set!(lr_max, 0.05);
        set!(lr_min, 5e-5);
        set!(warmup, "0:1".to_string());
        set!(momentum, 0.9);
        set!(weight_decay, 1e-4);
        set!(cosine_period, self.epochs);
    }

    /// Whether this is the post's model and optimiser: sigmoid head, no
    /// hidden layer, plain SGD. Anything else trains a network.
    fn is_post(&self) -> bool {
        self.head == HeadArg::Sigmoid
            && self.hidden.is_none()
            && self.momentum == 0.0
            && self.weight_decay == 0.0
    }
    /// Checks every setting before any data is read.
    fn plan(&self) -> Result<Plan> {
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
        let cosine = CosineWarmRestarts::new(self.lr_min, self.lr_max, self.cosine_period)
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
        let init = match self.init {
            InitArg::Normal => Init::Normal { std: 1.0 },
            InitArg::Zeros => Init::Zeros,
        };
        Ok(Plan {
            schedule: Product::new(cosine, warmup),
            holdout,
            init,
        })
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

/// Features and labels of an evaluation set, prepared once.
pub struct EvalSet {
    pub x: Array2<f32>,
    pub labels: Vec<u8>,
}

impl EvalSet {
    /// The samples `indices` of `data`.
    pub fn new(data: &Dataset, pre: &Preprocess, indices: &[usize]) -> Result<Self> {
        let x =
            Loader::features_of(data, pre, indices).context("evaluation indices out of range")?;
        let labels = indices.iter().map(|&i| data.labels()[i]).collect();
        Ok(Self { x, labels })
    }

    /// All of `data`.
    pub fn all(data: &Dataset, pre: &Preprocess) -> Result<Self> {
        let indices: Vec<usize> = (0..data.len()).collect();
        Self::new(data, pre, &indices)
    }
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
        for part in [Part::Train, Part::Test] {
            let (images, labels) = part.paths(data_dir);
            files.input("--data-dir", &images)?;
            files.input("--data-dir", &labels)?;
        }
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
    let plan = args.plan()?;
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
    if train.pixels() != test.pixels() {
        bail!(
            "{}: training images have {} pixels but test images {}",
            data_dir.display(),
            train.pixels(),
            test.pixels()
        );
    }
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
    let pre = Preprocess::default();
    // Index lists only for a held-out split: a loader over the whole
    // training set keeps just its order, 4 bytes a sample.
    let (train_idx, val_idx) = match plan.holdout {
        Holdout::None => (None, Vec::new()),
        holdout => {
            let (train_idx, val_idx) =
                split_indices(train.len(), holdout, args.seed).context("--val-size")?;
            (Some(train_idx), val_idx)
        }
    };
    let loader_config = LoaderConfig {
        batch_size: args.batch_size,
        shuffle: true,
        drop_last: false,
        seed: args.seed,
    };
    let mut loader = match &train_idx {
        Some(indices) => Loader::with_indices(&train, pre.clone(), loader_config, indices)?,
        None => Loader::new(&train, pre.clone(), loader_config)?,
    };
    drop(train_idx);
    let load_seconds = t_load.elapsed().as_secs_f64();
    log.line(&format!(
        "train {} samples, validation {} ({}), test {}; {} features; {} of {} per epoch",
        loader.len(),
        if val_idx.is_empty() {
            test.len()
        } else {
            val_idx.len()
        },
        if !val_idx.is_empty() {
            "held out"
        } else {
            "the test set, as in the post"
        },
        test.len(),
        loader.features(),
        plural(loader.batches_per_epoch(), "batch"),
        args.batch_size
    ));

    let (mut learner, mut epochs, mut iterations) = match resumed {
        Some((ck, model, velocity)) => {
            ck.check_dataset(&dataset, data_dir)?;
            if model.features() != loader.features() || model.classes() != train.classes() {
                bail!(
                    "--resume: the checkpoint's model takes {} features and {} classes, the data gives {} and {}",
                    model.features(),
                    model.classes(),
                    loader.features(),
                    train.classes()
                );
            }
            log.line(&format!(
                "resuming after epoch {} of {}",
                ck.epochs_done, args.epochs
            ));
            (
                Learner::resume(args, model, velocity)?,
                ck.epochs,
                ck.iterations,
            )
        }
        None => {
            let learner = Learner::new(args, &plan, loader.features(), train.classes())?;
            (learner, Vec::new(), Vec::new())
        }
    };
    log.line(&format!("model: {}", learner.snapshot().describe()));
    let first_epoch = epochs.len();
    let post = matches!(learner, Learner::Post { .. });
    let mut test_set = Evaluator::new(post, &test, &pre, None)?;
    let mut val_set = if val_idx.is_empty() {
        None
    } else {
        Some(Evaluator::new(post, &train, &pre, Some(&val_idx))?)
    };
    let val_samples = val_set.as_ref().map_or(test.len(), Evaluator::len);

    let t_train = Instant::now();
    log.start_bar(((args.epochs - first_epoch) * loader.batches_per_epoch()) as u64);
    epochs.reserve(args.epochs);
    iterations.reserve(args.epochs * loader.batches_per_epoch());
    // The post's model, on rows made from the images and with no checkpoint
    // to write after each epoch, is evaluated during the next epoch: in the
    // moments a step's two threads would wait for each other, then what is
    // left after the epoch. The results are the same bits; the log keeps its
    // order (lines that come after an epoch's are held back until it is
    // known).
    let val_is_test = val_set.is_none();
    let eval_on = match val_set.as_mut() {
        Some(val) => val,
        None => &mut test_set,
    };
    let (beside_rows, mut eval_now) = match eval_on {
        Evaluator::Rows(eval_loader) if post && args.checkpoint_dir.is_none() => {
            eval_loader.begin_epoch(0);
            let batch = eval_loader
                .next_lazy()
                .context("the evaluation set is empty")?;
            (Some(BatchRows(batch)), None)
        }
        on => (None, Some(on)),
    };
    let mut pending: Option<(EpochRecord, PendingEvaluation<'_, BatchRows<'_>>)> = None;
    // With the evaluation in the background, the next epoch's order is
    // drawn there too (the same order as drawn when the epoch begins).
    let mut prepared: Option<PendingOrder> = None;
    let mut last_eval = None;
    for epoch in first_epoch..args.epochs {
        let lr = plan.schedule.lr(epoch);
        log.line(&format!("Set learning rate to {lr:.5}"));
        let this_order = prepared.take();
        let next_order = (beside_rows.is_some() && epoch + 1 < args.epochs)
            .then(|| loader.prepare_epoch(epoch + 1));
        let run_epoch = || {
            let epoch_run = EpochRun {
                epoch,
                lr,
                interrupted: &interrupted,
                log_every: args.log_every,
            };
            epoch_run.train(
                &mut learner,
                &mut loader,
                this_order,
                &mut iterations,
                &mut log,
            )
        };
        let meanwhile = Meanwhile {
            evaluation: pending.as_ref().map(|(_, evaluation)| evaluation),
            order: next_order.as_ref(),
        };
        let trained = if meanwhile.evaluation.is_some() || meanwhile.order.is_some() {
            mnist_model::with_background(&meanwhile, run_epoch)
        } else {
            run_epoch()
        };
        prepared = next_order;
        // The previous epoch's line first, whatever happened in this one.
        if let Some((record, evaluation)) = pending.take() {
            conclude(record, &evaluation.finish()?, &mut log, &mut epochs);
        }
        let Some((batch_in_epoch, loss_sum)) = trained? else {
            log.finish_bar();
            return Err(Interrupted {
                epoch,
                checkpoint_dir: args.checkpoint_dir.clone(),
            }
            .into());
        };
        let record = EpochRecord {
            epoch,
            lr,
            train_loss: loss_sum / batch_in_epoch.max(1) as f64,
            val_loss: f64::NAN,
            val_accuracy: f64::NAN,
        };
        if let (Some(rows), Learner::Post { model, .. }) = (&beside_rows, &learner) {
            let evaluation = PendingEvaluation::new(model, rows.0.labels, rows)?;
            pending = Some((record, evaluation));
            log.hold();
            continue;
        }
        let Some(on) = eval_now.as_deref_mut() else {
            bail!("internal error: no evaluation set for epoch {epoch}");
        };
        let eval = learner.evaluate(on)?;
        conclude(record, &eval, &mut log, &mut epochs);
        last_eval = Some(eval);
        if let (Some(dir), Some(real)) = (&args.checkpoint_dir, &files.checkpoint_dir) {
            Checkpoint::new(
                &recorded,
                &dataset,
                &learner.snapshot(),
                learner.velocity(),
                &epochs,
                &iterations,
            )?
            .save(dir, real)?;
        }
    }
    if let Some((record, evaluation)) = pending.take() {
        let eval = evaluation.finish()?;
        conclude(record, &eval, &mut log, &mut epochs);
        last_eval = Some(eval);
    }
    log.finish_bar();
    let train_seconds = t_train.elapsed().as_secs_f64();

    let t_test = Instant::now();
    // After the last epoch the model was evaluated on the test set already
    // when that is the validation set.
    let eval = match last_eval {
        Some(eval) if val_is_test => eval,
        _ => learner.evaluate(&mut test_set)?,
    };
    let model = learner.snapshot();
    let test_report = TestReport::new(&eval.confusion, eval.loss, &names);
    let test_seconds = t_test.elapsed().as_secs_f64();
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
        "timing: load {load_seconds:.3} s, train {train_seconds:.3} s (kernel: {})",
        learner.kernel()
    );

    if let (Some(path), Some(real)) = (&args.save, &files.save) {
        model
            .save_with(real, &info.to_metadata()?)
            .with_context(|| format!("--save {}", path.display()))?;
        say!("model saved to {}", path.display());
    }
    if let (Some(path), Some(real)) = (&args.report, &files.report) {
        let report = TrainReport {
            command: "train",
            config: args,
            dataset: &info,
            train_samples: loader.len(),
            val_samples,
            val_source: if val_set.is_some() {
                "held-out"
            } else {
                "test"
            },
            kernel: learner.kernel(),
            model: model.describe(),
            epochs,
            iterations,
            test: test_report,
            timing: Timing {
                load_seconds,
                train_seconds,
                test_seconds,
            },
        };
        write_report(path, real, &report)?;
    }
    Ok(())
}

/// What threads that would wait do during an epoch: pieces of the previous
/// epoch's evaluation, then of the next epoch's order.
struct Meanwhile<'a, 'b> {
    evaluation: Option<&'a PendingEvaluation<'b, BatchRows<'b>>>,
    order: Option<&'a PendingOrder>,
}

impl Background for Meanwhile<'_, '_> {
    fn piece(&self) -> bool {
        self.evaluation.is_some_and(|e| e.piece()) || self.order.is_some_and(|o| o.piece())
    }
}

/// One epoch of training.
struct EpochRun<'a> {
    epoch: usize,
    lr: f64,
    interrupted: &'a AtomicBool,
    log_every: usize,
}

impl EpochRun<'_> {
    /// Shuffles (or takes the order `prepared` for this epoch) and trains
    /// one epoch, logging and keeping each batch's loss: the number of
    /// batches and the sum of their losses, or `None` if interrupted.
    fn train(
        &self,
        learner: &mut Learner,
        loader: &mut Loader<'_>,
        prepared: Option<PendingOrder>,
        iterations: &mut Vec<(usize, f64)>,
        log: &mut Log,
    ) -> Result<Option<(usize, f64)>> {
        let EpochRun {
            epoch,
            lr,
            interrupted,
            log_every,
        } = *self;
        match prepared {
            Some(order) if order.epoch() == epoch => loader.begin_prepared_epoch(order),
            _ => loader.begin_epoch(epoch),
        }
        let mut batch_in_epoch = 0;
        let mut loss_sum = 0.0;
        loop {
            if interrupted.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let iteration = iterations.len();
            let stepped = match learner {
                Learner::Post {
                    model,
                    sgd,
                    scratch,
                } => match loader.next_lazy() {
                    Some(batch) => {
                        // Features are made block by block on the threads
                        // that use them.
                        let rows = BatchRows(batch);
                        Some(sgd.step_rows(model, batch.y, &rows, lr as f32, scratch))
                    }
                    None => None,
                },
                Learner::Network { model, trainer } => loader
                    .next_batch()
                    .map(|batch| trainer.step(&mut *model, batch.x, batch.y, lr as f32)),
            };
            let Some(result) = stepped else {
                return Ok(Some((batch_in_epoch, loss_sum)));
            };
            let loss = result.with_context(|| {
                format!(
                    "epoch {epoch}, iteration {iteration}, learning rate {lr:e}; no model saved"
                )
            })?;
            iterations.push((iteration, loss));
            loss_sum += loss;
            if log_every > 0 && batch_in_epoch % log_every == 0 {
                log.line(&format!(
                    "Iter {iteration:>5}  Epoch {epoch:>3}  Loss {loss:.5}  LR {lr:.5}"
                ));
            }
            batch_in_epoch += 1;
            log.tick();
        }
    }
}

/// Completes an epoch's `record` with its evaluation, logs it (before the
/// lines held back for it) and keeps it.
fn conclude(
    mut record: EpochRecord,
    eval: &Evaluation,
    log: &mut Log,
    epochs: &mut Vec<EpochRecord>,
) {
    record.val_loss = eval.loss;
    record.val_accuracy = eval.accuracy;
    log.line_before_held(&format!(
        "Epoch {:>3}  train loss {:.5}  val loss {:.5}  val accuracy {:.4}",
        record.epoch, record.train_loss, record.val_loss, record.val_accuracy
    ));
    epochs.push(record);
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

/// The model being trained, with its optimiser.
enum Learner {
    /// The post's linear model and plain SGD, on the fused kernels.
    Post {
        model: LinearModel,
        sgd: Sgd,
        scratch: StepScratch,
    },
    /// A network, with SGD with momentum and weight decay.
    Network { model: Mlp, trainer: MlpTrainer },
}

impl Learner {
    /// A fresh model: initial weights drawn from a stream of the seed of
    /// their own, so they never share random numbers with the shuffles.
    fn new(args: &TrainArgs, plan: &Plan, features: usize, classes: usize) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
        rng.set_stream(u64::MAX - 1);
        if args.is_post() {
            let model = LinearModel::new(features, classes, plan.init, &mut rng)?;
            return Self::resume(args, Model::Linear(model), None);
        }
        let head = match args.head {
            HeadArg::Sigmoid => Head::Sigmoid,
            HeadArg::Softmax => Head::Softmax,
        };
        let zeros = args.init == InitArg::Zeros;
        let model = Mlp::new(features, args.hidden, classes, head, zeros, &mut rng)?;
        Self::resume(args, Model::Network(model), None)
    }

    /// Continues training `model` (with the optimiser's saved momentum).
    fn resume(args: &TrainArgs, model: Model, velocity: Option<Velocity>) -> Result<Self> {
        Ok(match model {
            Model::Linear(model) => Learner::Post {
                model,
                sgd: Sgd::new(args.batch_size)?,
                scratch: StepScratch::default(),
            },
            Model::Network(model) => {
                let mut trainer = MlpTrainer::new(&model, args.momentum, args.weight_decay)?;
                if let Some(v) = velocity {
                    trainer.set_velocity(v)?;
                }
                Learner::Network { model, trainer }
            }
        })
    }

    fn evaluate(&self, on: &mut Evaluator<'_>) -> Result<Evaluation> {
        Ok(match (self, on) {
            (Learner::Post { model, .. }, Evaluator::Rows(loader)) => {
                loader.begin_epoch(0);
                let batch = loader.next_lazy().context("the evaluation set is empty")?;
                mnist_model::evaluate_rows(model, batch.labels, &BatchRows(batch))?
            }
            (Learner::Post { model, .. }, Evaluator::Matrix(set)) => {
                evaluate(model, set.x.view(), &set.labels)?
            }
            (Learner::Network { model, .. }, Evaluator::Matrix(set)) => {
                mnist_model::evaluate_mlp(model, set.x.view(), &set.labels)?
            }
            (Learner::Network { .. }, Evaluator::Rows(_)) => {
                bail!("a network is evaluated on a feature matrix, not on rows made on demand")
            }
        })
    }

    /// What computes the steps: the fused kernels this CPU takes for the
    /// post's model, ndarray's matrix products for a network.
    fn kernel(&self) -> &'static str {
        match self {
            Learner::Post { .. } => mnist_model::kernel_path(),
            Learner::Network { .. } => "ndarray matrix products",
        }
    }

    /// The model as it is now.
    fn snapshot(&self) -> Model {
        match self {
            Learner::Post { model, .. } => Model::Linear(model.clone()),
            Learner::Network { model, .. } => Model::Network(model.clone()),
        }
    }

    /// The optimiser's momentum, for checkpoints.
    fn velocity(&self) -> Option<&[(Array2<f32>, ndarray::Array1<f32>)]> {
        match self {
            Learner::Post { .. } => None,
            Learner::Network { trainer, .. } => Some(trainer.velocity()),
        }
    }
}

/// A batch as the trainer's row source: rows made from the image bytes, and
/// images fetched into the cache ahead of use.
struct BatchRows<'a>(LazyBatch<'a>);

impl RowSource for BatchRows<'_> {
    fn fill(&self, first: usize, out: &mut [f32], stride: usize) {
        self.0.features_into(first, out, stride);
    }

    fn prefetch(&self, first: usize, n: usize) {
        self.0.prefetch(first, n);
    }
}

/// Where evaluation rows come from. The post's model takes them made from
/// the image bytes block by block on the threads that use them, as in
/// training, so no `f32` copy of the evaluation set exists; a network takes
/// a feature matrix.
enum Evaluator<'d> {
    /// One batch of the whole set, in order, made on demand.
    Rows(Loader<'d>),
    /// The features, computed once.
    Matrix(EvalSet),
}

impl<'d> Evaluator<'d> {
    /// The samples `indices` of `data` (all of them if `None`), for the
    /// post's model (`post`) or a network.
    fn new(
        post: bool,
        data: &'d Dataset,
        pre: &Preprocess,
        indices: Option<&[usize]>,
    ) -> Result<Self> {
        if !post {
            return Ok(Evaluator::Matrix(match indices {
                Some(indices) => EvalSet::new(data, pre, indices)?,
                None => EvalSet::all(data, pre)?,
            }));
        }
        let config = LoaderConfig {
            batch_size: indices.map_or(data.len(), <[usize]>::len),
            shuffle: false,
            drop_last: false,
            seed: 0,
        };
        Ok(Evaluator::Rows(match indices {
            Some(indices) => Loader::with_indices(data, pre.clone(), config, indices)?,
            None => Loader::new(data, pre.clone(), config)?,
        }))
    }

    /// Number of samples.
    fn len(&self) -> usize {
        match self {
            Evaluator::Rows(loader) => loader.len(),
            Evaluator::Matrix(set) => set.labels.len(),
        }
    }
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
