//! End-to-end tests of the `mnist` binary on the real MNIST data in
//! `data/mnist` (fetched by `cargo xtask fetch-data`, which `cargo xtask ci`
//! runs first).
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

mod real_data;
