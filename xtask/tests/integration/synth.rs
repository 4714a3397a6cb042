//! `synth` on a tiny source dataset of 20 images made here.

use std::fs;
use std::path::Path;

use mnist_idx::{open_pair, Images};
use xtask::synth::{synth, Options};
use xtask::Progress;

use crate::fixture::TestResult;

const SOURCE: usize = 20;

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

/// Image `i` is a bright square whose size depends on `i`, away from the
/// border so that shifts keep it in the frame; label `i % 10`.
fn write_source(dir: &Path) -> std::io::Result<()> {
    let mut pixels = Vec::new();
    for i in 0..SOURCE {
        let half = 3 + i % 4;
        for y in 0..28usize {
            for x in 0..28usize {
                let inside = y.abs_diff(14) < half && x.abs_diff(14) < half;
                pixels.push(if inside { 250 } else { 0 });
            }
        }
    }
    let labels: Vec<u8> = (0..SOURCE).map(|i| (i % 10) as u8).collect();
    let n = SOURCE as u32;
    fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx(0x0803, &[n, 28, 28], &pixels),
    )?;
    fs::write(
        dir.join("train-labels-idx1-ubyte"),
        idx(0x0801, &[n], &labels),
    )?;
    fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx(0x0803, &[2, 28, 28], &pixels[..2 * 784]),
    )?;
    fs::write(
        dir.join("t10k-labels-idx1-ubyte"),
        idx(0x0801, &[2], &labels[..2]),
    )?;
    Ok(())
}

fn options(source: &Path, out: &Path, samples: usize) -> Options {
    let mut options = Options::new(samples, out);
    options.source_dir = source.to_path_buf();
    options.chunk = 7;
    options.threads = 3;
    options.seed = 42;
    options.progress = Progress::Quiet;
    options
}

fn mass(image: &[u8]) -> f64 {
    image.iter().map(|&p| f64::from(p)).sum()
}

#[test]
fn writes_a_valid_dataset_with_the_source_labels() -> TestResult {
    let dir = tempfile::tempdir()?;
    write_source(dir.path())?;
    let out = dir.path().join("synth");
    let report = synth(&options(dir.path(), &out, 45))?;
    assert_eq!((report.samples, report.test_samples), (45, 2));

    let (images, labels) = open_pair(
        out.join("train-images-idx3-ubyte"),
        out.join("train-labels-idx1-ubyte"),
    )?;
    assert_eq!((images.len(), images.rows(), images.cols()), (45, 28, 28));
    let expected: Vec<u8> = (0..45).map(|i| (i % SOURCE % 10) as u8).collect();
    assert_eq!(labels.as_slice(), &expected[..]);

    // Shifts of up to 2 pixels keep the square in the frame; the scale
    // changes its area by at most 0.9² to 1.1².
    let source = Images::open(dir.path().join("train-images-idx3-ubyte"))?;
    for i in 0..45 {
        let (Some(new), Some(old)) = (images.image(i), source.image(i % SOURCE)) else {
            return Err(format!("image {i} missing").into());
        };
        assert_ne!(new, old, "image {i} is not distorted");
        let ratio = mass(new) / mass(old);
        assert!(
            (0.75..1.3).contains(&ratio),
            "image {i}: mass ratio {ratio}"
        );
    }

    let (test, _) = open_pair(
        out.join("t10k-images-idx3-ubyte"),
        out.join("t10k-labels-idx1-ubyte"),
    )?;
    assert_eq!(test.len(), 2);
    // No temporary files are left behind.
    let names: Vec<String> = fs::read_dir(&out)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    Ok(())
}

#[test]
fn output_depends_on_the_seed_not_the_threads() -> TestResult {
    let dir = tempfile::tempdir()?;
    write_source(dir.path())?;
    let read = |name: &str| fs::read(dir.path().join(name).join("train-images-idx3-ubyte"));

    synth(&options(dir.path(), &dir.path().join("a"), 30))?;
    let mut one_thread = options(dir.path(), &dir.path().join("b"), 30);
    one_thread.threads = 1;
    synth(&one_thread)?;
    let mut other_seed = options(dir.path(), &dir.path().join("c"), 30);
    other_seed.seed = 43;
    synth(&other_seed)?;

    assert_eq!(read("a")?, read("b")?);
    assert_ne!(read("a")?, read("c")?);
    // Running again over an existing output gives the same bytes.
    synth(&options(dir.path(), &dir.path().join("a"), 30))?;
    assert_eq!(read("a")?, read("b")?);
    Ok(())
}

#[test]
fn bad_options_and_sources_are_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let missing = synth(&options(dir.path(), &out, 10)).map_err(|e| format!("{e:#}"));
    assert!(
        missing
            .as_ref()
            .is_err_and(|e| e.contains("train-images-idx3-ubyte")),
        "{missing:?}"
    );
    write_source(dir.path())?;
    let same = synth(&options(dir.path(), dir.path(), 10)).map_err(|e| format!("{e:#}"));
    assert!(
        same.as_ref()
            .is_err_and(|e| e.contains("is the source folder")),
        "{same:?}"
    );
    let none = synth(&options(dir.path(), &out, 0)).map_err(|e| e.to_string());
    assert_eq!(none.map(|_| ()), Err("--samples must be at least 1".into()));
    Ok(())
}
