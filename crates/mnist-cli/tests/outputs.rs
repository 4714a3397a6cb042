//! What `mnist` reads and writes: no output lands on an input or on another
//! output, every output path is checked before the work, checkpoints are
//! never replaced by another run, and a resumed run keeps what the run was
//! asked for.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mnist_e2e::{assert_error_line, stderr, stdout, write_synthetic};
use serde_json::Value;

fn mnist_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnist"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

/// A folder with a small synthetic dataset in `d/`.
struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic(&dir.path().join("d"), 300, 60).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `mnist train` in the scene's folder on its data, quick settings
    /// first, then `extra`.
    fn train(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "train",
            "--data-dir",
            "d",
            "--batch-size",
            "32",
            "--warmup",
            "0:1",
            "--log-every",
            "0",
        ];
        args.extend_from_slice(extra);
        mnist_in(self.dir.path(), &args)
    }

    fn run(&self, args: &[&str]) -> Output {
        mnist_in(self.dir.path(), args)
    }

    /// Every file and folder name in the scene, sorted, data files aside.
    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "d")
            .collect();
        names.sort();
        names
    }

    fn dataset_bytes(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<_> = std::fs::read_dir(self.path("d"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }
}

/// Refused before any data was read: one error line with `needle`, and no
/// training started.
fn assert_refused(o: &Output, needle: &str) {
    assert_error_line(o, needle);
    assert!(!stdout(o).contains("seed "), "work started: {}", stdout(o));
}

#[test]
fn an_output_never_lands_on_an_input_or_another_output() {
    let s = Scene::new();
    let data = s.dataset_bytes();

    // The dataset's own file, as typed and through `..` and `.`.
    for save in [
        "d/t10k-labels-idx1-ubyte",
        "d/../d/./train-images-idx3-ubyte",
    ] {
        let o = s.train(&["--epochs", "1", "--save", save]);
        assert_refused(&o, "--data-dir and --save both name");
    }
    let o = s.train(&["--epochs", "1", "--report", "d/train-labels-idx1-ubyte"]);
    assert_refused(&o, "--data-dir and --report both name");
    assert_eq!(s.dataset_bytes(), data, "the dataset is untouched");

    // One file spelt two ways.
    let absolute = s.path("same.json");
    for save in ["./same.json", absolute.to_str().unwrap()] {
        let o = s.train(&["--epochs", "1", "--save", save, "--report", "same.json"]);
        assert_refused(&o, "--save and --report both name");
        assert!(
            stderr(&o).contains(&format!("{save} and same.json")),
            "{}",
            stderr(&o)
        );
    }

    // The checkpoint file, and the checkpoint folder itself.
    let o = s.train(&[
        "--epochs",
        "1",
        "--save",
        "cs/checkpoint.json",
        "--checkpoint-dir",
        "cs",
    ]);
    assert_refused(
        &o,
        "--checkpoint-dir and --save both name cs/checkpoint.json",
    );
    let o = s.train(&[
        "--epochs",
        "1",
        "--report",
        "r.json",
        "--checkpoint-dir",
        "r.json",
    ]);
    assert_refused(&o, "--checkpoint-dir and --report both name r.json");
    assert!(s.listing().is_empty(), "{:?}", s.listing());

    // A link to the dataset is the dataset.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("d", s.path("alias")).unwrap();
        let o = s.train(&["--epochs", "1", "--save", "alias/t10k-images-idx3-ubyte"]);
        assert_refused(&o, "--data-dir and --save both name");
        assert_eq!(s.dataset_bytes(), data);
    }
}

#[cfg(unix)]
#[test]
fn eval_plot_and_errors_never_write_over_what_they_read() {
    let s = Scene::new();
    let o = s.train(&["--epochs", "1", "--save", "m.json", "--report", "r.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = std::fs::read(s.path("m.json")).unwrap();
    let report = std::fs::read(s.path("r.json")).unwrap();

    let o = s.run(&[
        "eval",
        "--model",
        "m.json",
        "--data-dir",
        "d",
        "--report",
        "./m.json",
    ]);
    assert_refused(&o, "--model and --report both name");
    std::os::unix::fs::symlink("r.json", s.path("r.png")).unwrap();
    let o = s.run(&["plot", "r.json", "-o", "r.png"]);
    assert_error_line(&o, "REPORT.json and -o both name r.json and r.png");
    let o = s.run(&[
        "errors",
        "--model",
        "m.json",
        "--data-dir",
        "d",
        "-o",
        "d/t10k-images-idx3-ubyte",
    ]);
    assert_error_line(&o, "-o d/t10k-images-idx3-ubyte");
    assert_eq!(std::fs::read(s.path("m.json")).unwrap(), model);
    assert_eq!(std::fs::read(s.path("r.json")).unwrap(), report);
}

#[cfg(unix)]
#[test]
fn save_onto_a_link_writes_where_it_points() {
    let s = Scene::new();
    std::fs::create_dir(s.path("models")).unwrap();
    std::os::unix::fs::symlink("models/real.json", s.path("link.json")).unwrap();
    let o = s.train(&["--epochs", "1", "--init", "zeros", "--save", "link.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let link = std::fs::symlink_metadata(s.path("link.json")).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    let written: Value =
        serde_json::from_slice(&std::fs::read(s.path("models/real.json")).unwrap()).unwrap();
    assert_eq!(written["format"], "mnist-model");
}

#[test]
fn every_output_path_is_checked_before_training() {
    let s = Scene::new();
    let o = s.train(&["--epochs", "1", "--save", "x.json/"]);
    assert_refused(&o, "--save x.json/: ends in a slash");
    let o = s.train(&["--epochs", "1", "--report", "y.json/"]);
    assert_refused(&o, "--report y.json/: ends in a slash");
    // One rule for every output: its folder must exist.
    let o = s.train(&["--epochs", "1", "--checkpoint-dir", "a/b"]);
    assert_refused(&o, "--checkpoint-dir a/b: directory a does not exist");
    let o = s.train(&["--epochs", "1", "--save", "a/m.json"]);
    assert_refused(&o, "--save a/m.json: directory a does not exist");
    std::fs::write(s.path("file"), b"").unwrap();
    let o = s.train(&["--epochs", "1", "--checkpoint-dir", "file"]);
    assert_refused(&o, "--checkpoint-dir file: not a directory");
    assert_eq!(s.listing(), ["file"]);
    // The probe's own name is not the user's business.
    #[cfg(target_os = "linux")]
    {
        let o = s.train(&["--epochs", "1", "--save", "/proc/m.json"]);
        assert_refused(&o, "--save /proc/m.json: cannot write in /proc");
        assert!(!stderr(&o).contains(".mnist-check"), "{}", stderr(&o));
    }
}

#[test]
fn a_run_stopped_before_its_first_checkpoint_leaves_no_folder() {
    let s = Scene::new();
    // Diverges in epoch 0.
    let o = s.run(&[
        "train",
        "--data-dir",
        "d",
        "--batch-size",
        "16",
        "--warmup",
        "0:1",
        "--lr-max",
        "3e38",
        "--lr-min",
        "1e37",
        "--checkpoint-dir",
        "ck",
    ]);
    assert_error_line(&o, "epoch 0, iteration");
    assert!(stderr(&o).contains("training diverged"), "{}", stderr(&o));
    assert!(!s.path("ck").exists(), "{:?}", s.listing());
}

#[test]
fn a_new_run_does_not_replace_another_runs_checkpoint() {
    let s = Scene::new();
    let o = s.train(&["--epochs", "1", "--checkpoint-dir", "ck"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = std::fs::read(s.path("ck/checkpoint.json")).unwrap();
    let o = s.train(&["--epochs", "1", "--seed", "3", "--checkpoint-dir", "ck"]);
    assert_refused(&o, "--checkpoint-dir ck: holds another run's checkpoint");
    assert!(stderr(&o).contains("--resume ck"), "{}", stderr(&o));
    assert_eq!(std::fs::read(s.path("ck/checkpoint.json")).unwrap(), first);
    let o = s.train(&[
        "--epochs",
        "1",
        "--seed",
        "3",
        "--checkpoint-dir",
        "ck",
        "--overwrite-checkpoint",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(s.path("ck/checkpoint.json")).unwrap(), first);
}

#[test]
fn settings_that_would_not_be_what_they_say_are_refused() {
    let s = Scene::new();
    // 0.000016 of 300 samples is under one sample: not the test set instead.
    let o = s.train(&["--epochs", "1", "--val-size", "0.000016"]);
    assert_error_line(&o, "less than one sample");
    let o = s.train(&["--epochs", "1", "--hidden", "8", "--init", "zeros"]);
    assert_refused(&o, "--init zeros with --hidden 8");
}

/// `[epochs, iterations, test]` of a report: everything but the timing and
/// the settings as typed.
fn results(path: &Path) -> Value {
    let r: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    serde_json::json!([r["epochs"], r["iterations"], r["test"]])
}

const PLAN: &[&str] = &["--seed", "7", "--lr-max", "0.3", "--lr-min", "0.01"];

#[test]
fn the_original_command_plus_resume_continues_and_can_train_on() {
    let s = Scene::new();
    let mut ten = vec![
        "--epochs",
        "10",
        "--save",
        "ten.json",
        "--report",
        "ten-r.json",
    ];
    ten.extend_from_slice(PLAN);
    let o = s.train(&ten);
    assert!(o.status.success(), "{}", stderr(&o));

    // Five epochs, then the same command line with --resume: nothing to do
    // but write the outputs again, and no conflict.
    let mut five = vec![
        "--epochs",
        "5",
        "--checkpoint-dir",
        "ck",
        "--save",
        "m.json",
        "--report",
        "r.json",
    ];
    five.extend_from_slice(PLAN);
    let o = s.train(&five);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_file(s.path("m.json")).unwrap();
    let mut again = five.clone();
    again.extend_from_slice(&["--resume", "ck"]);
    let o = s.train(&again);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.path("m.json").exists(), "the recorded --save is written");

    // A setting that differs is named with both values.
    let o = s.train(&["--resume", "ck", "--seed", "8"]);
    assert_refused(&o, "--seed 8: the checkpoint in ck was made with --seed 7");
    let o = s.train(&["--resume", "ck", "--lr-max", "0.1"]);
    assert_refused(
        &o,
        "--lr-max 0.1: the checkpoint in ck was made with --lr-max 0.3",
    );
    let o = s.train(&["--resume", "ck", "--epochs", "4"]);
    assert_refused(
        &o,
        "--epochs 4: the checkpoint in ck has 5 epochs done already",
    );

    // Train on to ten epochs, from another folder, with the data elsewhere:
    // the same model and results, bit for bit, as ten epochs in one go.
    std::fs::rename(s.path("d"), s.path("moved")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let ck = s.path("ck");
    let moved = s.path("moved");
    let o = mnist_in(
        elsewhere.path(),
        &[
            "train",
            "--resume",
            ck.to_str().unwrap(),
            "--epochs",
            "10",
            "--data-dir",
            moved.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("resuming after epoch 5 of 10"),
        "{}",
        stdout(&o)
    );
    // The same weights; the recorded dataset is named after its new folder.
    let weights = |name: &str| {
        let mut model: Value =
            serde_json::from_slice(&std::fs::read(s.path(name)).unwrap()).unwrap();
        model.as_object_mut().unwrap().remove("metadata");
        model
    };
    assert!(
        weights("m.json") == weights("ten.json"),
        "5 + 5 epochs end with the 10-epoch model"
    );
    assert_eq!(results(&s.path("r.json")), results(&s.path("ten-r.json")));
    assert!(
        !elsewhere.path().join("m.json").exists(),
        "outputs go where they were asked"
    );
}

#[test]
fn resume_refuses_another_dataset() {
    let s = Scene::new();
    let o = s.train(&["--epochs", "1", "--checkpoint-dir", "ck"]);
    assert!(o.status.success(), "{}", stderr(&o));
    write_synthetic(&s.path("other"), 310, 60).unwrap();
    let o = s.run(&[
        "train",
        "--resume",
        "ck",
        "--epochs",
        "2",
        "--data-dir",
        "other",
    ]);
    assert_error_line(
        &o,
        "--data-dir other: not the dataset this run was trained on",
    );
}
