//! What a training run shows and keeps as it goes: the post's log, a
//! progress bar, checkpoints, and Ctrl-C.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use mnist_train::{EpochRecord, Observer, RunInfo, StateView};

use crate::checkpoint::Checkpoint;
use crate::predict::plural;
use crate::progress::Log;

use super::TrainArgs;

/// Where checkpoints go, and what they record beside the state.
pub(super) struct Keep<'a> {
    /// `--checkpoint-dir` as given.
    pub(super) dir: &'a Path,
    /// Where it really is.
    pub(super) real: &'a Path,
    /// The settings, with the real locations of the data and outputs.
    pub(super) recorded: &'a TrainArgs,
    /// The training set's fingerprint.
    pub(super) dataset: &'a str,
}

/// What a training run shows: the post's log, a progress bar on a
/// terminal, and checkpoints; Ctrl-C stops it between steps.
pub(super) struct Shown<'a> {
    pub(super) log: Log,
    pub(super) epochs: usize,
    pub(super) batch_size: usize,
    pub(super) log_every: usize,
    pub(super) interrupted: &'a AtomicBool,
    pub(super) checkpoint: Option<Keep<'a>>,
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
