//! Integration tests of `xtask`: the fetcher against local HTTP servers and
//! directories, `synth` on a tiny dataset, and the command line. Nothing
//! here touches the network.

mod cli;
mod fetch;
mod fixture;
mod server;
mod synth;
