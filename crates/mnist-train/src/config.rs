//! What a run trains and how: one plain struct, the presets as values of it.

use mnist_data::Holdout;
use mnist_model::{CosineWarmRestarts, Head, Init, Product, Warmup};

use crate::error::{Error, Result};

/// Everything a training run is asked for. [`Default`] is the blog post's
/// run; [`Preset`]s give the others. Check it with [`TrainConfig::check`]
/// (the [`Trainer`](crate::Trainer) does).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// The output head: the post's ten sigmoids, or a softmax.
    pub head: Head,
    /// Convolutions before the dense layers: the filters of each 5 x 5
    /// convolution (with ReLU and 2 x 2 max-pooling), first to last; empty
    /// for none. A convolutional network has a softmax head.
    pub conv: Vec<usize>,
    /// A hidden layer of this many ReLU units (He-initialised), if any.
    pub hidden: Option<usize>,
    /// How a model without a hidden layer starts.
    pub init: Init,
    /// Momentum of SGD, in `[0, 1)`.
    pub momentum: f32,
    /// L2 weight decay added to the gradient of the weights.
    pub weight_decay: f32,
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Lowest learning rate of the cosine schedule.
    pub lr_min: f64,
    /// Highest learning rate of the cosine schedule.
    pub lr_max: f64,
    /// Period of the cosine warm restarts, in epochs.
    pub cosine_period: usize,
    /// Warm-up factors multiplying the cosine rate.
    pub warmup: Warmup,
    /// Seed of the initial weights, the shuffles and the validation split.
    pub seed: u64,
    /// Training samples held out for validation; [`Holdout::None`]
    /// evaluates on the test set after each epoch, as the post does.
    pub holdout: Holdout,
    /// Threads of a network's steps, the MLP's and the convolutional
    /// network's (`None`: every core). The results are the same for any
    /// number. The post's model splits each step in two halves.
    pub threads: Option<usize>,
}

/// Named runs. Each is a [`TrainConfig`] through `From`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The post's run: ten sigmoids on a linear model from N(0, 1), plain
    /// SGD dividing by the nominal batch of 512, 10 epochs of cosine warm
    /// restarts every 3 epochs from 0.1 to 1e-4 times a warm-up.
    Post,
    /// Softmax regression: softmax head, zero start, 60 epochs of batches of
    /// 64, one cosine cycle from 0.05 down to 5e-5, momentum 0.9, weight
    /// decay 1e-4.
    Softmax,
    /// 256 hidden ReLU units, softmax head, 20 epochs of batches of 128, one
    /// cosine cycle from 0.05, momentum 0.9, weight decay 1e-4.
    Mlp,
    /// A convolutional network: 5 x 5 convolutions of 16 then 32 filters
    /// (each with ReLU and 2 x 2 max-pooling), 128 hidden ReLU units,
    /// softmax; 15 epochs of batches of 64, one cosine cycle from 0.05 down
    /// to 5e-5, momentum 0.9, weight decay 5e-4.
    Cnn,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            head: Head::Sigmoid,
            conv: Vec::new(),
            hidden: None,
            init: Init::Normal { std: 1.0 },
            momentum: 0.0,
            weight_decay: 0.0,
            epochs: 10,
            batch_size: 512,
            lr_min: 1e-4,
            lr_max: 0.1,
            cosine_period: 3,
            warmup: Warmup::default(),
            seed: 0,
            holdout: Holdout::None,
            threads: None,
        }
    }
}

impl From<Preset> for TrainConfig {
    fn from(preset: Preset) -> Self {
        let normal = Init::Normal { std: 1.0 };
        let (conv, hidden, init, epochs, batch_size, weight_decay) = match preset {
            Preset::Post => return Self::default(),
            Preset::Softmax => (vec![], None, Init::Zeros, 60, 64, 1e-4),
            Preset::Mlp => (vec![], Some(256), normal, 20, 128, 1e-4),
            Preset::Cnn => (vec![16, 32], Some(128), normal, 15, 64, 5e-4),
        };
        Self {
            head: Head::Softmax,
            conv,
            hidden,
            init,
            momentum: 0.9,
            weight_decay,
            epochs,
            batch_size,
            lr_min: 5e-5,
            lr_max: 0.05,
            // One cosine cycle over the run.
            cosine_period: epochs,
            warmup: Warmup::new(vec![(0, 1.0)]).unwrap_or_default(),
            seed: 0,
            holdout: Holdout::None,
            threads: None,
        }
    }
}

impl TrainConfig {
    /// Whether this is the post's model and optimiser: sigmoid head, no
    /// hidden layer, plain SGD. Such a run divides each step's gradient by
    /// the nominal batch size, as the post does; every other linear model
    /// (softmax regression, momentum, weight decay) divides by the batch's
    /// rows. Both run on the fused few-output kernels.
    pub fn is_post(&self) -> bool {
        self.head == Head::Sigmoid
            && self.conv.is_empty()
            && self.hidden.is_none()
            && self.momentum == 0.0
            && self.weight_decay == 0.0
    }

    /// The learning rate of each epoch: the cosine warm restarts times the
    /// warm-up.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid cosine schedule.
    pub fn schedule(&self) -> Result<Product<CosineWarmRestarts, Warmup>> {
        let cosine = CosineWarmRestarts::new(self.lr_min, self.lr_max, self.cosine_period)
            .map_err(|e| Error::Config {
                name: "learning-rate schedule",
                reason: e.to_string(),
            })?;
        Ok(Product::new(cosine, self.warmup.clone()))
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting and what is wrong with it.
    pub fn check(&self) -> Result<()> {
        let bad = |name, reason: String| Err(Error::Config { name, reason });
        if !(1..=1_000_000).contains(&self.epochs) {
            return bad("epochs", format!("{} is not in 1 to 1000000", self.epochs));
        }
        if self.batch_size == 0 {
            return bad("batch size", "must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", format!("{} is not in [0, 1)", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight decay",
                format!("{} is not finite and non-negative", self.weight_decay),
            );
        }
        if let Some(h) = self.hidden {
            if !(1..=100_000).contains(&h) {
                return bad("hidden units", format!("{h} is not in 1 to 100000"));
            }
            if self.init == Init::Zeros {
                return bad(
                    "init",
                    "a hidden layer is He-initialised; zeros would keep its units alike".into(),
                );
            }
        }
        if !self.conv.is_empty() {
            if self.head != Head::Softmax {
                return bad("head", "a convolutional network has a softmax head".into());
            }
            if self.conv.iter().any(|&c| !(1..=4096).contains(&c)) {
                return bad("convolutions", "filters must be between 1 and 4096".into());
            }
            if self.init == Init::Zeros {
                return bad(
                    "init",
                    "a convolutional network is He-initialised; zeros would keep its units alike"
                        .into(),
                );
            }
        }
        let largest = self
            .warmup
            .steps()
            .iter()
            .map(|&(_, f)| f)
            .fold(1.0_f64, f64::max);
        if self.lr_max.abs() * largest > f64::from(f32::MAX) {
            return bad(
                "learning rate",
                format!(
                    "lr_max {} times the warm-up's factor {largest} is larger than the largest f32",
                    self.lr_max
                ),
            );
        }
        self.schedule().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_check_and_only_the_post_is_the_post() {
        for preset in [Preset::Post, Preset::Softmax, Preset::Mlp, Preset::Cnn] {
            let config = TrainConfig::from(preset);
            assert!(config.check().is_ok(), "{preset:?}");
            assert_eq!(config.is_post(), preset == Preset::Post, "{preset:?}");
        }
        assert_eq!(TrainConfig::from(Preset::Mlp).cosine_period, 20);
    }

    #[test]
    fn bad_settings_are_named() {
        let named = |config: TrainConfig| match config.check() {
            Err(Error::Config { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        let base = TrainConfig::default();
        assert_eq!(
            named(TrainConfig {
                epochs: 0,
                ..base.clone()
            }),
            "epochs"
        );
        assert_eq!(
            named(TrainConfig {
                batch_size: 0,
                ..base.clone()
            }),
            "batch size"
        );
        assert_eq!(
            named(TrainConfig {
                momentum: 1.0,
                ..base.clone()
            }),
            "momentum"
        );
        assert_eq!(
            named(TrainConfig {
                hidden: Some(8),
                init: Init::Zeros,
                ..base.clone()
            }),
            "init"
        );
        assert_eq!(
            named(TrainConfig {
                lr_max: 1e300,
                ..base.clone()
            }),
            "learning rate"
        );
        assert_eq!(
            named(TrainConfig {
                lr_min: -1.0,
                ..base
            }),
            "learning-rate schedule"
        );
    }
}
