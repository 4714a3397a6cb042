//! Project tasks behind `cargo xtask`: fetching the datasets, running the CI
//! checks, timing the trainer against its peers ([`bench`](mod@bench)),
//! and making larger synthetic training sets ([`synth`]).
//!
//! The fetcher itself is the `mnist-fetch` crate, shared with `mnist
//! fetch`; [`fetch`](mod@fetch) knows where the workspace keeps its data.
#![deny(missing_docs)]

pub mod bench;
pub mod ci;
pub mod fetch;
mod progress;
pub mod synth;

pub use progress::{FetchRenderer, Progress};
