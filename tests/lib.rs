//! Helpers shared by the end-to-end tests: tiny MNIST-layout datasets made
//! on the spot, and the path of the `mnist` binary.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Bytes of an IDX file of unsigned bytes with the given dimensions.
pub fn idx_u8(dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// A small deterministic generator (xorshift), so fixtures need no crate.
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` 28x28 images a linear model can learn: image `i` has label `i % 10`
/// and a bright 4x4 block at a position that depends on the label, over
/// faint noise.
pub fn synthetic_images(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut pixels = vec![0u8; n * 784];
    let mut labels = Vec::with_capacity(n);
    for (i, image) in pixels.chunks_exact_mut(784).enumerate() {
        let label = (i % 10) as u8;
        for p in image.iter_mut() {
            *p = (rng.next_u64() % 40) as u8;
        }
        let (r0, c0) = (
            2 + 5 * (usize::from(label) / 5) * 2,
            2 + 5 * (usize::from(label) % 5),
        );
        for r in r0..r0 + 4 {
            for c in c0..c0 + 4 {
                image[r * 28 + c] = 200 + (rng.next_u64() % 56) as u8;
            }
        }
        labels.push(label);
    }
    (pixels, labels)
}

/// Writes an MNIST-layout folder with `n_train` and `n_test` synthetic
/// samples into `dir` (created if needed).
///
/// # Errors
/// Any error writing the files.
pub fn write_synthetic(dir: &Path, n_train: usize, n_test: usize) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for (prefix, n, seed) in [("train", n_train, 1), ("t10k", n_test, 2)] {
        let (pixels, labels) = synthetic_images(n, seed);
        fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            idx_u8(&[n as u32, 28, 28], &pixels),
        )?;
        fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            idx_u8(&[n as u32], &labels),
        )?;
    }
    Ok(())
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The real MNIST folder, `data/mnist` at the workspace root, for the tests
/// that train on it. They are `#[ignore]`d, so that a plain `cargo test`
/// works without the data; `cargo xtask ci` fetches the data and runs them.
///
/// # Panics
/// When the data is not there, with one line that says how to fetch it.
pub fn real_mnist_dir() -> PathBuf {
    let dir = workspace_root().join("data/mnist");
    if let Err(message) = check_mnist_dir(&dir) {
        panic!("{message}");
    }
    dir
}

/// Whether `dir` holds the four MNIST files; if not, one line naming the
/// first one missing and how to fetch them.
///
/// # Errors
/// That line.
pub fn check_mnist_dir(dir: &Path) -> Result<(), String> {
    let files = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];
    match files.iter().find(|f| !dir.join(f).is_file()) {
        Some(missing) => Err(format!(
            "{} has no {missing}: run `cargo xtask fetch-data` to fetch the MNIST data",
            dir.display()
        )),
        None => Ok(()),
    }
}

/// The `mnist` binary that `cargo test --workspace` built beside this test
/// binary (mnist-cli's own integration tests make cargo build it).
///
/// # Errors
/// When it is not there, with a message that says how to build it.
pub fn mnist_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/<test> -> target/<profile>/mnist
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    let bin = dir.join(format!("mnist{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: run the tests with `cargo test --workspace` (which builds it) or `cargo build -p mnist-cli` first",
            bin.display()
        ))
    }
}

/// A command's standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A command's standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts the shape of every rejection: a non-zero exit, no panic, and one
/// `error: ` line on standard error that contains `needle`.
///
/// # Panics
/// When any of that does not hold: this is a test helper.
pub fn assert_error_line(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

/// CRC-32 (ISO-HDLC, as PNG chunks use), bit by bit.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header declares a `width` x `height` grayscale image, with
/// only a few bytes of pixel data: enough for a decoder to read the header,
/// never enough to decode.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8; 4], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit gray, no interlace
    chunk(b"IHDR", &ihdr);
    // A zlib header, then a final stored block of four bytes.
    chunk(b"IDAT", &[0x78, 0x01, 0x01, 4, 0, !4, 0xff, 0, 0, 0, 0]);
    chunk(b"IEND", &[]);
    png
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_data_is_one_line_saying_how_to_fetch_it() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let message = check_mnist_dir(dir.path())
            .err()
            .ok_or("no data accepted")?;
        assert_eq!(
            message,
            format!(
                "{} has no train-images-idx3-ubyte: run `cargo xtask fetch-data` to fetch the MNIST data",
                dir.path().display()
            )
        );
        for name in [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
        ] {
            fs::write(dir.path().join(name), b"")?;
        }
        let message = check_mnist_dir(dir.path())
            .err()
            .ok_or("3 files accepted")?;
        assert!(message.contains("has no t10k-labels-idx1-ubyte: run `cargo xtask fetch-data`"));
        fs::write(dir.path().join("t10k-labels-idx1-ubyte"), b"")?;
        assert_eq!(check_mnist_dir(dir.path()), Ok(()));
        Ok(())
    }
}
