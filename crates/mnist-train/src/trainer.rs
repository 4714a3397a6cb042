//! The fit loop: epochs of shuffled batches, an evaluation after each
//! epoch, events to an [`Observer`], and a state to resume from.

use std::time::Instant;

use mnist_data::{split_indices, Dataset, Holdout, Loader, LoaderConfig, PendingOrder, Preprocess};
use mnist_model::{Background, Evaluation, LrSchedule, Model, PendingEvaluation};
use ndarray::{Array1, Array2};

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::learner::{BatchRows, Evaluator, Learner, Velocity};

/// One epoch of training, as the log and the report show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 0.
    pub epoch: usize,
    /// The learning rate used throughout the epoch.
    pub lr: f64,
    /// Mean of the epoch's batch losses.
    pub train_loss: f64,
    /// Loss on the validation set after the epoch.
    pub val_loss: f64,
    /// Accuracy on the validation set after the epoch.
    pub val_accuracy: f64,
}

/// What a run needs to go on after a whole number of epochs: keep it (a
/// checkpoint), and [`Trainer::fit`] from it ends with the same model, bit
/// for bit, as a run never stopped. No random state is needed: the order of
/// epoch `e` is drawn from the seed and `e` alone.
#[derive(Debug, Clone)]
pub struct TrainState {
    /// Per-epoch records so far; as many epochs are done.
    pub epochs: Vec<EpochRecord>,
    /// `(iteration, loss)` for every step so far.
    pub iterations: Vec<(usize, f64)>,
    /// The model after the last epoch done.
    pub model: Model,
    /// A network optimiser's momentum, per layer.
    pub velocity: Option<Velocity>,
}

/// The state after an epoch, lent to [`Observer::checkpoint`].
#[derive(Debug)]
pub struct StateView<'a> {
    /// Per-epoch records so far.
    pub epochs: &'a [EpochRecord],
    /// `(iteration, loss)` for every step so far.
    pub iterations: &'a [(usize, f64)],
    /// The model after the epoch.
    pub model: &'a Model,
    /// A network optimiser's momentum, per layer.
    pub velocity: Option<&'a [(Array2<f32>, Array1<f32>)]>,
}

/// What a run is about to do, for [`Observer::started`].
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Training samples.
    pub train_samples: usize,
    /// Validation samples.
    pub val_samples: usize,
    /// Whether the validation set is held out of the training set (or is
    /// the test set, as in the post).
    pub held_out: bool,
    /// Test samples.
    pub test_samples: usize,
    /// Inputs per sample.
    pub features: usize,
    /// Steps per epoch.
    pub batches_per_epoch: usize,
    /// Epochs done already, when resumed.
    pub resumed_after: Option<usize>,
    /// The model, described.
    pub model: String,
}

/// Listens to a run: every method has a default that does nothing, so an
/// observer implements only what it shows or keeps. The events come in the
/// run's order (an epoch's end before the next epoch's steps), whatever
/// the trainer does in the background.
pub trait Observer {
    /// Before the first epoch.
    fn started(&mut self, _info: &RunInfo) {}
    /// An epoch begins with learning rate `lr`.
    fn epoch_started(&mut self, _epoch: usize, _lr: f64) {}
    /// A step of `epoch` is done: `iteration` counts over the whole run,
    /// `batch` within the epoch.
    fn step(&mut self, _epoch: usize, _iteration: usize, _batch: usize, _loss: f64, _lr: f64) {}
    /// Called after every step as it happens (for a progress bar), where
    /// [`step`](Self::step) may come later to keep the order.
    fn progress(&mut self) {}
    /// An epoch is done and evaluated.
    fn epoch_finished(&mut self, _record: &EpochRecord) {}
    /// Whether [`checkpoint`](Self::checkpoint) should be called after every
    /// epoch. A linear model is evaluated during the next epoch when no
    /// checkpoint is wanted; a checkpoint needs the evaluation at once.
    fn wants_checkpoints(&self) -> bool {
        false
    }
    /// The state after an epoch, to keep.
    ///
    /// # Errors
    /// A message saying why the state could not be kept; the run stops.
    fn checkpoint(&mut self, _state: StateView<'_>) -> std::result::Result<(), String> {
        Ok(())
    }
    /// Checked between steps: `true` stops the run with [`Error::Stopped`].
    fn should_stop(&self) -> bool {
        false
    }
}

/// An [`Observer`] that shows and keeps nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {}

/// What a finished run gives.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The trained model.
    pub model: Model,
    /// Per-epoch records, resumed epochs included.
    pub epochs: Vec<EpochRecord>,
    /// `(iteration, loss)` for every step.
    pub iterations: Vec<(usize, f64)>,
    /// The final evaluation on the test set.
    pub test: Evaluation,
    /// Training samples.
    pub train_samples: usize,
    /// Validation samples.
    pub val_samples: usize,
    /// Whether the validation set was held out of the training set.
    pub held_out: bool,
    /// The kernel path that computed the steps (`avx512f+fma`, `avx2+fma`,
    /// `neon`, `portable`), for every model.
    pub kernel: &'static str,
    /// Seconds spent preparing batches and evaluation sets.
    pub setup_seconds: f64,
    /// Seconds of the epochs, their evaluations included.
    pub train_seconds: f64,
    /// Seconds of the final test evaluation (near 0 when the validation
    /// set is the test set: its evaluation after the last epoch is reused).
    pub test_seconds: f64,
}

/// Trains a [`TrainConfig`] on a training and a test set.
///
/// # Examples
///
/// ```
/// use mnist_data::{Dataset, Part};
/// use mnist_train::{Silent, TrainConfig, Trainer};
///
/// # let tmp = tempfile::tempdir()?;
/// # let dir = synthetic(tmp.path())?;
/// // `dir` holds an MNIST-layout folder (here a tiny synthetic one).
/// let train = Dataset::open(&dir, Part::Train)?;
/// let test = Dataset::open(&dir, Part::Test)?;
/// let config = TrainConfig { epochs: 2, batch_size: 4, ..TrainConfig::default() };
/// let fitted = Trainer::new(config, &train, &test)?.fit(None, &mut Silent)?;
/// assert_eq!(fitted.epochs.len(), 2);
/// assert_eq!(fitted.test.confusion.total(), 8);
/// # fn synthetic(dir: &std::path::Path) -> std::io::Result<&std::path::Path> {
/// #     for (prefix, n) in [("train", 16u8), ("t10k", 8u8)] {
/// #         let mut images = vec![0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 2, 0, 0, 0, 2];
/// #         images.extend((0..u32::from(n) * 4).map(|i| (i * 37 % 256) as u8));
/// #         let mut labels = vec![0, 0, 8, 1, 0, 0, 0, n];
/// #         labels.extend((0..n).map(|i| i % 10));
/// #         std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images)?;
/// #         std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels)?;
/// #     }
/// #     Ok(dir)
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Trainer<'d> {
    config: TrainConfig,
    train: &'d Dataset,
    test: &'d Dataset,
    pre: Preprocess,
}

impl<'d> Trainer<'d> {
    /// A trainer of `config` on `train`, tested on `test`, with the post's
    /// preprocessing (`x / 255 - 0.5` and a bias feature).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid setting, [`Error::PixelMismatch`]
    /// when the two sets' images differ in size.
    pub fn new(config: TrainConfig, train: &'d Dataset, test: &'d Dataset) -> Result<Self> {
        config.check()?;
        if train.pixels() != test.pixels() {
            return Err(Error::PixelMismatch {
                train: train.pixels(),
                test: test.pixels(),
            });
        }
        Ok(Self {
            config,
            train,
            test,
            pre: Preprocess::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Trains from the start, or on from `resume`, telling `observer`.
    ///
    /// # Errors
    /// [`Error::Step`] when a step fails (e.g. training diverges),
    /// [`Error::Stopped`] when the observer asks, [`Error::Checkpoint`] when
    /// it cannot keep a checkpoint, [`Error::Resume`] for a state that does
    /// not fit the data or the settings, and errors of the data and the
    /// model.
    pub fn fit(&self, resume: Option<TrainState>, observer: &mut dyn Observer) -> Result<Fitted> {
        let config = &self.config;
        let (train, test, pre) = (self.train, self.test, &self.pre);
        let schedule = config.schedule()?;
        let t_setup = Instant::now();
        // Index lists only for a held-out split: a loader over the whole
        // training set keeps just its order, 4 bytes a sample.
        let (train_idx, val_idx) = match config.holdout {
            Holdout::None => (None, Vec::new()),
            holdout => {
                let (train_idx, val_idx) = split_indices(train.len(), holdout, config.seed)?;
                (Some(train_idx), val_idx)
            }
        };
        let loader_config = LoaderConfig {
            batch_size: config.batch_size,
            shuffle: true,
            drop_last: false,
            seed: config.seed,
        };
        let mut loader = match &train_idx {
            Some(indices) => Loader::with_indices(train, pre.clone(), loader_config, indices)?,
            None => Loader::new(train, pre.clone(), loader_config)?,
        };
        drop(train_idx);

        let resumed_after = resume.as_ref().map(|state| state.epochs.len());
        let (mut learner, mut epochs, mut iterations) = match resume {
            Some(state) => {
                let model = &state.model;
                if model.features() != loader.features() || model.classes() != train.classes() {
                    return Err(Error::Resume(format!(
                        "the model takes {} features and {} classes, the data gives {} and {}",
                        model.features(),
                        model.classes(),
                        loader.features(),
                        train.classes()
                    )));
                }
                if state.epochs.len() > config.epochs {
                    return Err(Error::Resume(format!(
                        "{} epochs are done, more than the {} planned",
                        state.epochs.len(),
                        config.epochs
                    )));
                }
                let learner = Learner::resume(config, state.model, state.velocity)?;
                (learner, state.epochs, state.iterations)
            }
            None => {
                let learner = Learner::new(config, loader.features(), train.classes())?;
                (learner, Vec::new(), Vec::new())
            }
        };
        let linear = learner.is_linear();
        let mut test_set = Evaluator::new(linear, test, pre, None)?;
        let mut val_set = if val_idx.is_empty() {
            None
        } else {
            Some(Evaluator::new(linear, train, pre, Some(&val_idx))?)
        };
        let val_samples = val_set.as_ref().map_or(test.len(), Evaluator::len);
        let setup_seconds = t_setup.elapsed().as_secs_f64();
        observer.started(&RunInfo {
            train_samples: loader.len(),
            val_samples,
            held_out: val_set.is_some(),
            test_samples: test.len(),
            features: loader.features(),
            batches_per_epoch: loader.batches_per_epoch(),
            resumed_after,
            model: learner.snapshot().describe(),
        });

        let t_train = Instant::now();
        let first_epoch = epochs.len();
        epochs.reserve(config.epochs);
        iterations.reserve(config.epochs * loader.batches_per_epoch());
        let checkpoints = observer.wants_checkpoints();
        let mut events = Events {
            observer,
            held: None,
        };
        // A linear model, on rows made from the images and with no
        // checkpoint to keep after each epoch, is evaluated during the next
        // epoch: in the moments a step's two threads would wait for each
        // other, then what is left after the epoch. The results are the
        // same bits; the events keep their order (those of the next epoch
        // are held back until the evaluated epoch's end is told).
        let val_is_test = val_set.is_none();
        let eval_on = match val_set.as_mut() {
            Some(val) => val,
            None => &mut test_set,
        };
        let (beside_rows, mut eval_now) = match eval_on {
            Evaluator::Rows(eval_loader) if linear && !checkpoints => {
                eval_loader.begin_epoch(0);
                let batch = eval_loader
                    .next_lazy()
                    .ok_or(Error::Internal("the evaluation set is empty"))?;
                (Some(BatchRows(batch)), None)
            }
            on => (None, Some(on)),
        };
        let mut pending: Option<(EpochRecord, PendingEvaluation<'_, BatchRows<'_>>)> = None;
        // With the evaluation in the background, the next epoch's order is
        // drawn there too (the same order as drawn when the epoch begins).
        let mut prepared: Option<PendingOrder> = None;
        let mut last_eval = None;
        for epoch in first_epoch..config.epochs {
            let lr = schedule.lr(epoch);
            events.epoch_started(epoch, lr);
            let this_order = prepared.take();
            let next_order = (beside_rows.is_some() && epoch + 1 < config.epochs)
                .then(|| loader.prepare_epoch(epoch + 1));
            let run_epoch = || {
                train_epoch(
                    epoch,
                    lr,
                    &mut learner,
                    &mut loader,
                    this_order,
                    &mut iterations,
                    &mut events,
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
            // The previous epoch's end first, whatever happened in this one.
            if let Some((record, evaluation)) = pending.take() {
                conclude(record, &evaluation.finish()?, &mut events, &mut epochs);
            }
            let Some((batches, loss_sum)) = trained? else {
                return Err(Error::Stopped { epoch });
            };
            let record = EpochRecord {
                epoch,
                lr,
                train_loss: loss_sum / batches.max(1) as f64,
                val_loss: f64::NAN,
                val_accuracy: f64::NAN,
            };
            if let (Some(rows), Learner::Linear { model, .. }) = (&beside_rows, &learner) {
                let evaluation = PendingEvaluation::new(model, rows.0.labels, rows)?;
                pending = Some((record, evaluation));
                events.hold();
                continue;
            }
            let Some(on) = eval_now.as_deref_mut() else {
                return Err(Error::Internal("no evaluation set"));
            };
            let eval = learner.evaluate(on)?;
            conclude(record, &eval, &mut events, &mut epochs);
            last_eval = Some(eval);
            if checkpoints {
                let model = learner.snapshot();
                let velocity = learner.velocity();
                events
                    .observer
                    .checkpoint(StateView {
                        epochs: &epochs,
                        iterations: &iterations,
                        model: &model,
                        velocity: velocity.as_deref(),
                    })
                    .map_err(|reason| Error::Checkpoint { epoch, reason })?;
            }
        }
        if let Some((record, evaluation)) = pending.take() {
            let eval = evaluation.finish()?;
            conclude(record, &eval, &mut events, &mut epochs);
            last_eval = Some(eval);
        }
        let train_seconds = t_train.elapsed().as_secs_f64();

        let t_test = Instant::now();
        // After the last epoch the model was evaluated on the test set
        // already when that is the validation set.
        let test_eval = match last_eval {
            Some(eval) if val_is_test => eval,
            _ => learner.evaluate(&mut test_set)?,
        };
        let test_seconds = t_test.elapsed().as_secs_f64();
        Ok(Fitted {
            model: learner.snapshot(),
            epochs,
            iterations,
            test: test_eval,
            train_samples: loader.len(),
            val_samples,
            held_out: !val_is_test,
            kernel: learner.kernel(),
            setup_seconds,
            train_seconds,
            test_seconds,
        })
    }
}

/// Shuffles (or takes the order `prepared` for this epoch) and trains one
/// epoch, telling each step: the number of batches and the sum of their
/// losses, or `None` if the observer asked to stop.
fn train_epoch(
    epoch: usize,
    lr: f64,
    learner: &mut Learner,
    loader: &mut Loader<'_>,
    prepared: Option<PendingOrder>,
    iterations: &mut Vec<(usize, f64)>,
    events: &mut Events<'_>,
) -> Result<Option<(usize, f64)>> {
    match prepared {
        Some(order) if order.epoch() == epoch => loader.begin_prepared_epoch(order),
        _ => loader.begin_epoch(epoch),
    }
    let mut batch = 0;
    let mut loss_sum = 0.0;
    loop {
        if events.observer.should_stop() {
            return Ok(None);
        }
        let iteration = iterations.len();
        let Some(result) = learner.step(loader, lr as f32) else {
            return Ok(Some((batch, loss_sum)));
        };
        let loss = result.map_err(|source| Error::Step {
            epoch,
            iteration,
            lr,
            source,
        })?;
        iterations.push((iteration, loss));
        loss_sum += loss;
        events.step(epoch, iteration, batch, loss, lr);
        batch += 1;
    }
}

/// Completes an epoch's `record` with its evaluation, tells it (before the
/// events held back for it) and keeps it.
fn conclude(
    mut record: EpochRecord,
    eval: &Evaluation,
    events: &mut Events<'_>,
    epochs: &mut Vec<EpochRecord>,
) {
    record.val_loss = eval.loss;
    record.val_accuracy = eval.accuracy;
    events.epoch_finished(&record);
    epochs.push(record);
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

/// An event held back until the end of the epoch before it is told.
enum Held {
    Started(usize, f64),
    Step(usize, usize, usize, f64, f64),
}

/// The observer, with events held back while an epoch's evaluation is
/// under way.
struct Events<'o> {
    observer: &'o mut dyn Observer,
    held: Option<Vec<Held>>,
}

impl Events<'_> {
    fn epoch_started(&mut self, epoch: usize, lr: f64) {
        match &mut self.held {
            Some(held) => held.push(Held::Started(epoch, lr)),
            None => self.observer.epoch_started(epoch, lr),
        }
    }

    fn step(&mut self, epoch: usize, iteration: usize, batch: usize, loss: f64, lr: f64) {
        match &mut self.held {
            Some(held) => held.push(Held::Step(epoch, iteration, batch, loss, lr)),
            None => self.observer.step(epoch, iteration, batch, loss, lr),
        }
        self.observer.progress();
    }

    /// Holds the events that follow until [`epoch_finished`](Self::epoch_finished).
    fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    fn epoch_finished(&mut self, record: &EpochRecord) {
        self.observer.epoch_finished(record);
        for event in self.held.take().unwrap_or_default() {
            match event {
                Held::Started(epoch, lr) => self.observer.epoch_started(epoch, lr),
                Held::Step(epoch, iteration, batch, loss, lr) => {
                    self.observer.step(epoch, iteration, batch, loss, lr);
                }
            }
        }
    }
}
