//! Project tasks behind `cargo xtask`: fetching the datasets, running the CI
//! checks, checking the results on 64-bit ARM under qemu ([`cross`]), timing the trainer against its peers ([`bench`](mod@bench)) and making larger
//! synthetic training sets ([`synth`]). The network and gzip code of the
//! workspace lives here only.
//!
//! The fetcher takes its expectations from a [`DatasetSpec`], so a test can
//! run it against a tiny dataset of its own:
//!
//! ```no_run
//! use std::time::Duration;
//! use xtask::{fetch, DatasetSpec, FetchOptions, Mirror, Progress};
//!
//! let spec = DatasetSpec::mnist();
//! let options = FetchOptions {
//!     out_dir: "data".into(),
//!     mirrors: vec![Mirror::parse("/srv/mnist")?],
//!     force: false,
//!     timeout: Duration::from_secs(30),
//!     progress: Progress::Plain,
//! };
//! let report = fetch(&spec, &options)?;
//! assert_eq!(report.files.len(), 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod bench;
pub mod checksum;
pub mod ci;
pub mod cross;
mod dataset;
pub mod fetch;
mod mirror;
pub mod peak;
mod pieces;
mod progress;
pub mod synth;

pub use dataset::{Dataset, DatasetSpec, FileSpec, Kind};
pub use fetch::{fetch, AllMirrorsFailed, Options as FetchOptions, Outcome, Report};
pub use mirror::{Mirror, ParseError as MirrorParseError, SHA256SUMS};
pub use progress::Progress;
