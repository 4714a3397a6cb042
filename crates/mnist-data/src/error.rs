use std::path::PathBuf;

/// Everything that can go wrong building datasets and loaders.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading an IDX file failed.
    #[error(transparent)]
    Idx(#[from] mnist_idx::Error),
    /// A label is not a valid class.
    #[error("{path}: label {label} at index {index} is outside the {classes} classes")]
    LabelOutOfRange {
        /// The labels file.
        path: PathBuf,
        /// Position of the label.
        index: usize,
        /// The label found.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// The dataset holds no samples.
    #[error("{path}: the dataset is empty")]
    Empty {
        /// The images file.
        path: PathBuf,
    },
    /// A setting is out of range.
    #[error("invalid {name}: {reason}")]
    InvalidConfig {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
