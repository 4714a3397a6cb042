//! `mnist predict` end to end: pictures made from dataset digits, scaled,
//! inverted, moved off centre and saved as PNG and JPEG, must get the same
//! prediction as the digits themselves; and every rejected input.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mnist_e2e::{idx_u8, png_declaring, stderr, stdout, XorShift};
use serde_json::Value;

fn mnist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mnist"))
        .args(args)
        .output()
        .unwrap()
}

use mnist_e2e::assert_error_line as assert_rejected;

/// Segments of a seven-segment display lit for each digit:
/// top, top right, bottom right, bottom, bottom left, top left, middle.
const SEGMENTS: [[bool; 7]; 10] = [
    [true, true, true, true, true, true, false],
    [false, true, true, false, false, false, false],
    [true, true, false, true, true, false, true],
    [true, true, true, true, false, false, true],
    [false, true, true, false, false, true, true],
    [true, false, true, true, false, true, true],
    [true, false, true, true, true, true, true],
    [true, true, true, false, false, false, false],
    [true, true, true, true, true, true, true],
    [true, true, true, true, false, true, true],
];

/// A seven-segment digit made as MNIST digits were: drawn in a box 20
/// pixels high, then placed with its centre of mass at the centre of the
/// 28x28 field, here give or take a pixel so the model learns some slack.
fn segment_digit(label: usize, rng: &mut XorShift) -> [u8; 784] {
    let ink = 200 + (rng.next_u64() % 56) as u8;
    let mut glyph = [[0u8; 12]; 20];
    let lit = SEGMENTS[label];
    let mut fill = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
        for r in rows {
            for c in cols.clone() {
                glyph[r][c] = ink;
            }
        }
    };
    if lit[0] {
        fill(0..3, 0..12);
    }
    if lit[1] {
        fill(0..11, 9..12);
    }
    if lit[2] {
        fill(9..20, 9..12);
    }
    if lit[3] {
        fill(17..20, 0..12);
    }
    if lit[4] {
        fill(9..20, 0..3);
    }
    if lit[5] {
        fill(0..11, 0..3);
    }
    if lit[6] {
        fill(9..11, 0..12);
    }
    let (mut mass, mut mx, mut my) = (0.0, 0.0, 0.0);
    for (r, row) in glyph.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            mass += f64::from(v);
            mx += f64::from(v) * c as f64;
            my += f64::from(v) * r as f64;
        }
    }
    let jitter = |rng: &mut XorShift| (rng.next_u64() % 3) as i64 - 1;
    let dx = (14.0 - mx / mass).round() as i64 + jitter(rng);
    let dy = (14.0 - my / mass).round() as i64 + jitter(rng);
    let mut out = [0u8; 784];
    for (r, row) in glyph.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            let (x, y) = (c as i64 + dx, r as i64 + dy);
            if (0..28).contains(&x) && (0..28).contains(&y) {
                out[(y * 28 + x) as usize] = v;
            }
        }
    }
    out
}

/// An MNIST-layout folder of seven-segment digits.
fn write_segment_data(dir: &Path, n_train: usize, n_test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, n, seed) in [("train", n_train, 11u64), ("t10k", n_test, 12)] {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut pixels = Vec::with_capacity(n * 784);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let label = i % 10;
            pixels.extend_from_slice(&segment_digit(label, &mut rng));
            labels.push(label as u8);
        }
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            idx_u8(&[n as u32, 28, 28], &pixels),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            idx_u8(&[n as u32], &labels),
        )
        .unwrap();
    }
}

/// Test image `index` of the folder.
fn test_digit(dir: &Path, index: usize) -> Vec<u8> {
    let bytes = std::fs::read(dir.join("t10k-images-idx3-ubyte")).unwrap();
    bytes[16 + index * 784..16 + (index + 1) * 784].to_vec()
}

/// The digit scaled up 5x, dark on a light background, off centre in a
/// larger canvas.
fn on_paper(digit: &[u8]) -> image::GrayImage {
    let (w, h) = (260u32, 190u32);
    let mut img = image::GrayImage::from_pixel(w, h, image::Luma([238]));
    for y in 0..140 {
        for x in 0..140 {
            let v = digit[(y / 5) * 28 + x / 5];
            let shade = 238 - (u32::from(v) * 220 / 255) as u8;
            img.put_pixel(x as u32 + 97, y as u32 + 12, image::Luma([shade]));
        }
    }
    img
}

fn save_jpeg(img: &image::GrayImage, path: &Path) {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(img)
        .unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Dark ink on a transparent background, as drawing programs save it.
fn save_transparent_png(img: &image::GrayImage, path: &Path) {
    let rgba = image::RgbaImage::from_fn(img.width(), img.height(), |x, y| {
        let v = img.get_pixel(x, y).0[0];
        if v >= 238 {
            image::Rgba([0, 0, 0, 0])
        } else {
            image::Rgba([v, v, v, 255])
        }
    });
    rgba.save(path).unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    model: PathBuf,
    root: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_segment_data(&data, 3000, 100);
    let model = dir.path().join("model.json");
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
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    Fixture {
        root: dir.path().to_path_buf(),
        _dir: dir,
        data,
        model,
    }
}

fn predictions(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", stderr(o));
    let doc: Value = serde_json::from_str(&stdout(o)).unwrap();
    doc["predictions"].as_array().unwrap().clone()
}

#[test]
fn pictures_of_digits_are_predicted_as_the_digits_themselves() {
    let f = fixture();
    let indices: Vec<usize> = (0..30).collect();
    let mut args = vec![
        "predict".to_string(),
        "--json".into(),
        "--model".into(),
        f.model.display().to_string(),
        "--data-dir".into(),
        f.data.display().to_string(),
    ];
    for &i in &indices {
        let paper = on_paper(&test_digit(&f.data, i));
        let png = f.root.join(format!("digit-{i}.png"));
        paper.save(&png).unwrap();
        let jpeg = f.root.join(format!("digit-{i}.jpg"));
        save_jpeg(&paper, &jpeg);
        let clear = f.root.join(format!("digit-{i}-transparent.png"));
        save_transparent_png(&paper, &clear);
        args.extend([png, jpeg, clear].map(|p| p.display().to_string()));
    }
    for &i in &indices {
        args.extend(["--index".to_string(), i.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let preds = predictions(&mnist(&args));
    assert_eq!(preds.len(), indices.len() * 4);
    let (files, originals) = preds.split_at(indices.len() * 3);

    let mut right = 0;
    for (k, original) in originals.iter().enumerate() {
        assert_eq!(original["source"]["test_index"], k);
        let label = original["label"].as_str().unwrap();
        if original["predicted"] == label {
            right += 1;
        }
        for file in &files[3 * k..3 * k + 3] {
            assert!(file["label"].is_null());
            assert_eq!(
                file["predicted"], original["predicted"],
                "{} and test image {k}",
                file["source"]["file"]
            );
        }
    }
    assert!(right >= 27, "the model learned too little: {right} of 30");

    for p in &preds {
        let sigmoid: Vec<f64> = serde_json::from_value(p["outputs"].clone()).unwrap();
        let normalized: Vec<f64> = serde_json::from_value(p["normalized"].clone()).unwrap();
        assert_eq!(sigmoid.len(), 10);
        assert!(sigmoid.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!((normalized.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        let best = p["predicted_class"].as_u64().unwrap() as usize;
        assert!(sigmoid.iter().all(|&v| v <= sigmoid[best]));
    }
}

#[test]
fn text_output_shows_both_probabilities_and_the_truth() {
    let f = fixture();
    let png = f.root.join("seven.png");
    on_paper(&test_digit(&f.data, 7)).save(&png).unwrap();
    let o = mnist(&[
        "predict",
        "--model",
        f.model.to_str().unwrap(),
        "--data-dir",
        f.data.to_str().unwrap(),
        png.to_str().unwrap(),
        "--index",
        "7",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("seven.png: predicted 7"), "{out}");
    assert!(
        out.contains("test image 7: predicted 7 (true 7, right)"),
        "{out}"
    );
    assert!(out.contains("sigmoid output"), "{out}");
    assert!(out.contains("normalized to sum 1"), "{out}");

    // Rejected inputs, each one line naming what is wrong.
    let model = f.model.to_str().unwrap();
    let data = f.data.to_str().unwrap();
    let missing = f.root.join("missing.png");
    assert_rejected(
        &mnist(&["predict", "--model", model, missing.to_str().unwrap()]),
        "missing.png",
    );
    let garbage = f.root.join("garbage.png");
    std::fs::write(&garbage, b"not a picture at all").unwrap();
    assert_rejected(
        &mnist(&["predict", "--model", model, garbage.to_str().unwrap()]),
        "garbage.png: not a PNG or JPEG image",
    );
    let blank = f.root.join("blank.png");
    image::GrayImage::from_pixel(64, 48, image::Luma([250]))
        .save(&blank)
        .unwrap();
    assert_rejected(
        &mnist(&["predict", "--model", model, blank.to_str().unwrap()]),
        "blank.png: no ink found",
    );
    assert_rejected(&mnist(&["predict", "--model", model]), "nothing to predict");
    assert_rejected(
        &mnist(&[
            "predict",
            "--model",
            model,
            "--data-dir",
            data,
            "--index",
            "100",
        ]),
        "--index 100: the test set has 100 images",
    );
    assert_rejected(
        &mnist(&[
            "predict",
            "--model",
            f.root.join("nope.json").to_str().unwrap(),
            png.to_str().unwrap(),
        ]),
        "nope.json",
    );
}

#[test]
fn a_picture_too_large_is_rejected_naming_the_limit() {
    let f = fixture();
    let model = f.model.to_str().unwrap();
    // 30000 x 30000 pixels: 900 million, in a file of a few dozen bytes.
    let huge = f.root.join("huge.png");
    std::fs::write(&huge, png_declaring(30_000, 30_000)).unwrap();
    assert_rejected(
        &mnist(&["predict", "--model", model, huge.to_str().unwrap()]),
        "huge.png: the image is too large: 30000 x 30000 pixels, more than the limit of 67108864 pixels (8192 x 8192)",
    );
    // The limit is on the pixels, not on either side.
    let long = f.root.join("long.png");
    std::fs::write(&long, png_declaring(65_536, 1_025)).unwrap();
    assert_rejected(
        &mnist(&["predict", "--model", model, long.to_str().unwrap()]),
        "long.png: the image is too large: 65536 x 1025 pixels",
    );
    // The header-only check stands in front of a real decoder: a picture
    // just within the limit gets to decoding (and fails there, its data
    // being one row).
    let within = f.root.join("within.png");
    std::fs::write(&within, png_declaring(65_536, 1_024)).unwrap();
    assert_rejected(
        &mnist(&["predict", "--model", model, within.to_str().unwrap()]),
        "within.png: not a PNG or JPEG image",
    );
}

/// On the real data: pictures made from the first test digits mostly agree
/// with the digits themselves. MNIST digits are not exactly what the
/// digitiser makes (their box is not always filled), so this asks for
/// agreement, not identity.
#[test]
#[ignore = "trains on the MNIST data: `cargo xtask ci` runs it"]
fn real_digits_mostly_survive_the_round_trip() {
    let data = mnist_e2e::real_mnist_dir();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.json");
    let o = mnist(&[
        "train",
        "--data-dir",
        data.to_str().unwrap(),
        "--log-every",
        "0",
        "--save",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let n = 100;
    let mut args = vec![
        "predict".to_string(),
        "--json".into(),
        "--model".into(),
        model.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    for i in 0..n {
        let png = dir.path().join(format!("{i}.png"));
        on_paper(&test_digit(&data, i)).save(&png).unwrap();
        args.push(png.display().to_string());
    }
    for i in 0..n {
        args.extend(["--index".to_string(), i.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let preds = predictions(&mnist(&args));
    let (files, originals) = preds.split_at(n);
    let agree = files
        .iter()
        .zip(originals)
        .filter(|(a, b)| a["predicted"] == b["predicted"])
        .count();
    let right = |ps: &[Value]| {
        ps.iter()
            .zip(originals)
            .filter(|(p, o)| p["predicted"] == o["label"])
            .count()
    };
    eprintln!(
        "{agree} of {n} agree; right: {} as pictures, {} as test images",
        right(files),
        right(originals)
    );
    assert!(agree >= 95, "{agree} of {n} agree");
}
