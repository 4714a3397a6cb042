//! Status output: a progress bar on a terminal, one line per event otherwise.

use std::io::IsTerminal;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How `fetch-data` reports what it does (always on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// A progress bar if stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines only.
    Plain,
    /// Nothing.
    Quiet,
}

impl Progress {
    fn bar(self) -> bool {
        self == Self::Auto && std::io::stderr().is_terminal()
    }

    /// Prints one status line.
    pub(crate) fn line(self, message: &str) {
        if self != Self::Quiet {
            eprintln!("{message}");
        }
    }

    /// Starts reporting a download of `total` bytes, if known.
    pub(crate) fn download(self, label: &str, total: Option<u64>) -> Download {
        if !self.bar() {
            return Download { bar: None };
        }
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            ),
            None => (
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                "{msg} {spinner} {bytes} {bytes_per_sec}",
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        Download { bar: Some(bar) }
    }
}

/// A download in progress; the bar disappears when this is dropped.
#[derive(Debug)]
pub(crate) struct Download {
    bar: Option<ProgressBar>,
}

impl Download {
    pub(crate) fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `1.5 MiB`-style sizes for messages.
pub(crate) fn bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}
