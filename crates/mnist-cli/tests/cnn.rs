//! The convolutional network end to end on a small synthetic dataset: it
//! trains, saves, evaluates, predicts, and resumes to the same bits.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use std::path::Path;
use std::process::{Command, Output};

use mnist_e2e::{stderr, stdout, write_synthetic};
use serde_json::Value;

fn mnist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(args)
        .output()
        .unwrap()
}

/// A small convolutional network: few filters, so a test trains it fast.
const SMALL: &[&str] = &[
    "--preset",
    "cnn",
    "--conv",
    "4,8",
    "--hidden",
    "16",
    "--log-every",
    "0",
    "-q",
];

fn train(data: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    mnist(&args)
}

#[test]
fn a_cnn_trains_saves_evaluates_predicts_and_resumes_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    write_synthetic(&data, 600, 100).unwrap();
    let whole = dir.path().join("whole.json");
    let report = dir.path().join("r.json");
    let o = train(
        &data,
        &[
            "--epochs",
            "3",
            "--save",
            whole.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let acc = r["test"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.9, "the synthetic digits are learnable: {acc}");
    assert!(
        r["model"]
            .as_str()
            .unwrap()
            .starts_with("cnn 28 x 28 -> conv 5x5 4"),
        "{}",
        r["model"]
    );
    assert_eq!(r["config"]["conv"], serde_json::json!([4, 8]));

    // eval reads the model back and agrees with the training run.
    let o = mnist(&[
        "eval",
        "--model",
        whole.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!("test accuracy {acc:.4}")),
        "{}",
        stdout(&o)
    );
    let o = mnist(&[
        "predict",
        "--model",
        whole.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--index",
        "7",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["output_kind"], "softmax");

    // One epoch of the three-epoch schedule, with checkpoints, then resumed
    // to three: the same model.
    let ck = dir.path().join("ck");
    let resumed = dir.path().join("resumed.json");
    let o = train(
        &data,
        &[
            "--epochs",
            "1",
            "--cosine-period",
            "3",
            "--checkpoint-dir",
            ck.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = train(
        &data,
        &[
            "--epochs",
            "3",
            "--resume",
            ck.to_str().unwrap(),
            "--save",
            resumed.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read(&resumed).unwrap() == std::fs::read(&whole).unwrap(),
        "1 + 2 epochs end with the 3-epoch model"
    );
}

#[test]
fn a_cnn_needs_the_softmax_head() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    write_synthetic(&data, 100, 20).unwrap();
    let o = mnist(&[
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--conv",
        "4",
        "--head",
        "sigmoid",
    ]);
    mnist_e2e::assert_error_line(&o, "--conv 4: a convolutional network has a softmax head");
}
