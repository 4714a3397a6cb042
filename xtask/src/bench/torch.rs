//! The PyTorch peers of the presets: finding (or making) a Python with
//! torch, and running `torch_presets.py` or `torch_cnn.py` with the
//! settings of `mnist train --preset`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::bail;

use super::options::{venv_python, Options, Preset};
use super::parse::{parse_torch, TorchLine};
use super::peers::Impl;
use super::process::{last_line, measure};
use super::stats::{sample, Sample};
use crate::fetch::workspace_root;

/// A PyTorch peer ready to run.
#[derive(Debug, Clone)]
pub(super) struct TorchPeer {
    python: PathBuf,
    args: Vec<OsString>,
    threads: usize,
}

/// The virtual environment used without `--torch-venv`.
pub(super) fn default_venv() -> PathBuf {
    workspace_root().join("target").join("torch-venv")
}

/// Whether `python` imports torch and numpy.
fn has_torch(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import torch, numpy"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a setup command with its output on our stderr; the reason if it
/// fails.
fn setup_step(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// The Python to run the peer with: `--torch-venv`'s, else that of
/// `target/torch-venv`, made with `python3 -m venv` and `pip install torch
/// numpy` when it lacks torch. The reason to skip the peer if none works.
fn python(options: &Options) -> Result<PathBuf, String> {
    if let Some(venv) = &options.torch_venv {
        let python = venv_python(venv);
        return if has_torch(&python) {
            Ok(python)
        } else {
            Err(format!(
                "{} cannot import torch and numpy (pip install torch numpy there)",
                python.display()
            ))
        };
    }
    let venv = default_venv();
    let python = venv_python(&venv);
    if has_torch(&python) {
        return Ok(python);
    }
    eprintln!(
        "bench: no --torch-venv: making {} and installing torch and numpy with pip; \
         this downloads about 5.5 GB (the default Linux wheel pulls its CUDA libraries)",
        venv.display()
    );
    if !python.is_file() {
        setup_step(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        )?;
    }
    let hint = "; pass --torch-venv DIR with torch installed";
    setup_step(
        Command::new(&python).args(["-m", "pip", "install", "torch", "numpy"]),
        "pip install torch numpy",
    )
    .map_err(|e| format!("{e} (no network?){hint}"))?;
    if has_torch(&python) {
        Ok(python)
    } else {
        Err(format!(
            "{} still cannot import torch{hint}",
            python.display()
        ))
    }
}

/// The peer's arguments (all but `--seed`): the settings of `mnist train
/// --preset` (crates/mnist-train/src/config.rs) that the scripts take as
/// flags; `torch_presets.py` has the others built in.
pub(super) fn peer_args(
    preset: Preset,
    script: &Path,
    gz: &Path,
    epochs: usize,
    threads: usize,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![script.into(), "--data".into(), gz.into()];
    let mut push = |flag: &str, value: String| {
        args.push(flag.into());
        args.push(value.into());
    };
    match preset {
        Preset::Cnn => {
            push("--epochs", epochs.to_string());
            push("--batch", "64".into());
            push("--lr-max", "0.05".into());
            push("--lr-min", "5e-5".into());
            push("--momentum", "0.9".into());
            push("--weight-decay", "5e-4".into());
            push("--threads", threads.to_string());
        }
        _ => {
            push("--preset", preset.name().into());
            push("--epochs", epochs.to_string());
        }
    }
    args
}

/// The PyTorch peer of `options.preset`, or the reason to skip it.
pub(super) fn peer(options: &Options, threads: usize) -> Result<TorchPeer, String> {
    let (Some(dir), Some(gz), Some(script)) = (
        &options.compare,
        &options.gz_dir,
        options.preset.torch_script(),
    ) else {
        return Err("no --compare folder or .gz files".into());
    };
    let python = python(options)?;
    Ok(TorchPeer {
        python,
        args: peer_args(
            options.preset,
            &dir.join(script),
            gz,
            options.epochs,
            threads,
        ),
        threads,
    })
}

/// The `OMP_WAIT_POLICY` torch runs with: the environment's, else
/// `PASSIVE`. OpenMP's default spinning collapses when the cores are
/// shared: on this 2-core machine under a load of 6, an epoch of
/// `torch_presets.py --preset softmax` on 2 threads took 6 to 24 s
/// spinning, 1.1 s passive and 0.6 s on 1 thread.
pub(super) fn wait_policy() -> String {
    std::env::var("OMP_WAIT_POLICY").unwrap_or_else(|_| "PASSIVE".into())
}

/// One run of the peer with seed `run`, and what it printed.
pub(super) fn run(
    peer: &TorchPeer,
    epochs: usize,
    run: usize,
    train_samples: u64,
) -> anyhow::Result<(Sample, TorchLine)> {
    let mut command = Command::new(&peer.python);
    command
        .args(&peer.args)
        .arg("--seed")
        .arg(run.to_string())
        // torch_presets.py has no --threads: torch reads these at start-up.
        .env("OMP_NUM_THREADS", peer.threads.to_string())
        .env("MKL_NUM_THREADS", peer.threads.to_string())
        .env("OMP_WAIT_POLICY", wait_policy());
    let measured = measure(&mut command)?;
    if let Some(failure) = &measured.failure {
        bail!("{failure}: {}", last_line(&measured.stderr));
    }
    let line = parse_torch(&measured.stdout)?;
    if let Some(e) = line.epochs.filter(|&e| e != epochs as u64) {
        bail!("asked for {epochs} epochs, it trained {e}");
    }
    Ok((
        sample(
            Impl::Torch,
            run,
            epochs,
            train_samples,
            line.printed,
            &measured,
        ),
        line,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peers_get_the_presets_settings() {
        let shown = |preset| {
            peer_args(preset, Path::new("a/s.py"), Path::new("gz"), 3, 2)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            shown(Preset::Softmax),
            "a/s.py --data gz --preset softmax --epochs 3"
        );
        assert_eq!(
            shown(Preset::Mlp),
            "a/s.py --data gz --preset mlp --epochs 3"
        );
        assert_eq!(
            shown(Preset::Cnn),
            "a/s.py --data gz --epochs 3 --batch 64 --lr-max 0.05 --lr-min 5e-5 \
             --momentum 0.9 --weight-decay 5e-4 --threads 2"
        );
    }
}
