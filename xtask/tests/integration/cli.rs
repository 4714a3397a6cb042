//! The `xtask` binary: usage errors and the shape of error messages. Only
//! failures that happen before any download are exercised here.

use std::process::{Command, Output};

use crate::fixture::TestResult;

fn xtask(args: &[&str], env: &[(&str, &str)]) -> std::io::Result<Output> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command
        .args(args)
        .env_remove("MNIST_MIRROR")
        .env_remove("FASHION_MNIST_MIRROR");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_mirror_argument_is_a_usage_error() -> TestResult {
    let output = xtask(&["fetch-data", "--mirror", "ftp://example.org/"], &[])?;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid mirror `ftp://example.org/`"),
        "{}",
        stderr(&output)
    );
    Ok(())
}

#[test]
fn bad_mirror_variable_is_a_usage_error() -> TestResult {
    let output = xtask(
        &["fetch-data", "--dataset", "fashion-mnist"],
        &[("FASHION_MNIST_MIRROR", "gopher://example.org/")],
    )?;
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output).trim_end(),
        "error: invalid mirror `gopher://example.org/`: expected an http:// or https:// URL, a file:// URL or a directory"
    );
    Ok(())
}

#[test]
fn bad_values_are_usage_errors() -> TestResult {
    for args in [
        &["fetch-data", "--dataset", "cifar"][..],
        &["fetch-data", "--timeout", "0"],
        &["fetch-data", "--bogus"],
        &["no-such-task"],
    ] {
        let output = xtask(args, &[])?;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    Ok(())
}

#[test]
fn unwritable_output_is_one_error_line() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"")?;
    let out = file.to_str().ok_or("temp path is not UTF-8")?;
    let output = xtask(&["fetch-data", "--out", out], &[])?;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with(&format!("error: cannot create {out}/mnist: ")),
        "{text}"
    );
    assert!(!text.contains("panicked"));
    Ok(())
}
