//! `bench`: end-to-end timing of the trainer, optionally side by side with
//! the reference implementations (numpy and candle), run interleaved.
//!
//! Each run is a whole process: wall time is from spawn to reap, peak memory
//! is the child's `ru_maxrss` from `wait4`, and on Linux `/proc/<pid>/status`
//! is sampled while it runs for the peaks of `RssAnon` (heap and other
//! private memory) and `RssFile` (mapped file pages, the kernel's cache).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::fetch::workspace_root;
use crate::peak;

/// The four MNIST file names, decompressed.
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Default number of runs of each implementation.
pub const DEFAULT_RUNS: usize = 5;
/// Epochs of the post.
pub const DEFAULT_EPOCHS: usize = 10;
/// Most runs or epochs accepted.
pub const MAX_COUNT: usize = 1000;

/// What `cargo xtask bench` measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Runs of each implementation.
    pub runs: usize,
    /// Epochs per run.
    pub epochs: usize,
    /// Decompressed dataset for the Rust trainer.
    pub data_dir: PathBuf,
    /// Folder with `numpy_fast.py` and `candle-linear/`, to compare with.
    pub compare: Option<PathBuf>,
    /// Folder with the four `.gz` files the peers read.
    pub gz_dir: Option<PathBuf>,
    /// Write the results here as JSON.
    pub json: Option<PathBuf>,
    /// Other builds' `mnist` binaries (at most [`MAX_BASELINES`]), run like
    /// ours and interleaved with it, to compare builds in the same phases of
    /// the machine.
    pub baselines: Vec<PathBuf>,
}

/// Most `--baseline` builds one bench runs.
pub const MAX_BASELINES: usize = 8;

/// Names of the baselines in tables and JSON, in `--baseline` order.
const BASELINE_NAMES: [&str; MAX_BASELINES] = [
    "baseline",
    "baseline2",
    "baseline3",
    "baseline4",
    "baseline5",
    "baseline6",
    "baseline7",
    "baseline8",
];

impl Default for Options {
    fn default() -> Self {
        Self {
            runs: DEFAULT_RUNS,
            epochs: DEFAULT_EPOCHS,
            data_dir: workspace_root().join("data").join("mnist"),
            compare: None,
            gz_dir: default_gz_dir(
                std::env::var_os("MNIST_MIRROR").as_deref(),
                &workspace_root(),
            ),
            json: None,
            baselines: Vec::new(),
        }
    }
}

/// A flag with a value that cannot work; `cargo xtask` exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl Options {
    /// Checks every flag before anything is built or run.
    ///
    /// # Errors
    ///
    /// [`UsageError`] naming the flag: a count out of range, a dataset
    /// folder without its four files, a missing comparison folder or `.gz`
    /// folder, a JSON path in a folder that does not exist.
    pub fn check(&self) -> Result<(), UsageError> {
        let usage = |message: String| Err(UsageError(message));
        for (flag, value) in [("--runs", self.runs), ("--epochs", self.epochs)] {
            if !(1..=MAX_COUNT).contains(&value) {
                return usage(format!("{flag} {value}: expected 1 to {MAX_COUNT}"));
            }
        }
        if let Some(missing) = missing_file(&self.data_dir, &MNIST_FILES, "") {
            return usage(format!(
                "--data-dir {}: {missing} not found (run `cargo xtask fetch-data` or `cargo xtask synth`)",
                self.data_dir.display()
            ));
        }
        if let Some(dir) = &self.compare {
            if !dir.is_dir() {
                return usage(format!("--compare {}: not a directory", dir.display()));
            }
            let Some(gz) = &self.gz_dir else {
                return usage(
                    "--compare needs the .gz files: pass --gz-dir DIR or set MNIST_MIRROR".into(),
                );
            };
            if let Some(missing) = missing_file(gz, &MNIST_FILES, ".gz") {
                return usage(format!("--gz-dir {}: {missing} not found", gz.display()));
            }
        }
        if self.baselines.len() > MAX_BASELINES {
            return usage(format!(
                "--baseline: {} builds given, at most {MAX_BASELINES}",
                self.baselines.len()
            ));
        }
        for path in &self.baselines {
            if !path.is_file() {
                return usage(format!(
                    "--baseline {}: not a file (expected another build's `mnist` binary)",
                    path.display()
                ));
            }
        }
        if let Some(path) = &self.json {
            if path.is_dir() {
                return usage(format!("--json {}: is a directory", path.display()));
            }
            let parent = parent_dir(path);
            if !parent.is_dir() {
                return usage(format!(
                    "--json {}: folder {} does not exist",
                    path.display(),
                    parent.display()
                ));
            }
        }
        Ok(())
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn missing_file(dir: &Path, names: &[&str], suffix: &str) -> Option<String> {
    names
        .iter()
        .map(|name| format!("{name}{suffix}"))
        .find(|name| !dir.join(name).is_file())
}

/// The `.gz` folder when `--gz-dir` is not given: `MNIST_MIRROR` if it is a
/// directory, else `../shared/mnist` next to the workspace if it exists.
pub fn default_gz_dir(mirror_env: Option<&OsStr>, root: &Path) -> Option<PathBuf> {
    if let Some(dir) = mirror_env.map(PathBuf::from) {
        if dir.is_dir() {
            return Some(dir);
        }
    }
    let shared = root.join("..").join("shared").join("mnist");
    shared.is_dir().then_some(shared)
}

/// The implementations `bench` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// This workspace's `mnist train`.
    Rust,
    /// `numpy_fast.py --dtype float32`.
    Numpy,
    /// `candle-linear`.
    Candle,
    /// Another build's `mnist train` (the `--baseline` of this index).
    Baseline(usize),
}

impl Impl {
    /// Short name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Numpy => "numpy",
            Self::Candle => "candle",
            Self::Baseline(i) => BASELINE_NAMES.get(i).copied().unwrap_or("baseline?"),
        }
    }
}

/// What a run printed about itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Printed {
    /// Seconds reading the data.
    pub load_s: f64,
    /// Seconds training (with the per-epoch evaluation, for all three).
    pub train_s: f64,
    /// Final test accuracy, if printed.
    pub accuracy: Option<f64>,
}

/// The number after the last whitespace-separated occurrence of `key` (one
/// or more words) in `text`, e.g. `last_value("a 1 b 2 a 3", "a") == Some(3.0)`.
pub fn last_value(text: &str, key: &str) -> Option<f64> {
    let key: Vec<&str> = key.split_whitespace().collect();
    let tokens: Vec<&str> = text.split_whitespace().collect();
    tokens
        .windows(key.len() + 1)
        .filter(|w| w.get(..key.len()) == Some(&key[..]))
        .filter_map(|w| w.last().and_then(|v| v.parse::<f64>().ok()))
        .rfind(|v| v.is_finite())
}

fn required(text: &str, key: &str, who: &str) -> anyhow::Result<f64> {
    last_value(text, key).with_context(|| format!("{who} printed no `{key} <seconds>`"))
}

/// Parses the output of `numpy_fast.py`: `train_s`, `data_load_s` and
/// `final_val_acc`.
///
/// # Errors
///
/// A timing line is missing.
pub fn parse_numpy(stdout: &str) -> anyhow::Result<Printed> {
    Ok(Printed {
        load_s: required(stdout, "data_load_s", "numpy_fast.py")?,
        train_s: required(stdout, "train_s", "numpy_fast.py")?,
        accuracy: last_value(stdout, "final_val_acc"),
    })
}

/// Parses the output of `candle-linear`: `load_s`, `train_s` and the last
/// `val acc`.
///
/// # Errors
///
/// A timing line is missing.
pub fn parse_candle(stdout: &str) -> anyhow::Result<Printed> {
    Ok(Printed {
        load_s: required(stdout, "load_s", "candle-linear")?,
        train_s: required(stdout, "train_s", "candle-linear")?,
        accuracy: last_value(stdout, "val acc"),
    })
}

/// Parses a `mnist train --report` file: timings, test accuracy and the
/// number of training samples.
///
/// # Errors
///
/// Not JSON, or a field is missing.
pub fn parse_report(text: &str) -> anyhow::Result<(Printed, u64)> {
    let report: Value = serde_json::from_str(text).context("report is not JSON")?;
    let number = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(Value::as_f64)
            .with_context(|| format!("report has no number at {pointer}"))
    };
    let samples = report
        .pointer("/train_samples")
        .and_then(Value::as_u64)
        .context("report has no number at /train_samples")?;
    Ok((
        Printed {
            load_s: number("/timing/load_seconds")?,
            train_s: number("/timing/train_seconds")?,
            accuracy: report.pointer("/test/accuracy").and_then(Value::as_f64),
        },
        samples,
    ))
}

/// The `executable` of the artifact of binary `name` in the output of
/// `cargo build --message-format=json`.
pub fn executable_from_messages(stdout: &str, name: &str) -> Option<PathBuf> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m.get("reason").and_then(Value::as_str) == Some("compiler-artifact"))
        .filter(|m| m.pointer("/target/name").and_then(Value::as_str) == Some(name))
        .filter_map(|m| {
            m.get("executable")
                .and_then(Value::as_str)
                .map(PathBuf::from)
        })
        .next_back()
}

/// A value in kB of a `/proc/<pid>/status` line such as `RssAnon:  1234 kB`.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// One finished process.
#[derive(Debug, Clone, Default)]
struct Measured {
    wall_s: f64,
    failure: Option<String>,
    stdout: String,
    stderr: String,
    max_rss_kib: Option<u64>,
    peak_anon_kib: Option<u64>,
    peak_file_kib: Option<u64>,
}

/// Peaks of `RssAnon` and `RssFile` seen while sampling.
#[derive(Debug, Default, Clone, Copy)]
struct Peaks {
    anon: Option<u64>,
    file: Option<u64>,
}

fn sample_status(pid: u32, stop: &AtomicBool) -> Peaks {
    let path = format!("/proc/{pid}/status");
    let mut peaks = Peaks::default();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(text) = fs::read_to_string(&path) {
            // A zombie's status has no Rss lines; max keeps what was seen.
            if let Some(v) = status_kib(&text, "RssAnon") {
                peaks.anon = Some(peaks.anon.map_or(v, |p| p.max(v)));
            }
            if let Some(v) = status_kib(&text, "RssFile") {
                peaks.file = Some(peaks.file.map_or(v, |p| p.max(v)));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    peaks
}

/// Waits for `child` and returns how it ended and its peak RSS in KiB.
#[cfg(unix)]
fn wait_child(child: &mut Child) -> anyhow::Result<(Option<String>, Option<u64>)> {
    let pid = libc::pid_t::try_from(child.id()).context("child pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a C struct of integers; all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped (std's `Child` only
        // reaps in `wait`/`try_wait`, which are not called); both pointers
        // are to live locals of the right types.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("cannot wait for the child process");
        }
    }
    let failure = if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        (code != 0).then(|| format!("exit status {code}"))
    } else if libc::WIFSIGNALED(status) {
        Some(format!("killed by signal {}", libc::WTERMSIG(status)))
    } else {
        Some(format!("ended with wait status {status}"))
    };
    // Linux reports KiB, macOS bytes.
    let scale = if cfg!(target_os = "macos") { 1024 } else { 1 };
    let max_rss = u64::try_from(usage.ru_maxrss).ok().map(|v| v / scale);
    Ok((failure, max_rss))
}

#[cfg(not(unix))]
fn wait_child(child: &mut Child) -> anyhow::Result<(Option<String>, Option<u64>)> {
    let status = child.wait().context("cannot wait for the child process")?;
    Ok(((!status.success()).then(|| status.to_string()), None))
}

fn read_all(pipe: Option<impl Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        // A read error leaves what was read; the exit status tells the rest.
        let _ = pipe.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn measure(command: &mut Command) -> anyhow::Result<Measured> {
    let shown = format!("{command:?}");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    let pid = child.id();
    let out_pipe = child.stdout.take();
    let err_pipe = child.stderr.take();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let out = scope.spawn(move || read_all(out_pipe));
        let err = scope.spawn(move || read_all(err_pipe));
        let sampler = scope.spawn(|| sample_status(pid, &stop));
        let waited = wait_child(&mut child);
        let wall_s = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let peaks = sampler.join().unwrap_or_default();
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        let (failure, max_rss_kib) = waited?;
        Ok(Measured {
            wall_s,
            failure,
            stdout,
            stderr,
            max_rss_kib,
            peak_anon_kib: peaks.anon,
            peak_file_kib: peaks.file,
        })
    })
}

/// One run of one implementation.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Which implementation.
    pub implementation: Impl,
    /// 1-based run number (also the seed).
    pub run: usize,
    /// Process start to exit, seconds.
    pub wall_s: f64,
    /// What the process printed about itself.
    pub printed: Printed,
    /// Training samples per epoch.
    pub train_samples: u64,
    /// Epochs trained.
    pub epochs: usize,
    /// Peak resident set (`ru_maxrss`), KiB.
    pub max_rss_kib: Option<u64>,
    /// Peak `RssAnon` seen, KiB.
    pub peak_anon_kib: Option<u64>,
    /// Peak `RssFile` seen, KiB.
    pub peak_file_kib: Option<u64>,
}

impl Sample {
    /// Training samples processed per second of training.
    pub fn samples_per_s(&self) -> f64 {
        (self.epochs as f64) * (self.train_samples as f64) / self.printed.train_s
    }

    fn to_json(&self) -> Value {
        json!({
            "impl": self.implementation.name(),
            "run": self.run,
            "wall_s": self.wall_s,
            "load_s": self.printed.load_s,
            "train_s": self.printed.train_s,
            "accuracy": self.printed.accuracy,
            "train_samples": self.train_samples,
            "epochs": self.epochs,
            "samples_per_s": self.samples_per_s(),
            "max_rss_kib": self.max_rss_kib,
            "peak_rss_anon_kib": self.peak_anon_kib,
            "peak_rss_file_kib": self.peak_file_kib,
        })
    }
}

/// The median of `values` (mean of the middle two for an even count), or
/// `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => sorted.get(n / 2).copied(),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Medians of one implementation's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Medians {
    /// Runs measured.
    pub runs: usize,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Load time, seconds.
    pub load_s: f64,
    /// Training time, seconds.
    pub train_s: f64,
    /// Training samples per second.
    pub samples_per_s: f64,
    /// Test accuracy.
    pub accuracy: Option<f64>,
    /// Peak RSS, KiB.
    pub max_rss_kib: Option<f64>,
    /// Peak `RssAnon`, KiB.
    pub peak_anon_kib: Option<f64>,
    /// Peak `RssFile`, KiB.
    pub peak_file_kib: Option<f64>,
}

impl Medians {
    /// Medians of `samples` (all of one implementation), `None` if empty.
    pub fn of(samples: &[&Sample]) -> Option<Self> {
        let of = |f: &dyn Fn(&Sample) -> Option<f64>| {
            median(&samples.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
        };
        let kib = |v: Option<u64>| v.map(|v| v as f64);
        Some(Self {
            runs: samples.len(),
            wall_s: of(&|s| Some(s.wall_s))?,
            load_s: of(&|s| Some(s.printed.load_s))?,
            train_s: of(&|s| Some(s.printed.train_s))?,
            samples_per_s: of(&|s| Some(s.samples_per_s()))?,
            accuracy: of(&|s| s.printed.accuracy),
            max_rss_kib: of(&|s| kib(s.max_rss_kib)),
            peak_anon_kib: of(&|s| kib(s.peak_anon_kib)),
            peak_file_kib: of(&|s| kib(s.peak_file_kib)),
        })
    }

    fn to_json(self) -> Value {
        json!({
            "runs": self.runs,
            "wall_s": self.wall_s,
            "load_s": self.load_s,
            "train_s": self.train_s,
            "samples_per_s": self.samples_per_s,
            "accuracy": self.accuracy,
            "max_rss_kib": self.max_rss_kib,
            "peak_rss_anon_kib": self.peak_anon_kib,
            "peak_rss_file_kib": self.peak_file_kib,
        })
    }
}

/// Everything one `bench` produced.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Every run, in the order run.
    pub samples: Vec<Sample>,
    /// Implementations that could not run, with the reason.
    pub skipped: Vec<(Impl, String)>,
    /// `/proc/loadavg` before and after, where there is one.
    pub load: (Option<String>, Option<String>),
    /// How the training images map, where this can be told (Linux).
    pub pages: Option<HugePages>,
    /// The kernel path this build's runs took and their FLOPs, where the
    /// report tells them (the post's linear model).
    pub work: Option<Work>,
    /// The FMA peak of all cores with that path's instructions, FLOP/s,
    /// measured after the runs.
    pub peak_flops: Option<f64>,
}

/// What one of this build's runs computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// The kernel path the report names.
    pub kernel: String,
    /// FLOPs of the two products over the run (see [`peak::linear_flops`]).
    pub flops: f64,
}

/// The kernel path and the FLOPs of a run, from its report; `None` when
/// the report lacks them or trained another model.
pub fn report_work(text: &str, epochs: usize) -> Option<Work> {
    let report: Value = serde_json::from_str(text).ok()?;
    let field = |key: &str| report.get(key);
    let flops = peak::linear_flops(
        field("model")?.as_str()?,
        field("train_samples")?.as_u64()?,
        field("val_samples")?.as_u64()?,
        epochs,
    )?;
    Some(Work {
        kernel: field("kernel")?.as_str()?.to_string(),
        flops,
    })
}

/// `line` without its first `n` whitespace-separated fields and the
/// whitespace around them; `None` if nothing is left.
fn after_fields(line: &str, n: usize) -> Option<&str> {
    let mut rest = line.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace)?;
        rest = rest.get(end..)?.trim_start();
    }
    Some(rest.trim_end()).filter(|r| !r.is_empty())
}

/// How much of a file a memory map of it gets in 2 MiB pages.
///
/// That depends on the page cache's folios, that is on how the file was
/// written (see `cargo xtask fetch-data`), and it changes the trainer's
/// time by 7% to 14% here: so each bench says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HugePages {
    /// KiB of the map in 2 MiB pages (`FilePmdMapped`).
    pub huge_kib: u64,
    /// KiB of the map (`Size`).
    pub size_kib: u64,
}

impl HugePages {
    /// Maps `path` as the trainer does (through `mnist-idx`, which asks for
    /// huge pages), touches every page, and reads what the kernel made of
    /// it. `None` where `/proc/self/smaps` is missing or the file does not
    /// open.
    pub fn of(path: &Path) -> Option<Self> {
        let file = mnist_idx::IdxFile::open(path).ok()?;
        if !file.is_mapped() {
            return None;
        }
        let data = file.data();
        let touched = data
            .iter()
            .step_by(4096)
            .fold(0u8, |acc, &b| acc.wrapping_add(b));
        std::hint::black_box(touched);
        let smaps = fs::read_to_string("/proc/self/smaps").ok()?;
        let path = fs::canonicalize(path).ok()?;
        Self::parse(&smaps, &path)
    }

    /// The figures of the mappings of `path` in the text of a
    /// `/proc/PID/smaps`, summed over its mappings.
    pub fn parse(smaps: &str, path: &Path) -> Option<Self> {
        let mut found = None::<Self>;
        let mut inside = false;
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or_default();
            if !first.ends_with(':') {
                // A mapping's header: `start-end perms offset dev inode
                // path`, the path possibly with spaces.
                inside = after_fields(line, 5).is_some_and(|name| Path::new(name) == path);
                if inside && found.is_none() {
                    found = Some(Self {
                        huge_kib: 0,
                        size_kib: 0,
                    });
                }
                continue;
            }
            let (Some(sum), true) = (found.as_mut(), inside) else {
                continue;
            };
            let kib = fields
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            match first {
                "Size:" => sum.size_kib += kib,
                "FilePmdMapped:" => sum.huge_kib += kib,
                _ => {}
            }
        }
        found
    }

    /// The line `bench` prints, with advice when under half is in huge
    /// pages.
    pub fn describe(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let mut line = format!(
            "training images: {:.0} of {:.0} MiB mapped with 2 MiB pages",
            mib(self.huge_kib),
            mib(self.size_kib)
        );
        if self.huge_kib * 2 < self.size_kib {
            line.push_str(
                " (the page cache holds the file in small folios, as files written in small pieces are; \
                 `cargo xtask fetch-data --force` rewrites it in 2 MiB pieces, which took 6% to 12% off the training time here)",
            );
        }
        line
    }
}

impl Results {
    /// Medians of one implementation, if it ran.
    pub fn medians(&self, which: Impl) -> Option<Medians> {
        let mine: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.implementation == which)
            .collect();
        Medians::of(&mine)
    }

    /// `which`'s training time over ours, run by run (the runs of one
    /// number are interleaved, so each pair saw the same phase of the
    /// machine): the median and quartiles of the ratios, if any pair ran.
    pub fn paired_train_ratio(&self, which: Impl) -> Option<Paired> {
        let of = |who: Impl, run: usize| {
            self.samples
                .iter()
                .find(|s| s.implementation == who && s.run == run)
                .map(|s| s.printed.train_s)
        };
        let mut ratios: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.implementation == Impl::Rust)
            .filter_map(|ours| Some(of(which, ours.run)? / ours.printed.train_s))
            .collect();
        if ratios.is_empty() {
            return None;
        }
        ratios.sort_by(f64::total_cmp);
        let quartile = |q: usize| ratios.get((ratios.len() - 1) * q / 4).copied();
        Some(Paired {
            pairs: ratios.len(),
            median: median(&ratios)?,
            low: quartile(1)?,
            high: quartile(3)?,
        })
    }
}

/// Ratios of training times taken run by run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// Number of pairs.
    pub pairs: usize,
    /// Median ratio.
    pub median: f64,
    /// Lower quartile (nearest rank below).
    pub low: f64,
    /// Upper quartile (nearest rank below).
    pub high: f64,
}

/// A peer ready to run, or the reason it cannot.
struct Peer {
    which: Impl,
    program: PathBuf,
    args: Vec<OsString>,
}

fn cargo() -> OsString {
    // Cargo sets `CARGO` for the programs it runs; fall back to the PATH.
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// Builds a binary with cargo and returns its path from cargo's messages.
fn cargo_build(args: &[&OsStr], target_dir: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    let mut command = Command::new(cargo());
    command
        .arg("build")
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace_root())
        .stderr(Stdio::inherit());
    if let Some(dir) = target_dir {
        command.env("CARGO_TARGET_DIR", dir);
    }
    let output = command
        .output()
        .with_context(|| format!("cannot run cargo to build {name}"))?;
    if !output.status.success() {
        bail!("building {name} failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    executable_from_messages(&stdout, name)
        .with_context(|| format!("cargo built no executable named {name}"))
}

fn numpy_peer(dir: &Path, gz: &Path, epochs: usize) -> Result<Peer, String> {
    let script = dir.join("numpy_fast.py");
    if !script.is_file() {
        return Err(format!("{} not found", script.display()));
    }
    let probe = Command::new("python3")
        .args(["-c", "import numpy"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match probe {
        Err(e) => return Err(format!("cannot run python3: {e}")),
        Ok(status) if !status.success() => {
            return Err("python3 cannot import numpy (pip install numpy)".into())
        }
        Ok(_) => {}
    }
    let mut args: Vec<OsString> = vec![script.into(), "--data".into(), gz.into()];
    for a in ["--dtype", "float32", "--epochs"] {
        args.push(a.into());
    }
    args.push(epochs.to_string().into());
    Ok(Peer {
        which: Impl::Numpy,
        program: "python3".into(),
        args,
    })
}

fn candle_peer(dir: &Path, gz: &Path, epochs: usize) -> Result<Peer, String> {
    let manifest = dir.join("candle-linear").join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!("{} not found", manifest.display()));
    }
    eprintln!("bench: building candle-linear");
    let target = workspace_root().join("target").join("anchors");
    let args = [
        OsStr::new("--release"),
        OsStr::new("--manifest-path"),
        manifest.as_os_str(),
    ];
    let program =
        cargo_build(&args, Some(&target), "candle-linear").map_err(|e| format!("{e:#}"))?;
    Ok(Peer {
        which: Impl::Candle,
        program,
        args: vec![gz.into(), epochs.to_string().into(), "1".into()],
    })
}

/// The item count in the header of a gzip'd IDX labels file.
fn gz_label_count(path: &Path) -> anyhow::Result<u64> {
    let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut header = [0u8; 8];
    flate2::read::GzDecoder::new(file)
        .read_exact(&mut header)
        .with_context(|| format!("{}: not a gzip'd IDX file", path.display()))?;
    let [_, _, _, _, a, b, c, d] = header;
    Ok(u64::from(u32::from_be_bytes([a, b, c, d])))
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// Builds the trainer, runs it (and the peers) `options.runs` times
/// interleaved, prints a table and writes the JSON if asked.
///
/// # Errors
///
/// Invalid options, the trainer failing to build or run, or the JSON file
/// not being writable. A peer that cannot run is skipped, not an error.
pub fn run(options: &Options) -> anyhow::Result<Results> {
    options.check()?;
    let mut results = Results {
        load: (loadavg(), None),
        ..Results::default()
    };
    eprintln!("bench: building the trainer (cargo build --release -p mnist-cli)");
    let release = [
        OsStr::new("--release"),
        OsStr::new("-p"),
        OsStr::new("mnist-cli"),
    ];
    let trainer = cargo_build(&release, None, "mnist")?;
    results.pages = HugePages::of(&options.data_dir.join(MNIST_FILES[0]));
    if let Some(pages) = &results.pages {
        eprintln!("bench: {}", pages.describe());
    }

    let mut peers = Vec::new();
    let mut peer_samples = 0;
    if let (Some(dir), Some(gz)) = (&options.compare, &options.gz_dir) {
        peer_samples = gz_label_count(&gz.join("train-labels-idx1-ubyte.gz"))?;
        for (which, made) in [
            (Impl::Numpy, numpy_peer(dir, gz, options.epochs)),
            (Impl::Candle, candle_peer(dir, gz, options.epochs)),
        ] {
            match made {
                Ok(peer) => peers.push(peer),
                Err(reason) => {
                    eprintln!("bench: skipping {}: {reason}", which.name());
                    results.skipped.push((which, reason));
                }
            }
        }
    }

    let report = std::env::temp_dir().join(format!("xtask-bench-{}.json", std::process::id()));
    for run in 1..=options.runs {
        // With baselines, the builds take turns going first: the order
        // rotates by one each run, so each build runs in each position
        // equally often.
        let mut ours = vec![(Impl::Rust, trainer.as_path())];
        for (i, baseline) in options.baselines.iter().enumerate() {
            ours.push((Impl::Baseline(i), baseline.as_path()));
        }
        let turn = (run - 1) % ours.len();
        ours.rotate_left(turn);
        for (which, program) in ours {
            let sample = run_trainer(program, which, options, run, &report);
            if which == Impl::Rust && results.work.is_none() {
                let text = fs::read_to_string(&report).unwrap_or_default();
                results.work = report_work(&text, options.epochs);
            }
            let _ = fs::remove_file(&report);
            let sample = sample?;
            print_run(&sample, options.runs);
            results.samples.push(sample);
        }

        let mut failed = Vec::new();
        for (index, peer) in peers.iter().enumerate() {
            match run_peer(peer, options.epochs, run, peer_samples) {
                Ok(sample) => {
                    print_run(&sample, options.runs);
                    results.samples.push(sample);
                }
                Err(e) => {
                    let reason = format!("run {run} failed: {e:#}");
                    eprintln!(
                        "bench: skipping {} from now on: {reason}",
                        peer.which.name()
                    );
                    results.skipped.push((peer.which, reason));
                    failed.push(index);
                }
            }
        }
        for index in failed.into_iter().rev() {
            peers.remove(index);
        }
    }
    results.load.1 = loadavg();
    if let Some(work) = &results.work {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        eprintln!(
            "bench: measuring the FMA peak of {cores} core(s) with {}",
            work.kernel
        );
        results.peak_flops = peak::flops(&work.kernel, cores);
    }
    print!("{}", table(&results, options));
    if let Some(path) = &options.json {
        write_json(path, &results, options)?;
        eprintln!("bench: results written to {}", path.display());
    }
    Ok(results)
}

fn run_trainer(
    trainer: &Path,
    which: Impl,
    options: &Options,
    run: usize,
    report: &Path,
) -> anyhow::Result<Sample> {
    let mut command = Command::new(trainer);
    command
        .arg("train")
        .arg("--quiet")
        .arg("--data-dir")
        .arg(&options.data_dir)
        .arg("--epochs")
        .arg(options.epochs.to_string())
        .arg("--seed")
        .arg(run.to_string())
        .arg("--report")
        .arg(report);
    let measured = measure(&mut command)?;
    if let Some(failure) = &measured.failure {
        bail!(
            "{} train failed ({failure}): {}",
            trainer.display(),
            last_line(&measured.stderr)
        );
    }
    let text = fs::read_to_string(report)
        .with_context(|| format!("cannot read the report {}", report.display()))?;
    let (printed, train_samples) = parse_report(&text)?;
    Ok(sample(
        which,
        run,
        options.epochs,
        train_samples,
        printed,
        &measured,
    ))
}

fn run_peer(peer: &Peer, epochs: usize, run: usize, train_samples: u64) -> anyhow::Result<Sample> {
    let mut command = Command::new(&peer.program);
    command.args(&peer.args);
    if peer.which == Impl::Numpy {
        command.arg("--seed").arg(run.to_string());
    }
    let measured = measure(&mut command)?;
    if let Some(failure) = &measured.failure {
        bail!("{failure}: {}", last_line(&measured.stderr));
    }
    let printed = match peer.which {
        Impl::Candle => parse_candle(&measured.stdout)?,
        _ => parse_numpy(&measured.stdout)?,
    };
    Ok(sample(
        peer.which,
        run,
        epochs,
        train_samples,
        printed,
        &measured,
    ))
}

fn sample(
    implementation: Impl,
    run: usize,
    epochs: usize,
    train_samples: u64,
    printed: Printed,
    measured: &Measured,
) -> Sample {
    Sample {
        implementation,
        run,
        wall_s: measured.wall_s,
        printed,
        train_samples,
        epochs,
        max_rss_kib: measured.max_rss_kib,
        peak_anon_kib: measured.peak_anon_kib,
        peak_file_kib: measured.peak_file_kib,
    }
}

fn loadavg() -> Option<String> {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn mib(kib: Option<f64>) -> String {
    kib.map_or_else(|| "-".into(), |k| format!("{:.0}", k / 1024.0))
}

fn print_run(sample: &Sample, runs: usize) {
    eprintln!(
        "bench: run {}/{runs} {:<6} wall {:.3} s, train {:.3} s, peak RSS {} MiB",
        sample.run,
        sample.implementation.name(),
        sample.wall_s,
        sample.printed.train_s,
        mib(sample.max_rss_kib.map(|v| v as f64)),
    );
}

/// The medians table and the ratios, as printed.
pub fn table(results: &Results, options: &Options) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} epoch(s), medians of {} run(s); load average before {}, after {}",
        options.epochs,
        options.runs,
        results.load.0.as_deref().unwrap_or("?"),
        results.load.1.as_deref().unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "{:<8} {:>4} {:>8} {:>8} {:>8} {:>11} {:>8} {:>9} {:>9} {:>8}",
        "impl",
        "runs",
        "wall_s",
        "load_s",
        "train_s",
        "samples/s",
        "rss_MiB",
        "anon_MiB",
        "file_MiB",
        "accuracy"
    );
    if let Some(pages) = &results.pages {
        let _ = writeln!(out, "{}", pages.describe());
    }
    for which in implementations(options) {
        if let Some(m) = results.medians(which) {
            let _ = writeln!(
                out,
                "{:<8} {:>4} {:>8.3} {:>8.3} {:>8.3} {:>11.0} {:>8} {:>9} {:>9} {:>8}",
                which.name(),
                m.runs,
                m.wall_s,
                m.load_s,
                m.train_s,
                m.samples_per_s,
                mib(m.max_rss_kib),
                mib(m.peak_anon_kib),
                mib(m.peak_file_kib),
                m.accuracy.map_or_else(|| "-".into(), |a| format!("{a:.4}")),
            );
        }
    }
    if let (Some(work), Some(m)) = (&results.work, results.medians(Impl::Rust)) {
        let reached = work.flops / m.train_s;
        let _ = write!(
            out,
            "rust: {:.1} GFLOP in the median train_s, {:.1} GFLOP/s ({})",
            work.flops / 1e9,
            reached / 1e9,
            work.kernel
        );
        let _ = match results.peak_flops {
            Some(peak) => writeln!(
                out,
                ": {:.1}% of this machine's FMA peak with those instructions ({:.1} GFLOP/s on all cores, measured after the runs)",
                100.0 * reached / peak,
                peak / 1e9
            ),
            None => writeln!(out),
        };
    }
    for i in 0..options.baselines.len() {
        let which = Impl::Baseline(i);
        if let Some(paired) = results.paired_train_ratio(which) {
            let _ = writeln!(
                out,
                "{} / rust, run by run: train {:.3}x (median of {} pairs; middle half {:.3}x to {:.3}x)",
                which.name(), paired.median, paired.pairs, paired.low, paired.high
            );
        }
    }
    if let Some(ours) = results.medians(Impl::Rust) {
        for which in [Impl::Numpy, Impl::Candle] {
            if let Some(m) = results.medians(which) {
                let _ = writeln!(
                    out,
                    "{} / rust: wall {:.2}x, train {:.2}x",
                    which.name(),
                    m.wall_s / ours.wall_s,
                    m.train_s / ours.train_s
                );
            }
        }
    }
    for (which, reason) in &results.skipped {
        let _ = writeln!(out, "{}: skipped: {reason}", which.name());
    }
    out
}

/// Every implementation a bench with `options` may run, in table order.
fn implementations(options: &Options) -> Vec<Impl> {
    let mut all = vec![Impl::Rust];
    all.extend((0..options.baselines.len()).map(Impl::Baseline));
    all.extend([Impl::Numpy, Impl::Candle]);
    all
}

fn write_json(path: &Path, results: &Results, options: &Options) -> anyhow::Result<()> {
    let mut medians = serde_json::Map::new();
    let mut ratios = serde_json::Map::new();
    let ours = results.medians(Impl::Rust);
    let mut paired = serde_json::Map::new();
    for i in 0..options.baselines.len() {
        let which = Impl::Baseline(i);
        if let Some(p) = results.paired_train_ratio(which) {
            paired.insert(
                which.name().into(),
                json!({
                    "binary": options.baselines[i], "pairs": p.pairs, "train_median": p.median,
                    "train_low_quartile": p.low, "train_high_quartile": p.high,
                }),
            );
        }
    }
    for which in implementations(options) {
        if let Some(m) = results.medians(which) {
            medians.insert(which.name().into(), m.to_json());
            if let (Some(o), true) = (ours, which != Impl::Rust) {
                ratios.insert(
                    which.name().into(),
                    json!({ "wall": m.wall_s / o.wall_s, "train": m.train_s / o.train_s }),
                );
            }
        }
    }
    let value = json!({
        "runs": options.runs,
        "epochs": options.epochs,
        "data_dir": options.data_dir,
        "gz_dir": options.gz_dir,
        "loadavg_before": results.load.0,
        "loadavg_after": results.load.1,
        "train_images_pages": results.pages.map(|p| json!({
            "huge_kib": p.huge_kib, "size_kib": p.size_kib,
        })),
        "medians": medians,
        "ratios_peer_over_rust": ratios,
        "paired_baselines_over_rust": paired,
        "skipped": results.skipped.iter()
            .map(|(w, r)| json!({ "impl": w.name(), "reason": r }))
            .collect::<Vec<_>>(),
        "samples": results.samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&value).context("cannot encode the results")?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bench.json".into());
    let tmp = parent_dir(path).join(format!(".{name}.part-{}", std::process::id()));
    let written = fs::write(&tmp, text + "\n").and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMPY: &str = "\
data_load_s 0.412  train (60000, 785) test (10000, 785) dtype float32
epoch 0 lr 0.001 train_loss(mean) 3.21000 val_acc 0.6012 epoch_s 0.130
epoch 9 lr 0.0001 train_loss(mean) 1.70000 val_acc 0.7811 epoch_s 0.120
final_val_acc 0.7811 best_val_acc 0.7811 best_epoch 9
train_s 1.234 (sgd 1.100, eval 0.134) data_load_s 0.412
";

    const CANDLE: &str = "\
epoch 0 lr 0.00100 last batch loss 3.210 val acc 0.6012
epoch 9 lr 0.00010 last batch loss 1.700 val acc 0.7790
load_s 0.388 train_s 1.050
";

    #[test]
    fn parses_numpy_output() -> anyhow::Result<()> {
        let printed = parse_numpy(NUMPY)?;
        assert_eq!(printed.load_s, 0.412);
        assert_eq!(printed.train_s, 1.234);
        assert_eq!(printed.accuracy, Some(0.7811));
        Ok(())
    }

    #[test]
    fn parses_candle_output() -> anyhow::Result<()> {
        let printed = parse_candle(CANDLE)?;
        assert_eq!(printed.load_s, 0.388);
        assert_eq!(printed.train_s, 1.05);
        assert_eq!(printed.accuracy, Some(0.779));
        Ok(())
    }

    #[test]
    fn missing_timings_are_errors() {
        let err = parse_candle("epoch 0 val acc 0.5\n").map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("candle-linear printed no `load_s <seconds>`".into())
        );
        assert!(parse_numpy("train_s nan data_load_s 1\n").is_err());
        assert!(parse_numpy("").is_err());
    }

    #[test]
    fn last_value_takes_the_last_number_after_the_key() {
        assert_eq!(last_value("a 1 b 2 a 3", "a"), Some(3.0));
        assert_eq!(
            last_value("val acc 0.5\nval acc 0.75", "val acc"),
            Some(0.75)
        );
        assert_eq!(last_value("val acc x", "val acc"), None);
        assert_eq!(last_value("acc 0.5", "val acc"), None);
        assert_eq!(last_value("a", "a"), None);
    }

    #[test]
    fn parses_trainer_report() -> anyhow::Result<()> {
        let text = r#"{"train_samples": 60000, "test": {"accuracy": 0.7858},
            "timing": {"load_seconds": 0.016, "train_seconds": 1.05, "test_seconds": 0.007}}"#;
        let (printed, samples) = parse_report(text)?;
        assert_eq!(samples, 60000);
        assert_eq!(printed.train_s, 1.05);
        assert_eq!(printed.accuracy, Some(0.7858));
        assert!(parse_report("{}").is_err());
        assert!(parse_report("not json").is_err());
        Ok(())
    }

    #[test]
    fn finds_the_executable_in_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"mnist_data"},"executable":null}
{"reason":"compiler-artifact","target":{"name":"mnist"},"executable":"/w/target/release/mnist"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_from_messages(messages, "mnist"),
            Some(PathBuf::from("/w/target/release/mnist"))
        );
        assert_eq!(executable_from_messages(messages, "candle-linear"), None);
    }

    #[test]
    fn reads_proc_status_values() {
        let status =
            "Name:\tmnist\nVmHWM:\t  81234 kB\nRssAnon:\t   5120 kB\nRssFile:\t  48000 kB\n";
        assert_eq!(status_kib(status, "RssAnon"), Some(5120));
        assert_eq!(status_kib(status, "RssFile"), Some(48000));
        assert_eq!(status_kib(status, "RssShmem"), None);
    }

    #[test]
    fn huge_pages_are_read_from_the_mapping_of_the_file() {
        let smaps = "\
55d0c0000000-55d0c0001000 r--p 00000000 fd:01 42 /usr/bin/xtask
Size:                  4 kB
FilePmdMapped:         0 kB
7f0000000000-7f0002cdc000 r--s 00000000 fd:01 1234 /data/my mnist/train-images-idx3-ubyte
Size:              45940 kB
Rss:               45940 kB
FilePmdMapped:     45056 kB
VmFlags: rd sh mr mw me ms hg
7f0003000000-7f0003001000 rw-p 00000000 00:00 0
Size:                  4 kB
FilePmdMapped:      2048 kB
";
        let file = Path::new("/data/my mnist/train-images-idx3-ubyte");
        assert_eq!(
            HugePages::parse(smaps, file),
            Some(HugePages {
                huge_kib: 45056,
                size_kib: 45940
            })
        );
        assert_eq!(HugePages::parse(smaps, Path::new("/data/other")), None);
        assert_eq!(after_fields("a b  c ", 2), Some("c"));
        assert_eq!(after_fields("a b", 2), None);
    }

    #[test]
    fn small_pages_come_with_advice() {
        let huge = HugePages {
            huge_kib: 45056,
            size_kib: 45940,
        };
        assert_eq!(
            huge.describe(),
            "training images: 44 of 45 MiB mapped with 2 MiB pages"
        );
        let small = HugePages {
            huge_kib: 0,
            ..huge
        };
        assert!(small
            .describe()
            .contains("`cargo xtask fetch-data --force` rewrites it"));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn baseline_ratios_pair_runs_of_the_same_number() {
        let sample = |implementation, run, train_s| Sample {
            implementation,
            run,
            wall_s: train_s + 0.01,
            printed: Printed {
                load_s: 0.0,
                train_s,
                accuracy: None,
            },
            train_samples: 60_000,
            epochs: 10,
            max_rss_kib: None,
            peak_anon_kib: None,
            peak_file_kib: None,
        };
        let mut results = Results::default();
        assert_eq!(results.paired_train_ratio(Impl::Baseline(0)), None);
        // Run 3 of the baseline is missing: only runs 1, 2, 4 and 5 pair.
        for (run, ours, theirs) in [
            (1, 0.25, Some(0.375)),
            (2, 0.5, Some(0.5)),
            (3, 0.125, None),
            (4, 0.25, Some(0.125)),
            (5, 0.5, Some(1.0)),
        ] {
            results.samples.push(sample(Impl::Rust, run, ours));
            if let Some(t) = theirs {
                results.samples.push(sample(Impl::Baseline(0), run, t));
            }
            // A second baseline, twice as slow as ours in every run.
            results
                .samples
                .push(sample(Impl::Baseline(1), run, 2.0 * ours));
        }
        let p = results
            .paired_train_ratio(Impl::Baseline(0))
            .expect("pairs");
        // Ratios 1.5, 1.0, 0.5, 2.0: sorted 0.5, 1.0, 1.5, 2.0.
        assert_eq!(p.pairs, 4);
        assert!((p.median - 1.25).abs() < 1e-12, "{p:?}");
        assert_eq!((p.low, p.high), (0.5, 1.5));
        assert_eq!(results.paired_train_ratio(Impl::Numpy), None);
        let p2 = results
            .paired_train_ratio(Impl::Baseline(1))
            .expect("pairs");
        assert_eq!((p2.pairs, p2.median), (5, 2.0));
        let options = Options {
            runs: 5,
            baselines: vec!["old/mnist".into(), "older/mnist".into()],
            ..Options::default()
        };
        let printed = table(&results, &options);
        assert!(printed.contains("baseline / rust, run by run: train 1.250x (median of 4 pairs"));
        assert!(printed.contains("baseline2 / rust, run by run: train 2.000x (median of 5 pairs"));
    }

    #[test]
    fn options_are_validated() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        for name in MNIST_FILES {
            fs::write(dir.path().join(name), b"")?;
        }
        let good = Options {
            data_dir: dir.path().into(),
            gz_dir: None,
            ..Options::default()
        };
        assert_eq!(good.check(), Ok(()));
        let bad = |o: Options| o.check().map_err(|e| e.0);
        let err = bad(Options {
            runs: 0,
            ..good.clone()
        });
        assert_eq!(err, Err("--runs 0: expected 1 to 1000".into()));
        assert!(bad(Options {
            epochs: 1001,
            ..good.clone()
        })
        .is_err());
        let err = bad(Options {
            data_dir: dir.path().join("nope"),
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.contains("train-images-idx3-ubyte not found")));
        let err = bad(Options {
            compare: Some(dir.path().into()),
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.contains("--gz-dir")));
        let err = bad(Options {
            compare: Some(dir.path().into()),
            gz_dir: Some(dir.path().into()),
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.contains(".gz not found")));
        let err = bad(Options {
            json: Some(dir.path().join("missing").join("r.json")),
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.contains("does not exist")));
        let baseline = dir.path().join(MNIST_FILES[0]);
        let err = bad(Options {
            baselines: vec![baseline.clone(), dir.path().join("no-such-mnist")],
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.starts_with("--baseline") && e.contains("not a file")));
        let err = bad(Options {
            baselines: vec![baseline.clone(); MAX_BASELINES + 1],
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.contains("at most 8")));
        assert_eq!(
            Options {
                baselines: vec![baseline; MAX_BASELINES],
                ..good.clone()
            }
            .check(),
            Ok(())
        );
        Ok(())
    }

    #[test]
    fn gz_dir_prefers_an_existing_mirror_directory() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("main");
        fs::create_dir_all(&root)?;
        assert_eq!(default_gz_dir(None, &root), None);
        let shared = root.join("..").join("shared").join("mnist");
        fs::create_dir_all(&shared)?;
        assert_eq!(default_gz_dir(None, &root), Some(shared.clone()));
        let url = OsStr::new("https://example.org/mnist/");
        assert_eq!(default_gz_dir(Some(url), &root), Some(shared));
        assert_eq!(
            default_gz_dir(Some(dir.path().as_os_str()), &root),
            Some(dir.path().to_path_buf())
        );
        Ok(())
    }
}
