//! The flags of `mnist train`, their checks, and the settings they make.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use mnist_data::Holdout;
use mnist_model::{CosineWarmRestarts, Head, Init, Warmup};
use mnist_train::TrainConfig;
use serde::{Deserialize, Serialize};

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
    /// 2x2 max-pooling), 128 hidden ReLU units, softmax; 15 epochs of
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
    /// split in two parts, or one for every 256 rows of the batch, and
    /// uses no more threads than that. More threads than cores are
    /// allowed, with a warning.
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
    pub(super) fn config(&self) -> Result<TrainConfig> {
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
