//! `cargo xtask`: project tasks. See `cargo xtask --help` and the README.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use xtask::{ci, fetch, Dataset, FetchOptions, Mirror, Progress};

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
    /// Run cargo fmt --check, clippy -D warnings, fetch-data and the tests
    Ci(CiArgs),
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
    #[arg(long, value_name = "SECS", default_value_t = fetch::DEFAULT_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

#[derive(Debug, Args)]
struct CiArgs {
    /// Skip the fetch-data step
    #[arg(long)]
    no_fetch: bool,
    /// Extra arguments for `cargo test --workspace` (after `--`)
    #[arg(last = true, value_name = "TEST_ARGS")]
    test_args: Vec<String>,
}

/// Exit code of a usage error, as clap uses.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FetchData(args) => fetch_data(args),
        Command::Ci(args) => ci::run(&ci::Options {
            no_fetch: args.no_fetch,
            test_args: args.test_args,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.is::<xtask::MirrorParseError>() {
                ExitCode::from(USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn fetch_data(args: FetchArgs) -> anyhow::Result<()> {
    let spec = args.dataset.spec();
    let env = std::env::var(&spec.mirror_env).ok();
    let mirrors = fetch::mirrors(&spec, &args.mirrors, env.as_deref())?;
    let options = FetchOptions {
        out_dir: args.out.unwrap_or_else(fetch::default_out_dir),
        mirrors,
        force: args.force,
        timeout: Duration::from_secs(args.timeout),
        progress: Progress::Auto,
    };
    let report = xtask::fetch(&spec, &options)?;
    eprintln!(
        "{}: {} files in {}",
        args.dataset,
        report.files.len(),
        report.dir.display()
    );
    Ok(())
}
