//! The model being trained with its optimiser, and where its evaluation
//! rows come from.

use mnist_data::{Dataset, LazyBatch, Loader, LoaderConfig, Preprocess};
use mnist_model::{
    evaluate, evaluate_cnn, Cnn, CnnTrainer, Evaluation, Init, LinearModel, Mlp, MlpTrainer, Model,
    RowSource, RowsKey, Sgd, StepScratch,
};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::TrainConfig;
use crate::error::{Error, Result};

/// The momentum of a network's optimiser, per layer `(weights, biases)`.
pub type Velocity = Vec<(Array2<f32>, Array1<f32>)>;

/// The model being trained, with its optimiser.
pub(crate) enum Learner {
    /// A linear model (the post's, or softmax regression) on the fused
    /// few-output kernels, with the post's plain SGD or with momentum and
    /// weight decay.
    Linear {
        model: LinearModel,
        sgd: Sgd,
        scratch: StepScratch,
    },
    /// A network, with SGD with momentum and weight decay.
    Network { model: Mlp, trainer: MlpTrainer },
    /// A convolutional network, with SGD with momentum and weight decay on
    /// every core.
    Cnn { model: Cnn, trainer: CnnTrainer },
}

/// The side of the convolutions' square kernels.
const KERNEL: usize = 5;

impl Learner {
    /// A fresh model: initial weights drawn from a stream of the seed of
    /// their own, so they never share random numbers with the shuffles.
    pub(crate) fn new(config: &TrainConfig, features: usize, classes: usize) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(u64::MAX - 1);
        if config.hidden.is_none() && config.conv.is_empty() {
            let model =
                LinearModel::new(features, classes, config.init, &mut rng)?.with_head(config.head);
            return Self::resume(config, Model::Linear(model), None);
        }
        if !config.conv.is_empty() {
            // The rows are square images and the bias feature.
            let side = (1..=features).find(|s| s * s + 1 >= features).unwrap_or(0);
            if side * side + 1 != features {
                return Err(Error::Config {
                    name: "convolutions",
                    reason: format!("{features} features are not a square image and a bias"),
                });
            }
            let model = Cnn::new(side, KERNEL, &config.conv, config.hidden, classes, &mut rng)?;
            return Self::resume(config, Model::Cnn(model), None);
        }
        let zeros = config.init == Init::Zeros;
        let model = Mlp::new(
            features,
            config.hidden,
            classes,
            config.head,
            zeros,
            &mut rng,
        )?;
        Self::resume(config, Model::Network(model), None)
    }

    /// Continues training `model` (with the optimiser's saved momentum).
    pub(crate) fn resume(
        config: &TrainConfig,
        model: Model,
        velocity: Option<Velocity>,
    ) -> Result<Self> {
        Ok(match model {
            Model::Linear(model) => {
                // The post's optimiser divides by the nominal batch size;
                // any other by each batch's rows, as the networks do.
                let mut sgd = if config.is_post() {
                    Sgd::new(config.batch_size)?
                } else {
                    Sgd::with_momentum(config.momentum, config.weight_decay)?
                };
                if let Some(threads) = config.threads {
                    sgd = sgd.with_threads(threads);
                }
                if let Some(v) = velocity {
                    match v.as_slice() {
                        [(w, b)] if b.is_empty() => sgd.set_velocity(&model, w.view())?,
                        _ => {
                            return Err(Error::Resume(
                                "the velocity of a linear model is one matrix".into(),
                            ))
                        }
                    }
                }
                Learner::Linear {
                    model,
                    sgd,
                    scratch: StepScratch::default(),
                }
            }
            Model::Network(model) => {
                let mut trainer = MlpTrainer::new(&model, config.momentum, config.weight_decay)?;
                if let Some(threads) = config.threads {
                    trainer = trainer.with_threads(threads);
                }
                if let Some(v) = velocity {
                    trainer.set_velocity(v)?;
                }
                Learner::Network { model, trainer }
            }
            Model::Cnn(model) => {
                let mut trainer = CnnTrainer::new(&model, config.momentum, config.weight_decay)?;
                if let Some(threads) = config.threads {
                    trainer = trainer.with_threads(threads);
                }
                if let Some(v) = velocity {
                    trainer.set_velocity(v)?;
                }
                Learner::Cnn { model, trainer }
            }
        })
    }

    /// Whether the model is linear: trained and evaluated on rows made on
    /// demand from the images.
    pub(crate) fn is_linear(&self) -> bool {
        matches!(self, Learner::Linear { .. })
    }

    /// One step on the loader's next batch: its loss, or `None` at the end
    /// of the epoch.
    pub(crate) fn step(
        &mut self,
        loader: &mut Loader<'_>,
        lr: f32,
    ) -> Option<mnist_model::Result<f64>> {
        match self {
            Learner::Linear {
                model,
                sgd,
                scratch,
            } => loader.next_lazy().map(|batch| {
                // Features are made block by block on the threads that use
                // them.
                let rows = BatchRows(batch);
                sgd.step_rows(model, batch.y, &rows, lr, scratch)
            }),
            // Each part of the step makes its own rows, on its thread.
            Learner::Network { model, trainer } => loader
                .next_lazy()
                .map(|batch| trainer.step_rows(&mut *model, &BatchRows(batch), batch.y, lr)),
            Learner::Cnn { model, trainer } => loader
                .next_batch()
                .map(|batch| trainer.step(&mut *model, batch.x, batch.y, lr)),
        }
    }

    pub(crate) fn evaluate(&self, on: &mut Evaluator<'_>) -> Result<Evaluation> {
        Ok(match (self, on) {
            (Learner::Linear { model, .. }, Evaluator::Rows(loader)) => {
                loader.begin_epoch(0);
                let batch = loader
                    .next_lazy()
                    .ok_or(Error::Internal("the evaluation set is empty"))?;
                mnist_model::evaluate_rows(model, batch.labels, &BatchRows(batch))?
            }
            (Learner::Linear { model, .. }, Evaluator::Matrix(set)) => {
                evaluate(model, set.x.view(), &set.labels)?
            }
            (Learner::Network { model, .. }, Evaluator::Matrix(set)) => {
                mnist_model::evaluate_mlp(model, set.x.view(), &set.labels)?
            }
            (Learner::Cnn { model, .. }, Evaluator::Matrix(set)) => {
                evaluate_cnn(model, set.x.view(), &set.labels)?
            }
            (Learner::Network { .. } | Learner::Cnn { .. }, Evaluator::Rows(_)) => {
                return Err(Error::Internal(
                    "a network is evaluated on a feature matrix, not on rows made on demand",
                ))
            }
        })
    }

    /// The model as it is now.
    pub(crate) fn snapshot(&self) -> Model {
        match self {
            Learner::Linear { model, .. } => Model::Linear(model.clone()),
            Learner::Network { model, .. } => Model::Network(model.clone()),
            Learner::Cnn { model, .. } => Model::Cnn(model.clone()),
        }
    }

    /// The optimiser's momentum, for checkpoints: per layer `(weights,
    /// biases)`; a linear model's is one matrix with no biases.
    pub(crate) fn velocity(&self) -> Option<Velocity> {
        match self {
            Learner::Linear { model, sgd, .. } => {
                sgd.velocity(model).map(|w| vec![(w, Array1::zeros(0))])
            }
            Learner::Network { trainer, .. } => Some(trainer.velocity().to_vec()),
            Learner::Cnn { trainer, .. } => Some(trainer.velocity().to_vec()),
        }
    }

    /// The instructions that compute the steps: the fused kernels' path
    /// for a linear model, the register-blocked products' for a network
    /// (the same path: `MNIST_KERNEL` chooses both).
    pub(crate) fn kernel(&self) -> &'static str {
        mnist_model::kernel_path()
    }
}

/// A batch as the trainer's row source: rows made from the image bytes, and
/// images fetched into the cache ahead of use.
pub(crate) struct BatchRows<'a>(pub(crate) LazyBatch<'a>);

impl RowSource for BatchRows<'_> {
    fn fill(&self, first: usize, out: &mut [f32], stride: usize) {
        self.0.features_into(first, out, stride);
    }

    fn prefetch(&self, first: usize, n: usize) {
        self.0.prefetch(first, n);
    }

    fn fill_columns(
        &self,
        first: usize,
        out: &mut [f32],
        stride: usize,
        columns: std::ops::Range<usize>,
        _features: usize,
    ) {
        self.0.columns_into(first, out, stride, columns);
    }

    fn prefetch_columns(&self, first: usize, n: usize, columns: std::ops::Range<usize>) {
        self.0.prefetch_columns(first, n, columns);
    }

    fn rows_key(&self, first: usize, n: usize) -> Option<RowsKey> {
        self.0.rows_key(first, n).map(RowsKey::new)
    }
}

/// Features and labels of an evaluation set, prepared once.
pub(crate) struct EvalSet {
    x: Array2<f32>,
    labels: Vec<u8>,
}

impl EvalSet {
    /// The samples `indices` of `data`.
    fn new(data: &Dataset, pre: &Preprocess, indices: &[usize]) -> Result<Self> {
        let x = Loader::features_of(data, pre, indices)
            .ok_or(Error::Internal("evaluation indices out of range"))?;
        let labels = indices.iter().map(|&i| data.labels()[i]).collect();
        Ok(Self { x, labels })
    }
}

/// Where evaluation rows come from. The post's model takes them made from
/// the image bytes block by block on the threads that use them, as in
/// training, so no `f32` copy of the evaluation set exists; a network takes
/// a feature matrix.
pub(crate) enum Evaluator<'d> {
    /// One batch of the whole set, in order, made on demand.
    Rows(Loader<'d>),
    /// The features, computed once.
    Matrix(EvalSet),
}

impl<'d> Evaluator<'d> {
    /// The samples `indices` of `data` (all of them if `None`), for the
    /// post's model (`post`) or a network.
    pub(crate) fn new(
        post: bool,
        data: &'d Dataset,
        pre: &Preprocess,
        indices: Option<&[usize]>,
    ) -> Result<Self> {
        if !post {
            let all: Vec<usize>;
            let indices = match indices {
                Some(indices) => indices,
                None => {
                    all = (0..data.len()).collect();
                    &all
                }
            };
            return Ok(Evaluator::Matrix(EvalSet::new(data, pre, indices)?));
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
    pub(crate) fn len(&self) -> usize {
        match self {
            Evaluator::Rows(loader) => loader.len(),
            Evaluator::Matrix(set) => set.labels.len(),
        }
    }
}
