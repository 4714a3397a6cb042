//! `man`: write the `mnist` man page, made by `mnist man` from the same
//! flag definitions as its `--help`.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::fetch::workspace_root;

/// `target/man/mnist.1` at the workspace root.
pub fn default_path() -> PathBuf {
    workspace_root().join("target").join("man").join("mnist.1")
}

/// Builds `mnist`, runs `mnist man` and writes its output to `out` (its
/// folder is made if missing), through a temporary file renamed into place.
///
/// # Errors
///
/// The build or `mnist man` failed, or `out` cannot be written.
pub fn run(out: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let output = Command::new(cargo)
        .args(["run", "--quiet", "--package", "mnist-cli", "--bin", "mnist"])
        .args(["--", "man"])
        .current_dir(workspace_root())
        .output()
        .context("cannot run `cargo run --package mnist-cli -- man`")?;
    if !output.status.success() {
        bail!(
            "`mnist man` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    write(out, &output.stdout)?;
    eprintln!("man page written to {}", out.display());
    Ok(())
}

/// Writes `bytes` to `out` through `.<name>.tmp` beside it.
fn write(out: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = out
        .file_name()
        .with_context(|| format!("--out {}: names no file", out.display()))?;
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, out).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write {}: {e}", out.display())
    })
}
