//! `bench`: end-to-end timing of the trainer, optionally side by side with
//! the reference implementations (numpy and candle for the post's model,
//! PyTorch for the presets), run interleaved.
//!
//! Each run is a whole process: wall time is from spawn to reap, peak memory
//! is the child's `ru_maxrss` from `wait4`, and on Linux `/proc/<pid>/status`
//! is sampled while it runs for the peaks of `RssAnon` (heap and other
//! private memory) and `RssFile` (mapped file pages, the kernel's cache).
//!
//! One file per concern: `options` (flags and their checks), `process`
//! (running and measuring a child), `cargo` (building the binaries),
//! `parse` (what the runs print), `peers` (the numpy and candle peers),
//! `torch` (the PyTorch peers of the presets and their venv), `stats`
//! (samples and medians), `flops` (the work of a run), `machine` (CPU,
//! load, page mapping), `output` (the tables and the JSON), `post` (the
//! post's bench, run by run) and `preset` (a preset's bench).

mod cargo;
mod flops;
mod machine;
mod options;
mod output;
mod parse;
mod peers;
mod post;
mod preset;
mod process;
mod stats;
mod torch;

pub use cargo::executable_from_messages;
pub use flops::{
    eval_flops_per_sample, network, report_work, run_flops, train_flops_per_sample, Product, Work,
};
pub use machine::{cpu_model, model_name, HugePages};
pub use options::{
    default_gz_dir, venv_python, Options, Preset, UsageError, DEFAULT_EPOCHS, DEFAULT_RUNS,
    MAX_BASELINES, MAX_COUNT, MNIST_FILES,
};
pub use output::{preset_table, table};
pub use parse::{
    last_value, parse_candle, parse_numpy, parse_report, parse_torch, Printed, TorchLine,
};
pub use peers::Impl;
pub use preset::PresetInfo;
pub use process::status_kib;
pub use stats::{median, Medians, Paired, Results, Sample};

/// Builds the trainer, runs it (and the peers) `options.runs` times
/// interleaved, prints a table and writes the JSON if asked: the post's
/// model against numpy and candle, or a preset's network against PyTorch.
///
/// # Errors
///
/// Invalid options, the trainer failing to build or run, or the JSON file
/// not being writable. A peer that cannot run is skipped, not an error.
pub fn run(options: &Options) -> anyhow::Result<Results> {
    match options.preset {
        Preset::Post => post::run(options),
        _ => preset::run(options),
    }
}
