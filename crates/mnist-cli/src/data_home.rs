//! Where the datasets live when no `--data-dir` is given: the data home.
//!
//! A dataset is looked for, in order, in `$MNIST_DATA/<dataset>`, in the
//! workspace's `data/<dataset>` when `mnist` runs inside the mnist-rs
//! workspace, and in `<user data folder>/<dataset>` (on Linux
//! `$XDG_DATA_HOME/mnist` or `~/.local/share/mnist`; the platform's usual
//! place elsewhere, through the `directories` crate). `mnist fetch` writes
//! into `$MNIST_DATA` if set, else into the user data folder.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The environment variable that names the data home: a folder holding
/// `mnist/`, `fashion-mnist/`.
pub const MNIST_DATA: &str = "MNIST_DATA";

/// The folder named by `MNIST_DATA`, if set.
///
/// # Errors
///
/// `MNIST_DATA` names something that is not a folder.
fn from_env() -> Result<Option<PathBuf>> {
    let Some(value) = std::env::var_os(MNIST_DATA).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let dir = PathBuf::from(value);
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{MNIST_DATA} {}: not a folder (it should name a folder holding mnist/, fashion-mnist/)",
            dir.display()
        );
    }
    Ok(Some(dir))
}

/// The platform's per-user data folder for `mnist`.
fn user_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "mnist").map(|dirs| dirs.data_dir().to_path_buf())
}

/// The mnist-rs workspace that holds the current folder, if any: the
/// nearest folder above it with a `Cargo.toml` and `crates/mnist-cli/`.
fn workspace() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .find(|dir| {
            dir.join("Cargo.toml").is_file() && dir.join("crates/mnist-cli/Cargo.toml").is_file()
        })
        .map(Path::to_path_buf)
}

/// Where `mnist fetch` writes: `$MNIST_DATA`, else the user data folder.
///
/// # Errors
///
/// `MNIST_DATA` is not a folder, or it is unset and the platform has no
/// home folder to put the data in.
pub fn home() -> Result<PathBuf> {
    if let Some(dir) = from_env()? {
        return Ok(dir);
    }
    match user_dir() {
        Some(dir) => Ok(dir),
        None => bail!(
            "no home folder to keep the data in: set {MNIST_DATA} to a folder, or pass --data-dir"
        ),
    }
}

/// The folders searched for `dataset`, in order, each with where it came
/// from.
fn candidates(dataset: &str) -> Result<Vec<(PathBuf, &'static str)>> {
    let mut list = Vec::new();
    if let Some(dir) = from_env()? {
        list.push((dir.join(dataset), MNIST_DATA));
    }
    if let Some(root) = workspace() {
        list.push((root.join("data").join(dataset), "the workspace"));
    }
    if let Some(dir) = user_dir() {
        list.push((dir.join(dataset), "the user data folder"));
    }
    Ok(list)
}

/// The folder of `dataset` to read: `given` (from `--data-dir`) if any,
/// else the first folder of the data home that exists.
///
/// # Errors
///
/// `MNIST_DATA` is not a folder, or no folder searched holds the dataset:
/// the message names each one and the command that fetches it.
pub fn resolve(given: Option<&Path>, dataset: &str) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.to_path_buf());
    }
    let candidates = candidates(dataset)?;
    if let Some((dir, _)) = candidates.iter().find(|(dir, _)| dir.is_dir()) {
        return Ok(dir.clone());
    }
    let searched: Vec<String> = candidates
        .iter()
        .map(|(dir, from)| format!("{} ({from})", dir.display()))
        .collect();
    let fetch = if dataset == "mnist" {
        "mnist fetch".to_owned()
    } else {
        format!("mnist fetch --dataset {dataset}")
    };
    bail!(
        "no {dataset} data found in {}: run `{fetch}` to fetch it, or pass --data-dir",
        if searched.is_empty() {
            "any folder (no MNIST_DATA, no workspace, no home folder)".to_owned()
        } else {
            searched.join(", ")
        }
    )
}
