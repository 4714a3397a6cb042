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

#[test]
fn bench_flags_are_checked_before_building() -> TestResult {
    let dir = tempfile::tempdir()?;
    for name in crate::fixture::NAMES {
        std::fs::write(dir.path().join(name), b"")?;
    }
    let data = dir.path().to_str().ok_or("temp path is not UTF-8")?;
    let missing = dir.path().join("missing");
    let missing = missing.to_str().ok_or("temp path is not UTF-8")?;
    let json_in_missing = format!("{missing}/r.json");
    let cases: [(&[&str], &str); 8] = [
        (&["--runs", "0"], "error: --runs 0: expected 1 to 1000"),
        (
            &["--preset", "resnet"],
            "error: --preset resnet: unknown preset (expected post, softmax, mlp or cnn)",
        ),
        (
            &["--preset", "cnn", "--compare", data, "--gz-dir", data],
            "torch_cnn.py not found (the PyTorch peer of --preset cnn)",
        ),
        (
            &["--preset", "mlp", "--torch-venv", data],
            "error: --torch-venv needs --compare DIR",
        ),
        (
            &["--epochs", "5000"],
            "error: --epochs 5000: expected 1 to 1000",
        ),
        (
            &["--data-dir", missing],
            "train-images-idx3-ubyte not found",
        ),
        (&["--compare", data, "--gz-dir", data], ".gz not found"),
        (&["--json", &json_in_missing], "does not exist"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["bench"];
        if !args.contains(&"--data-dir") {
            all.extend(["--data-dir", data]);
        }
        all.extend_from_slice(args);
        let output = xtask(&all, &[])?;
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
        assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: {text}");
    }
    for args in [&["bench", "--runs", "x"][..], &["synth", "--out", data]] {
        let output = xtask(args, &[])?;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    Ok(())
}

#[test]
fn synth_errors_are_one_line() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let out = out.to_str().ok_or("temp path is not UTF-8")?;
    let source = dir.path().to_str().ok_or("temp path is not UTF-8")?;
    let output = xtask(
        &["synth", "--samples", "3", "--out", out, "--source", source],
        &[],
    )?;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("error: source "), "{text}");
    Ok(())
}
