//! The crate's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::mirror::ParseError;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The dataset folder could not be made.
    #[error("cannot create {}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The lock file could not be made or locked.
    #[error("cannot {action} {}", path.display())]
    Lock {
        /// `create the lock file` or `lock`.
        action: &'static str,
        /// The lock file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A file could not be written, renamed or read back on this side; no
    /// mirror can help.
    #[error("{file}: {message}")]
    Local {
        /// The decompressed file name.
        file: String,
        /// What went wrong, with the path.
        message: String,
    },
    /// No mirror delivered a file that passes the checks.
    #[error(transparent)]
    AllMirrorsFailed(#[from] AllMirrorsFailed),
    /// A mirror (from the environment, say) is not a valid one.
    #[error(transparent)]
    Mirror(#[from] ParseError),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every mirror failed for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllMirrorsFailed {
    /// The `.gz` that could not be fetched.
    pub file: String,
    /// Each mirror tried, with why it failed.
    pub attempts: Vec<(String, String)>,
    /// The environment variable that names a mirror for this dataset.
    pub env_var: String,
}

impl fmt::Display for AllMirrorsFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not fetch {} from any mirror:", self.file)?;
        for (mirror, reason) in &self.attempts {
            write!(f, "\n  {mirror}: {reason}")?;
        }
        write!(
            f,
            "\n  point at a copy of the files with `--mirror DIR|URL` or `{}=DIR|URL`",
            self.env_var
        )
    }
}

impl std::error::Error for AllMirrorsFailed {}
