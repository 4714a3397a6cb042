//! What can stop a training run.

/// The errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of its range.
    #[error("invalid {name}: {reason}")]
    Config {
        /// The setting, e.g. `"momentum"`.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The training and test images differ in size.
    #[error("training images have {train} pixels but test images {test}")]
    PixelMismatch {
        /// Pixels of a training image.
        train: usize,
        /// Pixels of a test image.
        test: usize,
    },
    /// The state resumed from does not fit the data or the settings.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// A step failed (e.g. training diverged).
    #[error("epoch {epoch}, iteration {iteration}, learning rate {lr:e}")]
    Step {
        /// The epoch under way.
        epoch: usize,
        /// The step's iteration, counted over the whole run.
        iteration: usize,
        /// The learning rate of the epoch.
        lr: f64,
        /// What went wrong.
        #[source]
        source: mnist_model::Error,
    },
    /// The [`Observer`](crate::Observer) asked to stop, during `epoch`;
    /// as many epochs are complete.
    #[error("stopped during epoch {epoch}")]
    Stopped {
        /// The epoch under way.
        epoch: usize,
    },
    /// The observer could not keep a checkpoint.
    #[error("checkpoint after epoch {epoch}: {reason}")]
    Checkpoint {
        /// The epoch just completed.
        epoch: usize,
        /// What went wrong, as the observer said.
        reason: String,
    },
    /// A condition the trainer itself guarantees did not hold.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// Data could not be read or batched.
    #[error(transparent)]
    Data(#[from] mnist_data::Error),
    /// A model could not be made or evaluated.
    #[error(transparent)]
    Model(#[from] mnist_model::Error),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
