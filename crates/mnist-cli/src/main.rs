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
mod digitize;
mod errors;
mod eval;
mod inspect;
mod output;
mod plot;
mod predict;
mod progress;
mod report;
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
}

fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
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
            train::run(&args)
        }
        Some(Command::Train(mut args)) => {
            if let Some(("train", sub)) = matches.subcommand() {
                args.apply_preset(sub);
            }
            train::run(&args)
        }
        Some(Command::Eval(args)) => eval::run(&args),
        Some(Command::Inspect(args)) => inspect::run(&args),
        Some(Command::Predict(args)) => predict::run(&args),
        Some(Command::Plot(args)) => plot::run(&args),
        Some(Command::Errors(args)) => errors::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
