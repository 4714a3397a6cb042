//! The `mnist` binary end to end on small synthetic datasets: training,
//! saving, evaluating, reproducibility, and every rejected input.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use std::path::Path;
use std::process::{Command, Output};

use mnist_e2e::{assert_error_line, idx_u8, stderr, stdout, write_synthetic};
use serde_json::Value;

fn mnist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(args)
        .output()
        .unwrap()
}

/// A failed run: non-zero exit, one `error:` line naming `needle`, no panic,
/// and training never started.
fn assert_rejected(o: &Output, needle: &str) {
    assert_error_line(o, needle);
    assert!(!stdout(o).contains("Set learning rate"), "training started");
}

/// Settings under which a linear model learns the synthetic data quickly.
const FAST: &[&str] = &[
    "--epochs",
    "3",
    "--batch-size",
    "64",
    "--warmup",
    "0:1",
    "--lr-max",
    "0.5",
    "--lr-min",
    "0.05",
    "--log-every",
    "0",
];

fn train(data: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    mnist(&args)
}

#[test]
fn trains_saves_reports_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 2000, 500).unwrap();
    let model = dir.path().join("model.json");
    let report = dir.path().join("report.json");
    let o = train(
        &data,
        &[
            "--init",
            "zeros",
            "--save",
            model.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Set learning rate to 0.50000"), "{out}");
    assert!(out.contains("confusion matrix"), "{out}");

    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let acc = r["test"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.95, "synthetic data is learnable: {acc}");
    assert_eq!(r["config"]["seed"], 0);
    assert_eq!(r["config"]["batch_size"], 64);
    assert_eq!(r["epochs"].as_array().unwrap().len(), 3);
    for key in ["epoch", "lr", "train_loss", "val_loss", "val_accuracy"] {
        assert!(r["epochs"][0].get(key).is_some(), "epochs[0].{key}");
    }
    // 2000 samples in batches of 64: 32 batches an epoch, the last of 16.
    assert_eq!(r["iterations"].as_array().unwrap().len(), 3 * 32);
    assert_eq!(r["iterations"][95][0], 95);
    let confusion = r["test"]["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    let total: u64 = confusion
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 500);
    assert_eq!(r["test"]["per_class"][3]["support"], 50);
    assert!(r["timing"]["train_seconds"].as_f64().unwrap() > 0.0);
    // The last epoch's validation (the test set, as in the post) is the test.
    assert_eq!(r["epochs"][2]["val_accuracy"], r["test"]["accuracy"]);

    // `eval` on the saved model reproduces the test result exactly.
    let eval_report = dir.path().join("eval.json");
    let o = mnist(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--report",
        eval_report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: Value = serde_json::from_slice(&std::fs::read(&eval_report).unwrap()).unwrap();
    assert_eq!(e["test"]["accuracy"], r["test"]["accuracy"]);
    assert_eq!(e["test"]["confusion"], r["test"]["confusion"]);
    assert_eq!(e["test"]["loss"], r["test"]["loss"]);
}

#[test]
fn same_seed_same_model_bits_other_seed_other_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 600, 100).unwrap();
    let run = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        let o = train(
            &data,
            &[
                "--init",
                "normal",
                "--seed",
                seed,
                "--save",
                path.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(path).unwrap()
    };
    let a = run("a.json", "7");
    let b = run("b.json", "7");
    let c = run("c.json", "8");
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a, c, "another seed, another model");
}

/// The post's model is evaluated after each epoch while the next one
/// trains, unless checkpoints are written (then at once, before the
/// checkpoint): both give the same report and the same log, line for line.
#[test]
fn evaluating_during_the_next_epoch_changes_nothing_printed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 3000, 700).unwrap();
    let run = |name: &str, checkpoints: bool| {
        let report = dir.path().join(format!("{name}.json"));
        let ckpt = dir.path().join(format!("{name}-ckpt"));
        let mut args = vec![
            "train",
            "--data-dir",
            data.to_str().unwrap(),
            "--epochs",
            "4",
            "--batch-size",
            "256",
            "--log-every",
            "3",
            "--report",
            report.to_str().unwrap(),
        ];
        if checkpoints {
            args.extend(["--checkpoint-dir", ckpt.to_str().unwrap()]);
        }
        let o = mnist(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let lines: Vec<String> = stdout(&o)
            .lines()
            .filter(|l| !l.starts_with("timing:") && !l.starts_with("report written"))
            .map(str::to_owned)
            .collect();
        (r, lines)
    };
    let (beside, beside_log) = run("beside", false);
    let (at_once, at_once_log) = run("at-once", true);
    for key in ["epochs", "iterations", "test"] {
        assert_eq!(beside[key], at_once[key], "{key}");
    }
    assert_eq!(beside_log, at_once_log);
    // Each epoch's line comes after its iterations and before the next
    // epoch's learning rate.
    let order: Vec<&str> = beside_log
        .iter()
        .filter_map(|l| {
            ["Set learning rate", "Iter", "Epoch"]
                .into_iter()
                .find(|p| l.starts_with(p))
        })
        .collect();
    let mut expected = Vec::new();
    for _ in 0..4 {
        expected.extend(["Set learning rate", "Iter", "Iter", "Iter", "Iter", "Epoch"]);
    }
    assert_eq!(order, expected, "{beside_log:#?}");
}

#[test]
fn missing_data_says_how_to_fetch_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let o = mnist(&["train", "--data-dir", missing.to_str().unwrap()]);
    assert_rejected(&o, "run `mnist fetch` to fetch MNIST into the data home");

    // One of the four files missing.
    let data = dir.path().join("data");
    write_synthetic(&data, 20, 10).unwrap();
    std::fs::remove_file(data.join("t10k-labels-idx1-ubyte")).unwrap();
    let o = mnist(&["train", "--data-dir", data.to_str().unwrap()]);
    assert_rejected(&o, "t10k-labels-idx1-ubyte not found");

    // A .gz where the raw file is expected.
    std::fs::write(data.join("t10k-labels-idx1-ubyte.gz"), [0x1f, 0x8b, 8, 0]).unwrap();
    let o = mnist(&["train", "--data-dir", data.to_str().unwrap()]);
    assert_rejected(&o, "must be decompressed");
}

#[test]
fn bad_data_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 20, 10).unwrap();
    // Labels count disagrees with images.
    std::fs::write(data.join("t10k-labels-idx1-ubyte"), idx_u8(&[9], &[0; 9])).unwrap();
    let o = mnist(&["train", "--data-dir", data.to_str().unwrap()]);
    assert_rejected(&o, "has 10 images but");
    // A label outside the ten classes.
    std::fs::write(
        data.join("t10k-labels-idx1-ubyte"),
        idx_u8(&[10], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 10]),
    )
    .unwrap();
    let o = mnist(&["train", "--data-dir", data.to_str().unwrap()]);
    assert_rejected(&o, "label 10 at index 9 is outside the 10 classes");
}

#[test]
fn bad_flags_are_rejected_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 20, 10).unwrap();
    let d = data.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--batch-size", "0"], "--batch-size"),
        (&["--epochs", "0"], "--epochs"),
        (&["--epochs", "99999999999"], "--epochs"),
        (&["--lr-min", "-0.1"], "--lr-min"),
        (&["--lr-max", "1e300"], "--lr-max"),
        (&["--lr-max", "0"], "--lr-min/--lr-max"),
        (&["--lr-min", "0.5", "--lr-max", "0.1"], "--lr-min/--lr-max"),
        (&["--cosine-period", "0"], "--cosine-period"),
        (&["--warmup", "0:x"], "--warmup"),
        (&["--warmup", "2:1,1:0.1"], "--warmup"),
        (&["--warmup", "0:1,0:0.5"], "--warmup"),
        (&["--warmup", "0:-1"], "--warmup"),
        (&["--val-size", "1.5"], "--val-size"),
        (
            &["--save", "/nonexistent-dir/m.json"],
            "--save /nonexistent-dir/m.json",
        ),
        (&["--report", "/nonexistent-dir/r.json"], "--report"),
        (
            &["--report", "/proc/r.json"],
            "--report /proc/r.json: cannot write in /proc",
        ),
        (&["--lr-min", "0"], "lr_min must be finite and positive"),
        (&["--checkpoint-dir", "/proc/x"], "--checkpoint-dir /proc/x"),
        (
            &["--save", "/tmp/same.json", "--report", "/tmp/same.json"],
            "--save and --report both name /tmp/same.json",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["train", "--data-dir", d];
        args.extend_from_slice(extra);
        let o = mnist(&args);
        assert_rejected(&o, needle);
    }
    // clap's own errors: a value that is not a number.
    let o = mnist(&["train", "--batch-size", "many"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--batch-size"));
}

#[test]
fn divergence_stops_with_context_and_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 200, 50).unwrap();
    let model = dir.path().join("model.json");
    let o = mnist(&[
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--batch-size",
        "16",
        "--lr-min",
        "1e37",
        "--lr-max",
        "3e38",
        "--warmup",
        "0:1",
        "--save",
        model.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("diverged"), "{err}");
    assert!(err.contains("epoch 0, iteration"), "{err}");
    assert!(err.contains("no model saved"), "{err}");
    assert!(!model.exists());
}

#[test]
fn inspect_describes_good_files_and_rejects_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 12, 10).unwrap();
    let images = data.join("train-images-idx3-ubyte");
    let o = mnist(&["inspect", images.to_str().unwrap(), "--show", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("dims:     12 x 28 x 28"), "{out}");
    assert!(out.contains("12 images"), "{out}");
    assert_eq!(out.lines().filter(|l| l.len() == 56).count(), 28, "{out}");

    let bytes = std::fs::read(&images).unwrap();
    let truncated = dir.path().join("truncated");
    std::fs::write(&truncated, &bytes[..bytes.len() - 5]).unwrap();
    let overlong = dir.path().join("overlong");
    std::fs::write(&overlong, [&bytes[..], &[0, 0]].concat()).unwrap();
    let wrong_magic = dir.path().join("wrong-magic");
    let mut wm = bytes.clone();
    wm[2] = 0x42;
    std::fs::write(&wrong_magic, wm).unwrap();
    for (path, needle) in [
        (&truncated, "truncated data"),
        (&overlong, "trailing bytes"),
        (&wrong_magic, "unknown IDX type byte 0x42"),
    ] {
        let o = mnist(&["inspect", path.to_str().unwrap()]);
        assert_rejected(&o, needle);
        assert!(stderr(&o).contains(path.to_str().unwrap()));
    }
    let o = mnist(&["inspect", images.to_str().unwrap(), "--show", "12"]);
    assert_rejected(&o, "has 12 images");
}

/// Reads the number of completed epochs from a checkpoint, if one is there.
fn checkpoint_epochs(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("checkpoint.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["epochs_done"].as_u64()
}

/// Starts a long training run with checkpoints, waits until two epochs are
/// saved, then sends `signal` to it; returns its output.
fn interrupt_after_two_epochs(data: &Path, ckpt: &Path, signal: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "train".to_string(),
        "--data-dir".into(),
        data.to_str().unwrap().into(),
        "--checkpoint-dir".into(),
        ckpt.to_str().unwrap().into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // However long it takes; a run that ends first has failed the test.
    while checkpoint_epochs(ckpt).unwrap_or(0) < 2 {
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            panic!("the run ended before two epochs were saved: {}", stderr(&o));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait_with_output().unwrap()
}

/// Settings of a run long enough to interrupt: many short epochs.
const LONG: &[&str] = &[
    "--epochs",
    "400",
    "--batch-size",
    "8",
    "--log-every",
    "0",
    "--seed",
    "5",
    "--lr-min",
    "0.01",
    "--cosine-period",
    "7",
];

#[test]
fn a_killed_run_resumes_to_the_same_model_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 400, 50).unwrap();
    let d = data.to_str().unwrap();

    // The run that is never interrupted.
    let whole = dir.path().join("whole.json");
    let mut args = vec!["train", "--data-dir", d, "--save", whole.to_str().unwrap()];
    args.extend_from_slice(LONG);
    let o = mnist(&args);
    assert!(o.status.success(), "{}", stderr(&o));

    // The same run killed (SIGKILL: no chance to clean up) after two epochs.
    let ckpt = dir.path().join("ckpt");
    let o = interrupt_after_two_epochs(&data, &ckpt, "-KILL", LONG);
    assert!(!o.status.success());
    let done = checkpoint_epochs(&ckpt).unwrap();
    assert!((2..400).contains(&done), "killed mid-run: {done}");
    // Nothing half-written beside the checkpoint.
    let names: Vec<_> = std::fs::read_dir(&ckpt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with(".mnist-"))
        .collect();
    assert_eq!(names, ["checkpoint.json"]);

    // Resumed: settings come from the checkpoint.
    let resumed = dir.path().join("resumed.json");
    let o = mnist(&[
        "train",
        "--resume",
        ckpt.to_str().unwrap(),
        "--save",
        resumed.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("resuming after epoch {done} of 400")));
    assert_eq!(
        std::fs::read(&whole).unwrap(),
        std::fs::read(&resumed).unwrap(),
        "the resumed run ends with the uninterrupted run's model"
    );
    assert_eq!(checkpoint_epochs(&ckpt), Some(400));

    // Settings cannot be changed on resume.
    let o = mnist(&["train", "--resume", ckpt.to_str().unwrap(), "--seed", "1"]);
    assert_rejected(&o, "--seed 1: the checkpoint in");
}

#[test]
fn ctrl_c_stops_at_once_and_says_how_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 400, 50).unwrap();
    let ckpt = dir.path().join("ckpt");
    let model = dir.path().join("model.json");
    let mut extra = LONG.to_vec();
    extra.extend_from_slice(&["--save", model.to_str().unwrap()]);
    let o = interrupt_after_two_epochs(&data, &ckpt, "-INT", &extra);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("error: interrupted during epoch"), "{err}");
    assert!(
        err.contains(&format!("mnist train --resume {}", ckpt.display())),
        "{err}"
    );
    assert!(!model.exists(), "no model saved from an interrupted run");
    let done = checkpoint_epochs(&ckpt).unwrap();
    assert!(err.contains(&format!("{done} epochs are saved")), "{err}");
}

/// The hint an interrupted run prints finishes it as asked: the recorded
/// `--save` and `--report` are written, and the report equals an
/// uninterrupted run's apart from timing (every loss read back from the
/// checkpoint bit for bit).
#[test]
fn the_printed_resume_hint_finishes_the_run_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 400, 50).unwrap();
    let whole = dir.path().join("whole.json");
    let whole_report = dir.path().join("whole-report.json");
    let mut args = vec![
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--save",
        whole.to_str().unwrap(),
        "--report",
        whole_report.to_str().unwrap(),
    ];
    args.extend_from_slice(LONG);
    let o = mnist(&args);
    assert!(o.status.success(), "{}", stderr(&o));

    let ckpt = dir.path().join("ckpt");
    let model = dir.path().join("model.json");
    let report = dir.path().join("report.json");
    let mut extra = LONG.to_vec();
    extra.extend_from_slice(&[
        "--save",
        model.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let o = interrupt_after_two_epochs(&data, &ckpt, "-INT", &extra);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let hint = format!("mnist train --resume {}", ckpt.display());
    assert!(stderr(&o).contains(&hint), "{}", stderr(&o));

    let o = mnist(&["train", "--resume", ckpt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&model).unwrap(),
        std::fs::read(&whole).unwrap()
    );
    let results = |path: &Path| {
        let r: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        serde_json::json!([r["epochs"], r["iterations"], r["test"]])
    };
    assert_eq!(results(&report), results(&whole_report));
    assert!(
        !stdout(&o).contains("Iter "),
        "the recorded --log-every 0 holds"
    );
}

/// Ctrl-C without checkpoints, while an epoch's evaluation is still being
/// done beside the next epoch: every finished epoch's line is printed, in
/// order, before the one-line error.
#[test]
fn ctrl_c_prints_every_finished_epoch_first() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 400, 50).unwrap();
    let mut args = vec!["train", "--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(LONG);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut signalled = false;
    for line in stdout.lines() {
        let line = line.unwrap();
        if !signalled && line.starts_with("Epoch   2") {
            let status = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            signalled = true;
        }
        lines.push(line);
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    let during: usize = err
        .strip_prefix("error: interrupted during epoch ")
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    let epochs: Vec<usize> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("Epoch "))
        .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(epochs, (0..during).collect::<Vec<_>>(), "{lines:#?}");
}

#[test]
fn resume_rejects_a_missing_or_damaged_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let o = mnist(&["train", "--resume", dir.path().to_str().unwrap()]);
    assert_rejected(&o, "cannot read");
    std::fs::write(dir.path().join("checkpoint.json"), "{\"format\": 1").unwrap();
    let o = mnist(&["train", "--resume", dir.path().to_str().unwrap()]);
    assert_rejected(&o, "not a checkpoint");
}

#[test]
fn eval_rejects_every_kind_of_bad_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 100, 20).unwrap();
    let d = data.to_str().unwrap();
    let good = dir.path().join("good.json");
    let o = train(&data, &["--save", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&good).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let with = |key: &str, value: Value| {
        let mut j = json.clone();
        j[key] = value;
        j.to_string()
    };
    let mut short = json.clone();
    short["weights"].as_array_mut().unwrap().pop();
    let mut huge = json.clone();
    huge["weights"][5][2] = serde_json::json!(1e39);
    let cases: Vec<(&str, String, &str)> = vec![
        ("not-json", "hello".into(), "not valid JSON"),
        ("truncated", text[..text.len() / 2].into(), "not valid JSON"),
        (
            "format",
            with("format", "other".into()),
            "expected format \"mnist-model\", found \"other\"",
        ),
        (
            "version",
            with("version", 9.into()),
            "expected version 1, 2 or 3, found 9",
        ),
        ("shape", short.to_string(), "expected 785 weight rows"),
        ("non-finite", huge.to_string(), "is not a finite f32"),
    ];
    for (name, content, needle) in cases {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, content).unwrap();
        let o = mnist(&["eval", "--data-dir", d, "--model", path.to_str().unwrap()]);
        assert_rejected(&o, needle);
        assert!(
            stderr(&o).contains(path.to_str().unwrap()),
            "{}",
            stderr(&o)
        );
    }
    let o = mnist(&["eval", "--data-dir", d, "--model", "/nonexistent/m.json"]);
    assert_rejected(&o, "model file /nonexistent/m.json: No such file");
}

#[test]
fn networks_train_save_evaluate_and_resume_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 600, 100).unwrap();
    let d = data.to_str().unwrap();
    let model = dir.path().join("net.json");
    let report = dir.path().join("net-report.json");
    // A preset, with one of its settings overridden.
    let o = mnist(&[
        "train",
        "--data-dir",
        d,
        "--preset",
        "mlp",
        "--hidden",
        "16",
        "--epochs",
        "4",
        "--log-every",
        "0",
        "--save",
        model.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("model: network 785 -> 16 (ReLU) -> 10, softmax"));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["config"]["hidden"], 16, "the explicit flag wins");
    assert_eq!(r["config"]["epochs"], 4);
    assert_eq!(r["config"]["batch_size"], 128, "the preset's value");
    assert_eq!(r["config"]["cosine_period"], 4, "one cycle over the epochs");
    assert_eq!(r["config"]["head"], "softmax");
    assert!(r["test"]["accuracy"].as_f64().unwrap() > 0.9);
    let saved: Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(saved["version"], 2);

    let o = mnist(&["eval", "--data-dir", d, "--model", model.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let acc = format!(
        "test accuracy {:.4}",
        r["test"]["accuracy"].as_f64().unwrap()
    );
    assert!(stdout(&o).contains(&acc), "{}", stdout(&o));

    // Momentum is part of the checkpoint: a resumed run ends with the
    // uninterrupted run's model, for a network and for softmax regression
    // on the fused kernels.
    for (name, layers) in [("net", &["--hidden", "8"][..]), ("linear", &[][..])] {
        let ckpt = dir.path().join(format!("ckpt-{name}"));
        let mut args = vec![
            "--head",
            "softmax",
            "--momentum",
            "0.9",
            "--weight-decay",
            "1e-3",
        ];
        args.extend_from_slice(layers);
        args.extend_from_slice(LONG);
        let whole = dir.path().join(format!("whole-{name}.json"));
        let mut full = vec!["train", "--data-dir", d, "--save", whole.to_str().unwrap()];
        full.extend_from_slice(&args);
        let o = mnist(&full);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = interrupt_after_two_epochs(&data, &ckpt, "-KILL", &args);
        assert!(!o.status.success());
        let resumed = dir.path().join(format!("resumed-{name}.json"));
        let o = mnist(&[
            "train",
            "--resume",
            ckpt.to_str().unwrap(),
            "--save",
            resumed.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            std::fs::read(&whole).unwrap(),
            std::fs::read(&resumed).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn bad_network_flags_are_rejected_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 20, 10).unwrap();
    let d = data.to_str().unwrap();
    for (extra, needle) in [
        (&["--momentum", "1"][..], "--momentum 1: must be in [0, 1)"),
        (&["--momentum", "-0.5"][..], "--momentum -0.5"),
        (&["--weight-decay", "-1"][..], "--weight-decay -1"),
        (&["--hidden", "0"][..], "--hidden 0"),
    ] {
        let mut args = vec!["train", "--data-dir", d];
        args.extend_from_slice(extra);
        assert_rejected(&mnist(&args), needle);
    }
}

#[test]
fn more_threads_than_cores_train_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 200, 50).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let over = (cores + 1).to_string();
    let o = train(&data, &["--threads", &over]);
    assert!(o.status.success(), "{}", stderr(&o));
    let warning = format!(
        "warning: --threads {over} is more than this machine's {cores} cores: \
         the same results, usually more slowly"
    );
    assert_eq!(
        stderr(&o).lines().filter(|l| *l == warning).count(),
        1,
        "{}",
        stderr(&o)
    );
    let o = train(&data, &["--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("--threads"), "{}", stderr(&o));
}

#[test]
fn every_model_saves_the_same_file_on_any_number_of_threads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 700, 50).unwrap();
    let d = data.to_str().unwrap();
    for (name, flags) in [
        ("post", &["--epochs", "2"][..]),
        // Batches of 128: two parts, on two threads.
        (
            "softmax",
            &[
                "--preset",
                "softmax",
                "--batch-size",
                "128",
                "--epochs",
                "2",
            ][..],
        ),
        // Batches of 600: three parts of 200 rows, on up to three threads.
        (
            "softmax-parts",
            &[
                "--preset",
                "softmax",
                "--batch-size",
                "600",
                "--epochs",
                "2",
            ][..],
        ),
        (
            "mlp",
            &["--preset", "mlp", "--hidden", "24", "--epochs", "2"][..],
        ),
    ] {
        let saved: Vec<Vec<u8>> = ["1", "2", "3"]
            .into_iter()
            .map(|threads| {
                let model = dir.path().join(format!("{name}-{threads}.json"));
                let mut args = vec![
                    "train",
                    "--data-dir",
                    d,
                    "--log-every",
                    "0",
                    "--threads",
                    threads,
                    "--save",
                    model.to_str().unwrap(),
                ];
                args.extend_from_slice(flags);
                let o = mnist(&args);
                assert!(o.status.success(), "{name}: {}", stderr(&o));
                std::fs::read(&model).unwrap()
            })
            .collect();
        assert!(
            saved[1] == saved[0] && saved[2] == saved[0],
            "{name}: the models differ"
        );
    }
}
