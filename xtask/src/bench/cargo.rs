//! Building a binary with cargo and finding it in cargo's messages.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::fetch::workspace_root;

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

pub(super) fn cargo() -> OsString {
    // Cargo sets `CARGO` for the programs it runs; fall back to the PATH.
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// Builds a binary with cargo and returns its path from cargo's messages.
pub(super) fn cargo_build(
    args: &[&OsStr],
    target_dir: Option<&Path>,
    name: &str,
) -> anyhow::Result<PathBuf> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
