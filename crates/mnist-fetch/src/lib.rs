//! Download, verify and decompress MNIST-layout datasets (MNIST and
//! Fashion-MNIST): the fetcher behind `mnist fetch` and `cargo xtask
//! fetch-data`.
//!
//! - Mirrors are tried in order (HTTP(S) URLs or local folders); one that
//!   cannot be reached is not asked again during the run.
//! - Every `.gz` is checked against the official size and SHA-256, or
//!   against the mirror's own `SHA256SUMS`; each decompressed file is opened
//!   with `mnist-idx` and checked for its shape.
//! - Nothing lands under a final name until it is verified; two fetches into
//!   one folder take turns through a lock; temporary files left by a killed
//!   run are removed by the next.
//! - The decompressed files are written in whole 2 MiB pieces, so that Linux
//!   can map them with huge pages.
//!
//! The crate prints nothing: progress goes to a [`Progress`] of the caller's.
//!
//! ```no_run
//! use std::time::Duration;
//! use mnist_fetch::{fetch, DatasetSpec, Mirror, Options, Silent};
//!
//! let spec = DatasetSpec::mnist();
//! let options = Options {
//!     out_dir: "data".into(),
//!     mirrors: vec![Mirror::parse("/srv/mnist")?],
//!     force: false,
//!     timeout: Duration::from_secs(30),
//! };
//! let report = fetch(&spec, &options, &Silent)?;
//! assert_eq!(report.files.len(), 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod checksum;
mod dataset;
mod error;
mod fetch;
mod mirror;
mod pieces;
mod progress;

pub use crate::{
    dataset::{Dataset, DatasetSpec, FileSpec, Kind, UnknownDataset, DEBIAN_FASHION_MNIST},
    error::{AllMirrorsFailed, Error, Result},
    fetch::{fetch, mirrors, Options, Outcome, Report, DEFAULT_TIMEOUT_SECS},
    mirror::{Mirror, ParseError as MirrorParseError, SHA256SUMS},
    pieces::{PieceWriter, PIECE},
    progress::{human_bytes, Event, Progress, Silent},
};
