//! The implementations a bench runs, and the reference ones (numpy and
//! candle): finding them, building them and running one of their runs.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use super::cargo::cargo_build;
use super::options::MAX_BASELINES;
use super::parse::{parse_candle, parse_numpy};
use super::process::{last_line, measure};
use super::stats::{sample, Sample};
use crate::fetch::workspace_root;

/// Names of the baselines in tables and JSON, in `--baseline` order.
pub(super) const BASELINE_NAMES: [&str; MAX_BASELINES] = [
    "baseline",
    "baseline2",
    "baseline3",
    "baseline4",
    "baseline5",
    "baseline6",
    "baseline7",
    "baseline8",
];

/// The implementations `bench` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// This workspace's `mnist train`.
    Rust,
    /// `numpy_fast.py --dtype float32`.
    Numpy,
    /// `candle-linear`.
    Candle,
    /// A PyTorch peer of a preset (`torch_presets.py`, `torch_cnn.py`).
    Torch,
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
            Self::Torch => "torch",
            Self::Baseline(i) => BASELINE_NAMES.get(i).copied().unwrap_or("baseline?"),
        }
    }
}

/// A peer ready to run, or the reason it cannot.
pub(super) struct Peer {
    pub(super) which: Impl,
    pub(super) program: PathBuf,
    pub(super) args: Vec<OsString>,
}

pub(super) fn numpy_peer(dir: &Path, gz: &Path, epochs: usize) -> Result<Peer, String> {
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

pub(super) fn candle_peer(dir: &Path, gz: &Path, epochs: usize) -> Result<Peer, String> {
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
pub(super) fn gz_label_count(path: &Path) -> anyhow::Result<u64> {
    let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut header = [0u8; 8];
    flate2::read::GzDecoder::new(file)
        .read_exact(&mut header)
        .with_context(|| format!("{}: not a gzip'd IDX file", path.display()))?;
    let [_, _, _, _, a, b, c, d] = header;
    Ok(u64::from(u32::from_be_bytes([a, b, c, d])))
}

pub(super) fn run_peer(
    peer: &Peer,
    epochs: usize,
    run: usize,
    train_samples: u64,
) -> anyhow::Result<Sample> {
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
