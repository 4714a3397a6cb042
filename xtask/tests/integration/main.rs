//! Integration tests of `xtask`: `synth` on a tiny dataset and the command
//! line. Nothing here touches the network (the fetcher's own tests are in
//! `crates/mnist-fetch`).

mod cli;
mod fixture;
mod synth;
