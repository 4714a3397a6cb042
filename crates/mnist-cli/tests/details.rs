//! The details a careful user meets: `predict` on several files, messages
//! that say what is wrong, plurals, and a terminal that cannot draw a bar.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mnist_e2e::{assert_error_line, idx_u8, stderr, stdout, write_synthetic};
use serde_json::Value;

fn mnist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(args)
        .output()
        .unwrap()
}

/// A synthetic dataset in `dir/d` and a model trained on it; `extra` flags
/// choose the model.
fn trained(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    let data = dir.join("d");
    write_synthetic(&data, 300, 60).unwrap();
    let model = dir.join("m.json");
    let mut args = vec![
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--log-every",
        "0",
        "--save",
        model.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = mnist(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    (data, model)
}

/// A 28 x 28 PNG of a bar, dark on light.
fn picture(path: &Path) {
    let img = image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([if (10..18).contains(&x) && (4..24).contains(&y) {
            0
        } else {
            255
        }])
    });
    img.save(path).unwrap();
}

#[test]
fn predict_prints_every_good_picture_and_a_line_for_each_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = trained(dir.path(), &["--init", "zeros"]);
    let good = dir.path().join("good.png");
    picture(&good);
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"not a picture").unwrap();
    let missing = dir.path().join("missing.png");
    let o = mnist(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        missing.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert_eq!(out.matches("good.png: predicted").count(), 2, "{out}");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("bad.png"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("error: ") && lines[1].contains("missing.png"),
        "{err}"
    );
}

#[test]
fn predict_json_names_the_true_class_and_softmax_prints_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = trained(dir.path(), &["--head", "softmax", "--init", "zeros"]);
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let o = mnist(&[
        "predict",
        "--model",
        m,
        "--data-dir",
        d,
        "--index",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let p = &v["predictions"][0];
    // Test image 3 of the synthetic set has label 3.
    assert_eq!(p["label"], "3");
    assert_eq!(p["label_class"], 3);
    let o = mnist(&["predict", "--model", m, "--data-dir", d, "--index", "3"]);
    let out = stdout(&o);
    assert!(out.contains("softmax output"), "{out}");
    assert!(
        !out.contains("normalized to sum 1"),
        "a softmax row twice: {out}"
    );
}

#[test]
fn predict_on_small_images_speaks_of_the_images_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d5");
    std::fs::create_dir(&data).unwrap();
    for (prefix, n) in [("train", 40u32), ("t10k", 10)] {
        let pixels: Vec<u8> = (0..n * 25).map(|i| (i * 7 % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(
            data.join(format!("{prefix}-images-idx3-ubyte")),
            idx_u8(&[n, 5, 5], &pixels),
        )
        .unwrap();
        std::fs::write(
            data.join(format!("{prefix}-labels-idx1-ubyte")),
            idx_u8(&[n], &labels),
        )
        .unwrap();
    }
    let model = dir.path().join("m5.json");
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let o = mnist(&["train", "--data-dir", d, "--epochs", "1", "--save", m, "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = mnist(&["predict", "--model", m, "--data-dir", d, "--index", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("test image 0: predicted"),
        "{}",
        stdout(&o)
    );
    let o = mnist(&["predict", "--model", m, "--data-dir", d, "--index", "10"]);
    assert_error_line(&o, "--index 10: the test set has 10 images (0 to 9)");
    let png = dir.path().join("p.png");
    picture(&png);
    let o = mnist(&["predict", "--model", m, png.to_str().unwrap()]);
    assert_error_line(
        &o,
        "takes 26 features, but pictures are digitised to 28 x 28",
    );
}

#[test]
fn messages_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = trained(dir.path(), &["--init", "zeros"]);
    let d = data.to_str().unwrap();

    // A warm-up factor that overflows the rate is refused up front.
    let o = mnist(&["train", "--data-dir", d, "--warmup", "0:1e40"]);
    assert_error_line(
        &o,
        "--warmup \"0:1e40\": epoch 0's factor 1e40 times --lr-max 0.1",
    );
    assert!(!stdout(&o).contains("seed"), "{}", stdout(&o));

    // A report given as the model.
    let report = dir.path().join("r.json");
    let o = mnist(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data-dir",
        d,
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = mnist(&["eval", "--model", report.to_str().unwrap(), "--data-dir", d]);
    assert_error_line(&o, "this is a report");

    // A report with epochs but no iterations.
    let mut r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    r["epochs"] = serde_json::json!([{"epoch": 0, "lr": 0.1, "train_loss": 1.0, "val_loss": 1.0, "val_accuracy": 0.5}]);
    r["iterations"] = serde_json::json!([]);
    std::fs::write(&report, r.to_string()).unwrap();
    let png = dir.path().join("c.png");
    let o = mnist(&[
        "plot",
        report.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
    ]);
    assert_error_line(&o, "has no iterations (batch losses) to plot");

    // One batch, said in the singular.
    let o = mnist(&[
        "train",
        "--data-dir",
        d,
        "--epochs",
        "1",
        "--batch-size",
        "512",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("; 1 batch of 512 per epoch"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn inspect_counts_what_the_file_holds() {
    let dir = tempfile::tempdir().unwrap();
    // Five 28 x 28 images of f32 (type 0x0d).
    let mut f32s = vec![0, 0, 0x0d, 3];
    for d in [5u32, 28, 28] {
        f32s.extend_from_slice(&d.to_be_bytes());
    }
    f32s.extend(std::iter::repeat_n(0u8, 5 * 28 * 28 * 4));
    let path = dir.path().join("f32.idx");
    std::fs::write(&path, &f32s).unwrap();
    let o = mnist(&["inspect", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("count:    5 items, each 28 x 28 values of type f32"),
        "{}",
        stdout(&o)
    );
    // An images file with no images.
    let empty = dir.path().join("empty-images");
    std::fs::write(&empty, idx_u8(&[0, 28, 28], &[])).unwrap();
    let o = mnist(&["inspect", empty.to_str().unwrap(), "--show", "0"]);
    assert_error_line(&o, "has no images");
}

/// With `TERM=dumb` on a terminal, no escape codes: `script` gives the run a
/// terminal.
#[cfg(target_os = "linux")]
#[test]
fn a_dumb_terminal_gets_no_progress_bar() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    write_synthetic(&data, 300, 60).unwrap();
    let command = format!(
        "{} train --data-dir {} --epochs 2 --batch-size 8 --log-every 0",
        env!("CARGO_BIN_EXE_mnist"),
        data.display()
    );
    let run = |term: &str| {
        Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("TERM", term)
            .output()
            .expect("`script` (util-linux) runs the command on a terminal")
    };
    let o = run("xterm");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\u{1b}["), "a terminal gets the bar");
    let o = run("dumb");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains('\u{1b}'), "{:?}", stdout(&o));
}

/// A synthetic dataset in `dir/name`.
fn dataset(dir: &Path, name: &str, n_test: usize) -> PathBuf {
    let path = dir.join(name);
    write_synthetic(&path, 300, n_test).unwrap();
    path
}

#[test]
fn a_model_records_its_dataset_and_warns_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let fashion = dataset(dir.path(), "fashion-mnist", 60);
    let other = dataset(dir.path(), "digits", 70);
    let model = dir.path().join("m.json");
    let m = model.to_str().unwrap();
    let o = mnist(&[
        "train",
        "--data-dir",
        fashion.to_str().unwrap(),
        "--epochs",
        "1",
        "--save",
        m,
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let saved: Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    let recorded = &saved["metadata"]["dataset"];
    assert_eq!(recorded["name"], "fashion-mnist");
    assert_eq!(recorded["class_names"][0], "T-shirt/top");
    assert!(
        recorded["test"].as_str().unwrap().starts_with("60x784:"),
        "{recorded}"
    );
    assert!(
        recorded["train"].as_str().unwrap().starts_with("300x784:"),
        "{recorded}"
    );

    // The folder given as `.` is still named by its real name.
    let o = Command::new(env!("CARGO_BIN_EXE_mnist"))
        .current_dir(&fashion)
        .args(["eval", "--model", m, "--data-dir", "."])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("T-shirt/top"), "{}", stdout(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));

    // Another dataset: a warning, and its own class names.
    let o = mnist(&["eval", "--model", m, "--data-dir", other.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with("warning: --model") && err.contains("trained on fashion-mnist"),
        "{err}"
    );
    assert!(!stdout(&o).contains("T-shirt/top"), "{}", stdout(&o));

    // `errors` on Fashion-MNIST speaks of images, not digits.
    let png = dir.path().join("e.png");
    let o = mnist(&[
        "errors",
        "--model",
        m,
        "--data-dir",
        fashion.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("test images misclassified"),
        "{}",
        stdout(&o)
    );

    // A picture alone is named with the classes the model records.
    let picture_file = dir.path().join("p.png");
    picture(&picture_file);
    let o = mnist(&[
        "predict",
        "--model",
        m,
        picture_file.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["classes"][9], "Ankle boot");
}

#[test]
fn the_timing_line_names_what_computed_the_steps() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), "d", 60);
    let report = dir.path().join("r.json");
    let o = mnist(&[
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--report",
        report.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The network's products run on the same path as the fused kernels,
    // so `MNIST_KERNEL` (unset here) names it for every model.
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let kernel = r["kernel"].as_str().unwrap();
    assert!(
        ["avx512f+fma", "avx2+fma", "neon", "portable"].contains(&kernel),
        "{kernel}"
    );
    assert!(
        stdout(&o).contains(&format!("(kernel: {kernel})")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn export_writes_each_format_and_every_command_reads_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = trained(dir.path(), &["--preset", "mlp", "--hidden", "8"]);
    let (d, m) = (data.to_str().unwrap(), model.to_str().unwrap());
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    for name in ["m.safetensors", "m.onnx", "back.json"] {
        let o = mnist(&["export", "--model", m, "-o", &path(name)]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stdout(&o).starts_with(&format!(
                "wrote {} (network 785 -> 8 (ReLU) -> 10, softmax; ",
                path(name)
            )),
            "{}",
            stdout(&o)
        );
    }
    // The JSON written back is the model file itself, dataset and all.
    assert_eq!(
        std::fs::read(&model).unwrap(),
        std::fs::read(path("back.json")).unwrap()
    );
    let st = path("m.safetensors");
    let pic = path("p.png");
    picture(Path::new(&pic));
    for args in [
        vec!["eval", "--data-dir", d],
        vec!["predict", "--json", &pic, "--index", "3", "--data-dir", d],
    ] {
        let from = |model: &str| {
            let mut a = args.clone();
            a.extend(["--model", model]);
            let o = mnist(&a);
            assert!(o.status.success(), "{}", stderr(&o));
            stdout(&o).replace(model, "MODEL")
        };
        assert_eq!(from(m), from(&st), "{args:?}");
    }
    let o = mnist(&[
        "errors",
        "--model",
        &st,
        "--data-dir",
        d,
        "-o",
        &path("e.png"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = mnist(&[
        "eval",
        "--model",
        &st,
        "--data-dir",
        d,
        "--outputs",
        &path("out.json"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_slice(&std::fs::read(path("out.json")).unwrap()).unwrap();
    assert_eq!(out["outputs"].as_array().unwrap().len(), 60);
    assert_eq!(out["outputs"][0].as_array().unwrap().len(), 10);
    assert_eq!(out["predicted"].as_array().unwrap().len(), 60);
    assert_eq!(out["output_kind"], "softmax");
}

#[test]
fn export_refuses_what_it_cannot_write_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, model) = trained(dir.path(), &[]);
    let m = model.to_str().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_error_line(
        &mnist(&["export", "--model", m, "-o", &path("m.bin")]),
        "m.bin: the format is chosen by the extension: give a name ending in .onnx, .safetensors or .json",
    );
    assert_error_line(
        &mnist(&["export", "--model", m, "-o", m]),
        "--model and -o both name",
    );
    assert_error_line(
        &mnist(&["export", "--model", m, "-o", &path("nope/m.onnx")]),
        "nope/m.onnx: directory",
    );
    assert_error_line(
        &mnist(&[
            "export",
            "--model",
            &path("absent.json"),
            "-o",
            &path("a.onnx"),
        ]),
        "absent.json: No such file or directory",
    );
    let garbage = path("g.safetensors");
    std::fs::write(&garbage, b"not a model").unwrap();
    assert_error_line(
        &mnist(&["export", "--model", &garbage, "-o", &path("g.onnx")]),
        "g.safetensors: not a safetensors file",
    );
    assert_error_line(
        &mnist(&["eval", "--model", &garbage]),
        "g.safetensors: not a safetensors file",
    );
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "g.safetensors")
        .collect();
    assert_eq!(before, after);
}
