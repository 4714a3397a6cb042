//! `mnist fetch`: fetch a dataset into the data home, with the same fetcher
//! as `cargo xtask fetch-data` (the `mnist-fetch` crate).

use std::cell::RefCell;
use std::ffi::OsStr;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::builder::{PossibleValue, TypedValueParser};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mnist_fetch::{Dataset, Event, Mirror, Outcome};

use crate::data_home;

/// Arguments of `mnist fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Which dataset to fetch.
    #[arg(long, value_name = "NAME", default_value = "mnist", value_parser = DatasetName)]
    pub dataset: String,
    /// A mirror tried first: a folder holding the .gz files, or an
    /// http(s):// or file:// URL (repeatable, tried in the order given,
    /// before MNIST_MIRROR, or FASHION_MNIST_MIRROR, and the built-in
    /// mirrors).
    #[arg(long = "mirror", value_name = "DIR|URL")]
    pub mirrors: Vec<String>,
    /// Fetch again even if valid files are present.
    #[arg(long)]
    pub force: bool,
    /// Connect and read timeout of each HTTP request, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = mnist_fetch::DEFAULT_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// Takes any name (an unknown one gets one error line from [`run`]), and
/// offers the known ones to `--help` and the shell completions.
#[derive(Debug, Clone, Copy)]
struct DatasetName;

impl TypedValueParser for DatasetName {
    type Value = String;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        Ok(value.to_string_lossy().into_owned())
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            Dataset::ALL
                .into_iter()
                .map(|d| PossibleValue::new(d.name())),
        ))
    }
}

/// Runs `mnist fetch`.
pub fn run(args: &FetchArgs) -> Result<()> {
    let dataset: Dataset = args
        .dataset
        .parse()
        .with_context(|| format!("--dataset {}", args.dataset))?;
    let mirrors = args
        .mirrors
        .iter()
        .map(|m| Mirror::parse(m).with_context(|| format!("--mirror {m}")))
        .collect::<Result<Vec<_>>>()?;
    let home = data_home::home()?;
    let spec = dataset.spec();
    let mut options = mnist_fetch::Options::from_env(&spec, home.clone(), &mirrors)
        .with_context(|| spec.mirror_env.clone())?;
    options.force = args.force;
    options.timeout = Duration::from_secs(args.timeout);
    let report = mnist_fetch::fetch(&spec, &options, &Render::new())
        .with_context(|| format!("fetching {dataset} into the data home {}", home.display()))?;
    let present = report
        .files
        .iter()
        .filter(|(_, outcome)| *outcome == Outcome::Present)
        .count();
    eprintln!(
        "{dataset}: {} files in {} ({} fetched, {present} already present)",
        report.files.len(),
        report.dir.display(),
        report.files.len() - present
    );
    Ok(())
}

/// Shows a fetch on standard error: a line per event, and a bar for each
/// download when standard error is a terminal.
struct Render {
    bars: bool,
    bar: RefCell<Option<ProgressBar>>,
}

impl Render {
    fn new() -> Self {
        Self {
            bars: std::io::stderr().is_terminal(),
            bar: RefCell::new(None),
        }
    }
}

impl mnist_fetch::Progress for Render {
    fn event(&self, event: &Event<'_>) {
        eprintln!("{event}");
    }

    fn download_started(&self, file: &str, total: Option<u64>) {
        if !self.bars {
            return;
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let template = if total.is_some() {
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
        } else {
            "{msg} {spinner} {bytes} {bytes_per_sec}"
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
