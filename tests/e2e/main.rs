//! End-to-end tests of the `mnist` binary on the real MNIST data in
//! `data/mnist`. They are ignored by a plain `cargo test`; `cargo xtask ci`
//! fetches the data and runs them (`cargo test -- --ignored` after
//! `cargo xtask fetch-data` does too).
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

mod browser;
mod export;
mod library;
mod real_data;
