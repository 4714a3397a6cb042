//! `mnist plot` and `mnist errors` end to end on a report and a model made
//! here from synthetic data: the pictures are valid, not empty, and every
//! rejected input says what is wrong in one line.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mnist_e2e::{stderr, write_synthetic};

fn mnist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(args)
        .output()
        .unwrap()
}

use mnist_e2e::assert_error_line as assert_rejected;

struct Run {
    dir: tempfile::TempDir,
    data: PathBuf,
    model: PathBuf,
    report: PathBuf,
}

impl Run {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A short training run on synthetic digits, with its model and report.
fn run() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic(&data, 1000, 200).unwrap();
    let model = dir.path().join("model.json");
    let report = dir.path().join("report.json");
    let o = mnist(&[
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--init",
        "zeros",
        "--warmup",
        "0:1",
        "--lr-max",
        "0.5",
        "--lr-min",
        "0.05",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--log-every",
        "0",
        "--save",
        model.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    Run {
        dir,
        data,
        model,
        report,
    }
}

/// A PNG that decodes, of at least `w` x `h` pixels, and not one colour.
fn assert_png(path: &Path, w: u32, h: u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{}",
        path.display()
    );
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert!(
        img.width() >= w && img.height() >= h,
        "{:?}",
        img.dimensions()
    );
    let first = img.get_pixel(0, 0);
    let other = img.pixels().filter(|p| *p != first).count();
    assert!(other > 1000, "{}: nearly blank", path.display());
}

/// An SVG document with drawing and text in it.
fn assert_svg(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let trimmed = text.trim();
    assert!(trimmed.starts_with("<svg"), "{}", &trimmed[..80]);
    assert!(trimmed.ends_with("</svg>"));
    assert_eq!(
        text.matches("<text").count(),
        text.matches("</text>").count()
    );
    assert!(text.len() > 5000, "{} bytes", text.len());
    text
}

#[test]
fn training_curves_as_svg_and_png() {
    let r = run();
    let report = r.report.to_str().unwrap();
    let svg = r.path("curves.svg");
    let o = mnist(&["plot", report, "-o", svg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = assert_svg(&svg);
    for title in [
        "training loss per iteration",
        "validation accuracy per epoch",
        "loss per epoch",
        "learning rate per epoch",
    ] {
        assert!(text.contains(title), "{title}");
    }
    assert!(text.contains("<polyline"));

    let png = r.path("curves.png");
    let o = mnist(&["plot", report, "--output", png.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_png(&png, 800, 600);
}

#[test]
fn confusion_matrix_as_png_and_svg_from_train_and_eval_reports() {
    let r = run();
    let png = r.path("confusion.png");
    let o = mnist(&[
        "plot",
        r.report.to_str().unwrap(),
        "--confusion",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_png(&png, 400, 400);

    let eval = r.path("eval.json");
    let o = mnist(&[
        "eval",
        "--model",
        r.model.to_str().unwrap(),
        "--data-dir",
        r.data.to_str().unwrap(),
        "--report",
        eval.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = r.path("confusion.svg");
    let o = mnist(&[
        "plot",
        eval.to_str().unwrap(),
        "--confusion",
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = assert_svg(&svg);
    assert!(text.contains("test confusion matrix"));
    // 200 test samples, 20 of each class: the diagonal's counts are there.
    assert!(
        text.lines().any(|l| l.trim() == "20" || l.trim() == "19"),
        "no counts"
    );

    // An eval report has no training curves.
    assert_rejected(
        &mnist(&[
            "plot",
            eval.to_str().unwrap(),
            "-o",
            r.path("x.svg").to_str().unwrap(),
        ]),
        "eval.json: no `epochs` in the report",
    );
}

/// A model file of 785x10 deterministic pseudo-random weights.
fn random_model() -> serde_json::Value {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let weights: Vec<Vec<f64>> = (0..785)
        .map(|_| {
            (0..10)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 2001) as f64 / 1000.0 - 1.0
                })
                .collect()
        })
        .collect();
    serde_json::json!({
        "format": "mnist-model",
        "version": 1,
        "activation": "sigmoid",
        "features": 785,
        "classes": 10,
        "weights": weights,
    })
}

#[test]
fn misclassified_digits_as_a_grid() {
    let r = run();
    let png = r.path("errors.png");
    // The trained model gets the synthetic digits right; a model of random
    // weights gets most wrong, which fills the grid.
    let random = r.path("random.json");
    std::fs::write(&random, random_model().to_string()).unwrap();
    let o = mnist(&[
        "errors",
        "--model",
        random.to_str().unwrap(),
        "--data-dir",
        r.data.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "--max",
        "25",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("test digits misclassified"), "{out}");
    assert_png(&png, 300, 100);

    let data = r.data.to_str().unwrap();
    let m = r.model.to_str().unwrap();
    assert_rejected(
        &mnist(&[
            "errors",
            "--model",
            m,
            "--data-dir",
            data,
            "-o",
            r.path("e.svg").to_str().unwrap(),
        ]),
        "-o",
    );
    assert_rejected(
        &mnist(&[
            "errors",
            "--model",
            m,
            "--data-dir",
            data,
            "-o",
            png.to_str().unwrap(),
            "--max",
            "0",
        ]),
        "--max 0",
    );
    assert_rejected(
        &mnist(&[
            "errors",
            "--model",
            r.path("missing.json").to_str().unwrap(),
            "--data-dir",
            data,
            "-o",
            png.to_str().unwrap(),
        ]),
        "missing.json",
    );
}

#[test]
fn bad_reports_and_outputs_are_one_line_errors() {
    let r = run();
    let out = r.path("out.svg");
    let out = out.to_str().unwrap();
    let plot = |report: &Path, extra: &[&str]| {
        let mut args = vec!["plot", report.to_str().unwrap(), "-o", out];
        args.extend_from_slice(extra);
        mnist(&args)
    };

    let not_json = r.path("not-json.json");
    std::fs::write(&not_json, "epochs: 3").unwrap();
    assert_rejected(
        &plot(&not_json, &[]),
        "not-json.json: not a report of `mnist train --report`",
    );

    let empty = r.path("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    assert_rejected(&plot(&empty, &[]), "empty.json: no `epochs` in the report");
    assert_rejected(
        &plot(&empty, &["--confusion"]),
        "empty.json: no `test` in the report",
    );

    let full: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&r.report).unwrap()).unwrap();
    let mut partial = full.clone();
    partial["epochs"][0]
        .as_object_mut()
        .unwrap()
        .remove("val_loss");
    let broken = r.path("broken.json");
    std::fs::write(&broken, partial.to_string()).unwrap();
    assert_rejected(&plot(&broken, &[]), "missing field `val_loss`");
    assert_rejected(&plot(&broken, &[]), "broken.json");

    let mut partial = full.clone();
    partial.as_object_mut().unwrap().remove("iterations");
    std::fs::write(&broken, partial.to_string()).unwrap();
    assert_rejected(&plot(&broken, &[]), "no `iterations` in the report");

    let mut partial = full;
    partial["test"]["confusion"]
        .as_array_mut()
        .unwrap()
        .truncate(3);
    std::fs::write(&broken, partial.to_string()).unwrap();
    assert_rejected(
        &plot(&broken, &["--confusion"]),
        "`test.confusion` is not a 10x10 matrix",
    );

    assert_rejected(&plot(&r.path("missing.json"), &[]), "cannot read");
    assert_rejected(
        &mnist(&[
            "plot",
            r.report.to_str().unwrap(),
            "-o",
            r.path("curves.pdf").to_str().unwrap(),
        ]),
        "-o",
    );
    assert_rejected(
        &mnist(&[
            "plot",
            r.report.to_str().unwrap(),
            "-o",
            r.path("no-such-dir/curves.svg").to_str().unwrap(),
        ]),
        "curves.svg",
    );
    assert!(!Path::new(out).exists());
}
