//! Log lines on standard output, and a progress bar on a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Where the run's log goes.
pub struct Log {
    quiet: bool,
    bar: Option<ProgressBar>,
}

impl Log {
    /// A log; `quiet` keeps it silent.
    pub fn new(quiet: bool) -> Self {
        Self { quiet, bar: None }
    }

    /// Prints one line, above the progress bar if there is one.
    pub fn line(&mut self, s: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(|| say!("{s}")),
            None => say!("{s}"),
        }
    }

    /// Starts a progress bar of `len` steps, drawn only when standard error
    /// is a terminal that can move the cursor (not `TERM=dumb`) and the log
    /// is not quiet.
    pub fn start_bar(&mut self, len: u64) {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        if self.quiet || dumb || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} batches  {per_sec}  eta {eta}")
        {
            bar.set_style(style);
        }
        self.bar = Some(bar);
    }

    /// Advances the bar by one step.
    pub fn tick(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Removes the bar.
    pub fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
