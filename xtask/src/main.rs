//! `cargo xtask`: project tasks. See `cargo xtask --help` and the README.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mnist_fetch::{Dataset, Mirror};
use xtask::{bench, ci, cross, fetch, man, synth, Progress};

/// Project tasks for the MNIST workspace.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Download, verify and decompress a dataset into <OUT>/<DATASET>/
    FetchData(FetchArgs),
    /// Run cargo fmt --check, clippy and rustdoc -D warnings, fetch-data, the
    /// tests (those on the real data included), cargo package and the
    /// aarch64 cross-check
    Ci(CiArgs),
    /// Run the library tests for aarch64 under qemu, and check that an epoch of
    /// the post's training, softmax regression, an MLP and a CNN there saves
    /// the same model files as here
    CrossCheck(CrossArgs),
    /// Time whole training runs (median of N), optionally against the reference implementations
    Bench(BenchArgs),
    /// Write an MNIST-format training set of N distorted copies of the real one
    Synth(SynthArgs),
    /// Write the `mnist` man page [default: target/man/mnist.1]
    Man(ManArgs),
}

#[derive(Debug, Args)]
struct ManArgs {
    /// Where to write the man page [default: target/man/mnist.1 at the workspace root]
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct FetchArgs {
    /// Which dataset to fetch
    #[arg(long, value_enum, default_value_t = Dataset::Mnist)]
    dataset: Dataset,
    /// Parent folder of the dataset folder [default: data/ at the workspace root]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Extra mirror tried first (http(s):// base URL, file:// URL or directory);
    /// repeatable, tried in the order given, before MNIST_MIRROR
    /// (FASHION_MNIST_MIRROR for fashion-mnist) and the built-in mirrors
    #[arg(long = "mirror", value_name = "URL|DIR", value_parser = Mirror::parse)]
    mirrors: Vec<Mirror>,
    /// Fetch again even if valid files are present
    #[arg(long)]
    force: bool,
    /// Connect and read timeout of each HTTP request, in seconds
    #[arg(long, value_name = "SECS", default_value_t = mnist_fetch::DEFAULT_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

#[derive(Debug, Args)]
struct CiArgs {
    /// Skip the fetch-data step
    #[arg(long)]
    no_fetch: bool,
    /// Skip the cross-check on aarch64 even where its tools are installed
    #[arg(long)]
    no_cross: bool,
    /// Extra arguments for `cargo test --workspace` (after `--`)
    #[arg(last = true, value_name = "TEST_ARGS")]
    test_args: Vec<String>,
}

#[derive(Debug, Args)]
struct CrossArgs {
    /// Decompressed dataset [default: data/mnist at the workspace root]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Epochs of the post's training to compare
    #[arg(long, value_name = "E", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
    /// Seed of that training
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Runs of each implementation (medians are reported)
    #[arg(long, value_name = "N", default_value_t = bench::DEFAULT_RUNS)]
    runs: usize,
    /// Epochs per run, passed to the peers too [default: the preset's: post 10,
    /// softmax 60, mlp 20, cnn 15]
    #[arg(long, value_name = "E")]
    epochs: Option<usize>,
    /// Network to train: post (the post's model, against numpy and candle), or
    /// `mnist train --preset` softmax, mlp or cnn (against PyTorch)
    #[arg(long, value_name = "NAME", default_value = "post")]
    preset: String,
    /// Decompressed dataset for the trainer [default: data/mnist at the workspace root]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also run the reference implementations in DIR, interleaved with ours:
    /// numpy_fast.py and candle-linear/ for the post, torch_presets.py or
    /// torch_cnn.py for a preset
    #[arg(long, value_name = "DIR")]
    compare: Option<PathBuf>,
    /// Folder with the four .gz files the peers read [default: MNIST_MIRROR if a
    /// directory, else ../shared/mnist next to the workspace]
    #[arg(long, value_name = "DIR")]
    gz_dir: Option<PathBuf>,
    /// Also write the results here as JSON
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also run another build's `mnist` binary the same way, interleaved with
    /// this one (taking turns first), and print the run-by-run ratio; repeat
    /// for several builds (up to 8)
    #[arg(long, value_name = "BIN")]
    baseline: Vec<PathBuf>,
    /// Virtual environment with torch and numpy for the PyTorch peers (its
    /// bin/python) [default: target/torch-venv, made with pip if missing:
    /// about 5.5 GB of downloads]
    #[arg(long, value_name = "DIR")]
    torch_venv: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SynthArgs {
    /// Number of training images to write
    #[arg(long, value_name = "N")]
    samples: usize,
    /// Output folder (gets the four MNIST files; the test set is copied)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Seed of the distortions
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Folder with the decompressed MNIST files to distort [default: data/mnist at the
    /// workspace root]
    #[arg(long, value_name = "DIR")]
    source: Option<PathBuf>,
    /// Worker threads [default: one per core]; the output does not depend on it
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

/// Exit code of a usage error, as clap uses.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FetchData(args) => fetch_data(args),
        Command::Ci(args) => ci::run(&ci::Options {
            no_fetch: args.no_fetch,
            no_cross: args.no_cross,
            test_args: args.test_args,
        }),
        Command::CrossCheck(args) => run_cross(args),
        Command::Bench(args) => run_bench(args),
        Command::Synth(args) => run_synth(args),
        Command::Man(args) => man::run(&args.out.unwrap_or_else(man::default_path)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            let mirror_error = error.is::<mnist_fetch::MirrorParseError>()
                || matches!(
                    error.downcast_ref::<mnist_fetch::Error>(),
                    Some(mnist_fetch::Error::Mirror(_))
                );
            if mirror_error || error.is::<bench::UsageError>() {
                ExitCode::from(USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn fetch_data(args: FetchArgs) -> anyhow::Result<()> {
    let spec = args.dataset.spec();
    let out_dir = args.out.unwrap_or_else(fetch::default_out_dir);
    let mut options = mnist_fetch::Options::from_env(&spec, out_dir, &args.mirrors)?;
    options.force = args.force;
    options.timeout = Duration::from_secs(args.timeout);
    let report = mnist_fetch::fetch(&spec, &options, &Progress::Auto.fetch_renderer())?;
    eprintln!(
        "{}: {} files in {}",
        args.dataset,
        report.files.len(),
        report.dir.display()
    );
    Ok(())
}

fn run_cross(args: CrossArgs) -> anyhow::Result<()> {
    let defaults = cross::Options::default();
    let options = cross::Options {
        data_dir: args.data_dir.unwrap_or(defaults.data_dir),
        epochs: args.epochs,
        seed: args.seed,
        ..defaults
    };
    cross::run(&options, &cross::tools()?)
}

fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    let defaults = bench::Options::default();
    let preset = bench::Preset::parse(&args.preset)?;
    let options = bench::Options {
        runs: args.runs,
        epochs: args.epochs.unwrap_or(preset.epochs()),
        preset,
        data_dir: args.data_dir.unwrap_or(defaults.data_dir),
        compare: args.compare,
        gz_dir: args.gz_dir.or(defaults.gz_dir),
        json: args.json,
        baselines: args.baseline,
        torch_venv: args.torch_venv,
    };
    bench::run(&options)?;
    Ok(())
}

fn run_synth(args: SynthArgs) -> anyhow::Result<()> {
    let mut options = synth::Options::new(args.samples, args.out);
    options.seed = args.seed;
    if let Some(source) = args.source {
        options.source_dir = source;
    }
    if let Some(threads) = args.threads {
        options.threads = threads;
    }
    synth::synth(&options)?;
    Ok(())
}
