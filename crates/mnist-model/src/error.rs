//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Messages are lowercase without a trailing period, and carry what a user
/// needs to act on them: the path, what was expected and what was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An array or slice has the wrong size along some dimension.
    #[error("{what}: expected {expected}, found {found}")]
    DimensionMismatch {
        /// Which size was checked, e.g. `"input features"`.
        what: &'static str,
        /// The size required.
        expected: usize,
        /// The size given.
        found: usize,
    },

    /// A size that must be positive is zero.
    #[error("{what} must be at least 1, found 0")]
    ZeroSize {
        /// Which size, e.g. `"classes"`.
        what: &'static str,
    },

    /// A numeric parameter is out of its valid range.
    #[error("invalid {name} {value}: {reason}")]
    InvalidParameter {
        /// The parameter's name, e.g. `"learning rate"`.
        name: &'static str,
        /// The rejected value, formatted.
        value: String,
        /// What the value must satisfy.
        reason: &'static str,
    },

    /// A model weight is NaN or infinite.
    #[error("weight at feature {feature}, class {class} is not finite ({value})")]
    NonFiniteWeight {
        /// Row of the weight matrix.
        feature: usize,
        /// Column of the weight matrix.
        class: usize,
        /// The offending value.
        value: f32,
    },

    /// A training step produced a non-finite loss or non-finite weights.
    ///
    /// The model's weights are left in the diverged state; discard the model
    /// or restore a saved copy.
    #[error("training diverged: batch loss {loss}, updated weights finite: {weights_finite}")]
    Diverged {
        /// The batch loss computed before the update.
        loss: f64,
        /// Whether every weight was still finite after the update.
        weights_finite: bool,
    },

    /// A class label (true or predicted) is not below the number of classes.
    #[error("{what} label {label} at index {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        /// `"true"` or `"predicted"`.
        what: &'static str,
        /// Position of the label in its slice.
        index: usize,
        /// The label.
        label: usize,
        /// The number of classes.
        classes: usize,
    },

    /// A learning-rate schedule was given invalid settings.
    #[error("invalid learning-rate schedule: {reason}")]
    InvalidSchedule {
        /// What is wrong.
        reason: String,
    },

    /// A warm-up specification such as `"0:0.01,1:0.1,2:1"` could not be parsed.
    #[error("invalid warm-up {input:?}: {reason}")]
    ParseWarmup {
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Reading or writing a model file failed at the operating-system level.
    #[error("model file {}: {error}", path.display())]
    Io {
        /// The model file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },

    /// A model file is not a valid model.
    #[error("model file {}: {reason}", path.display())]
    ModelFile {
        /// The model file.
        path: PathBuf,
        /// What is wrong with its contents.
        reason: String,
    },

    /// The kernel path asked for by `MNIST_KERNEL` is not one, or this CPU
    /// cannot run it.
    #[error("{reason}")]
    Kernel {
        /// What was asked for and why it cannot run, e.g. `MNIST_KERNEL=avx512:
        /// this CPU cannot run the avx512 path (it needs avx512f)`.
        reason: String,
    },

    /// An in-memory model JSON document is not a valid model.
    #[error("model json: {reason}")]
    ModelJson {
        /// What is wrong with it.
        reason: String,
    },

    /// In-memory safetensors bytes are not a valid model.
    #[error("safetensors model: {reason}")]
    ModelTensors {
        /// What is wrong with them.
        reason: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that the rows of `x` have a model's `features` columns.
///
/// # Errors
/// [`Error::DimensionMismatch`] otherwise.
pub(crate) fn check_features(x: &ndarray::ArrayView2<'_, f32>, features: usize) -> Result<()> {
    if x.ncols() != features {
        return Err(Error::DimensionMismatch {
            what: "input features (columns of x)",
            expected: features,
            found: x.ncols(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_without_period() {
        let errors = [
            Error::DimensionMismatch {
                what: "input features",
                expected: 785,
                found: 784,
            },
            Error::ModelFile {
                path: PathBuf::from("data/m.json"),
                reason: "expected format \"mnist-model\", found \"foo\"".into(),
            },
            Error::ZeroSize { what: "classes" },
        ];
        for e in errors {
            let s = e.to_string();
            assert!(s.chars().next().is_some_and(|c| c.is_lowercase()), "{s}");
            assert!(!s.ends_with('.'), "{s}");
        }
        let e = Error::ModelFile {
            path: PathBuf::from("data/m.json"),
            reason: "expected format \"mnist-model\", found \"foo\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "model file data/m.json: expected format \"mnist-model\", found \"foo\""
        );
    }
}
