//! The `mnist` command: train the post's model, evaluate it, inspect data.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod inspect;

/// Train, evaluate and inspect MNIST models.
#[derive(Debug, Parser)]
#[command(name = "mnist", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print what an IDX file holds, and draw an image.
    Inspect(inspect::InspectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Inspect(args)) => inspect::run(&args),
        None => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
