//! The `mnist` command: train the post's model, evaluate it, inspect data.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Prints a line on standard output. A closed pipe (`mnist ... | head`) is
/// not an error worth stopping a training run for, so write errors are
/// ignored rather than turned into a panic as `println!` would.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// [`say!`] without the newline.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod checkpoint;
mod data;
mod data_home;
mod digitize;
mod errors;
mod eval;
mod export;
mod fetch;
mod inspect;
mod output;
mod paths;
mod plot;
mod predict;
mod progress;
mod report;
mod serve;
mod train;

/// Train, evaluate and inspect MNIST models. With no subcommand, trains with
/// the blog post's settings (the flags of `mnist train` apply).
#[derive(Debug, Parser)]
#[command(
    name = "mnist",
    version,
    about,
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: train::TrainArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train the post's model (the default command).
    #[command(allow_negative_numbers = true)]
    Train(train::TrainArgs),
    /// Evaluate a saved model on the test set.
    Eval(eval::EvalArgs),
    /// Print what an IDX file holds, and draw an image.
    Inspect(inspect::InspectArgs),
    /// Predict the digit in picture files or test-set images.
    Predict(predict::PredictArgs),
    /// Draw a report's training curves, or its test confusion matrix.
    Plot(plot::PlotArgs),
    /// Draw the test digits a model misclassifies.
    Errors(errors::ErrorsArgs),
    /// Write a model as ONNX, safetensors or a JSON model file.
    Export(export::ExportArgs),
    /// Serve a page to draw a digit on, and a JSON API that predicts.
    Serve(serve::ServeArgs),
    /// Download, verify and decompress a dataset into the data home.
    Fetch(fetch::FetchArgs),
    /// Print a shell's completion script for `mnist`.
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `mnist man > mnist.1; man -l mnist.1`.
    Man,
}

#[derive(Debug, clap::Args)]
struct CompletionsArgs {
    /// The shell, e.g. `mnist completions bash > ~/.local/share/bash-completion/completions/mnist`.
    #[arg(value_name = "SHELL")]
    shell: clap_complete::Shell,
}

/// `mnist --version`: the version, the commit it was built from when
/// known, and the SIMD paths this CPU can take.
fn long_version() -> String {
    let commit = option_env!("MNIST_GIT_COMMIT")
        .map_or_else(|| "commit unknown".to_owned(), |c| format!("commit {c}"));
    // Not `kernel_path()`: it panics on a bad MNIST_KERNEL, which the
    // command reports as an error once its arguments are parsed.
    let runs = mnist_model::select_kernel().unwrap_or("none: MNIST_KERNEL names no path here");
    format!(
        "{} ({commit})\nSIMD paths this CPU can take: {} (runs {runs})",
        env!("CARGO_PKG_VERSION"),
        mnist_model::kernel_paths().join(", "),
    )
}

/// The command line's definition, as parsing, `--help`, the completions
/// and the man page see it.
fn command() -> clap::Command {
    let version = format!(
        "{} ({})",
        env!("CARGO_PKG_VERSION"),
        option_env!("MNIST_GIT_COMMIT").unwrap_or("commit unknown")
    );
    <Cli as clap::CommandFactory>::command()
        .version(version)
        .long_version(long_version())
}

/// Writes the completion script for `shell` on standard output.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(), "mnist", &mut out);
    write_stdout(&out)
}

/// Writes the man page on standard output.
fn man() -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command()).render(&mut out)?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| anyhow::anyhow!("cannot write to standard output: {e}"))
}

/// A failure whose error lines were printed already (one per bad input).
#[derive(Debug)]
struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("errors were reported")
    }
}

impl std::error::Error for Reported {}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    // A kernel path forced by the environment that cannot run here is an
    // error before any work, not a panic in the middle of it.
    if let Err(err) = mnist_model::select_kernel() {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        None => {
            let mut args = cli.train;
            args.apply_preset(&matches);
            train::run(&args, &matches)
        }
        Some(Command::Train(mut args)) => {
            let sub = match matches.subcommand() {
                Some(("train", sub)) => sub,
                _ => &matches,
            };
            args.apply_preset(sub);
            train::run(&args, sub)
        }
        Some(Command::Eval(args)) => eval::run(&args),
        Some(Command::Inspect(args)) => inspect::run(&args),
        Some(Command::Predict(args)) => predict::run(&args),
        Some(Command::Plot(args)) => plot::run(&args),
        Some(Command::Errors(args)) => errors::run(&args),
        Some(Command::Export(args)) => export::run(&args),
        Some(Command::Serve(args)) => serve::run(&args),
        Some(Command::Fetch(args)) => fetch::run(&args),
        Some(Command::Completions(args)) => completions(args.shell),
        Some(Command::Man) => man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<Reported>() => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.is::<train::Interrupted>() {
                // The shell's convention for a process ended by SIGINT.
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
