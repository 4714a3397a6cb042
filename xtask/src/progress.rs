//! Status output: a progress bar on a terminal, one line per event otherwise.

use std::cell::RefCell;
use std::io::IsTerminal;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How `fetch-data` and `synth` report what they do (always on stderr).
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

    /// A renderer of a fetch's events in this style.
    pub fn fetch_renderer(self) -> FetchRenderer {
        FetchRenderer {
            style: self,
            bar: RefCell::new(None),
        }
    }
}

/// Renders a fetch's events: a line each, and a bar for each download when
/// the style allows one.
#[derive(Debug)]
pub struct FetchRenderer {
    style: Progress,
    bar: RefCell<Option<ProgressBar>>,
}

impl mnist_fetch::Progress for FetchRenderer {
    fn event(&self, event: &mnist_fetch::Event<'_>) {
        self.style.line(&event.to_string());
    }

    fn download_started(&self, file: &str, total: Option<u64>) {
        if !self.style.bar() {
            return;
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
        bar.set_message(file.to_owned());
        *self.bar.borrow_mut() = Some(bar);
    }

    fn downloaded(&self, bytes: u64) {
        if let Some(bar) = &*self.bar.borrow() {
            bar.inc(bytes);
        }
    }

    fn download_ended(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}

/// `1.5 MiB`-style sizes for messages.
pub(crate) fn bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}
