//! Project tasks behind `cargo xtask`: fetching the datasets, running the CI
//! checks, timing the trainer against its peers ([`bench`](mod@bench)),
//! making larger synthetic training sets ([`synth`]) and writing the man
//! page ([`man`]).
//!
//! The fetcher itself is the `mnist-fetch` crate, shared with `mnist
//! fetch`; [`fetch`](mod@fetch) knows where the workspace keeps its data.
#![deny(missing_docs)]

pub mod bench;
pub mod ci;
pub mod fetch;
pub mod man;
mod progress;
pub mod synth;

pub use progress::{FetchRenderer, Progress};
