//! `synth`: a larger MNIST-format training set made by distorting the real
//! one, to measure how training scales with the number of samples.
//!
//! Every output image is a source image (cycling through the source set)
//! moved by up to two pixels and put through a small random affine map
//! (rotation, scale, shear), sampled bilinearly. The output is written in
//! chunks of [`CHUNK`] images; chunk `c` draws its distortions from
//! `ChaCha8Rng` seeded with the seed on stream `c`, so the bytes depend on
//! the seed (and the chunk size) only, not on the number of threads.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{bail, Context as _};
use mnist_fetch::PieceWriter;
use mnist_idx::{open_pair, Images, Labels, IMAGES_MAGIC, LABELS_MAGIC};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fetch::workspace_root;
use crate::progress::{bytes, Progress};

/// Images per chunk: the unit of work of a thread and of the RNG streams.
pub const CHUNK: usize = 4096;

/// Largest shift, in pixels, along each axis.
pub const MAX_SHIFT: f32 = 2.0;
/// Largest rotation, in degrees, either way.
pub const MAX_ROTATION_DEG: f32 = 10.0;
/// Smallest and largest scale factor.
pub const SCALE_RANGE: (f32, f32) = (0.9, 1.1);
/// Largest horizontal shear factor, either way.
pub const MAX_SHEAR: f32 = 0.1;

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_FILES: [&str; 2] = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// What `cargo xtask synth` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Number of training images to write.
    pub samples: usize,
    /// Output folder (created if missing); gets the four MNIST files.
    pub out_dir: PathBuf,
    /// Seed of the distortions.
    pub seed: u64,
    /// Folder with the four decompressed MNIST files to start from.
    pub source_dir: PathBuf,
    /// Worker threads; the output does not depend on this.
    pub threads: usize,
    /// Images per chunk, [`CHUNK`] by default; the output depends on it.
    pub chunk: usize,
    /// Status lines on stderr or not.
    pub progress: Progress,
}

impl Options {
    /// `samples` images from `data/mnist` into `out_dir`, seed 0, one thread
    /// per core.
    pub fn new(samples: usize, out_dir: impl Into<PathBuf>) -> Self {
        Self {
            samples,
            out_dir: out_dir.into(),
            seed: 0,
            source_dir: workspace_root().join("data").join("mnist"),
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            chunk: CHUNK,
            progress: Progress::Plain,
        }
    }

    /// Checks the settings before anything is read or written.
    ///
    /// # Errors
    ///
    /// No samples, more than an IDX header can count, no threads, or the
    /// output folder is the source folder.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.samples == 0 {
            bail!("--samples must be at least 1");
        }
        if u32::try_from(self.samples).is_err() {
            bail!(
                "--samples {}: an IDX file counts at most {} items",
                self.samples,
                u32::MAX
            );
        }
        if self.threads == 0 {
            bail!("--threads must be at least 1");
        }
        if self.chunk == 0 {
            bail!("chunk size must be at least 1");
        }
        if let (Ok(a), Ok(b)) = (
            fs::canonicalize(&self.out_dir),
            fs::canonicalize(&self.source_dir),
        ) {
            if a == b {
                bail!(
                    "--out {} is the source folder: pick another one",
                    self.out_dir.display()
                );
            }
        }
        Ok(())
    }
}

/// What [`synth`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The output folder.
    pub dir: PathBuf,
    /// Training images written (and validated).
    pub samples: usize,
    /// Size of the training images file in bytes.
    pub images_bytes: u64,
    /// Test images copied.
    pub test_samples: usize,
}

/// One image's distortion: where a pixel of the output comes from is
/// `c + M⁻¹ (p - c - shift)` with `M = rotation · scale · shear` and `c` the
/// image's centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distortion {
    /// Shift along columns, in pixels.
    pub dx: f32,
    /// Shift along rows, in pixels.
    pub dy: f32,
    /// Rotation in degrees.
    pub rotation_deg: f32,
    /// Scale factor, 1 = unchanged.
    pub scale: f32,
    /// Horizontal shear factor, 0 = none.
    pub shear: f32,
}

impl Distortion {
    /// No change at all.
    pub const IDENTITY: Self = Self {
        dx: 0.0,
        dy: 0.0,
        rotation_deg: 0.0,
        scale: 1.0,
        shear: 0.0,
    };

    /// A shift only.
    pub fn shift(dx: f32, dy: f32) -> Self {
        Self {
            dx,
            dy,
            ..Self::IDENTITY
        }
    }

    /// A random distortion within the module's bounds.
    pub fn random(rng: &mut impl Rng) -> Self {
        Self {
            dx: rng.gen_range(-MAX_SHIFT..=MAX_SHIFT),
            dy: rng.gen_range(-MAX_SHIFT..=MAX_SHIFT),
            rotation_deg: rng.gen_range(-MAX_ROTATION_DEG..=MAX_ROTATION_DEG),
            scale: rng.gen_range(SCALE_RANGE.0..=SCALE_RANGE.1),
            shear: rng.gen_range(-MAX_SHEAR..=MAX_SHEAR),
        }
    }

    /// The inverse of `M` as `[a, b, c, d]` (row-major 2x2).
    fn inverse_matrix(&self) -> [f32; 4] {
        let (sin, cos) = self.rotation_deg.to_radians().sin_cos();
        let s = self.scale;
        let k = self.shear;
        // M = R · sI · [[1, k], [0, 1]] = s · [[cos, cos·k - sin], [sin, sin·k + cos]]
        let (m00, m01, m10, m11) = (s * cos, s * (cos * k - sin), s * sin, s * (sin * k + cos));
        // det M = s² (rotation and shear have determinant 1).
        let det = m00 * m11 - m01 * m10;
        let inv = if det.abs() > f32::EPSILON {
            1.0 / det
        } else {
            0.0
        };
        [m11 * inv, -m01 * inv, -m10 * inv, m00 * inv]
    }
}

/// Writes `src` (`rows x cols` pixels) distorted by `d` into `out`, sampling
/// bilinearly; pixels that come from outside the image are 0.
///
/// # Panics
///
/// If `src` or `out` is shorter than `rows * cols`.
pub fn distort(src: &[u8], rows: usize, cols: usize, d: &Distortion, out: &mut [u8]) {
    let src = &src[..rows * cols];
    let out = &mut out[..rows * cols];
    let [a, b, c, e] = d.inverse_matrix();
    let cx = (cols as f32 - 1.0) / 2.0;
    let cy = (rows as f32 - 1.0) / 2.0;
    let pixel = |x: isize, y: isize| -> f32 {
        if x < 0 || y < 0 || x >= cols as isize || y >= rows as isize {
            0.0
        } else {
            f32::from(src[y as usize * cols + x as usize])
        }
    };
    for (y, row) in out.chunks_exact_mut(cols).enumerate() {
        let oy = y as f32 - cy - d.dy;
        for (x, value) in row.iter_mut().enumerate() {
            let ox = x as f32 - cx - d.dx;
            let sx = a * ox + b * oy + cx;
            let sy = c * ox + e * oy + cy;
            let (fx, fy) = (sx.floor(), sy.floor());
            let (wx, wy) = (sx - fx, sy - fy);
            let (x0, y0) = (fx as isize, fy as isize);
            let top = pixel(x0, y0) * (1.0 - wx) + pixel(x0 + 1, y0) * wx;
            let bottom = pixel(x0, y0 + 1) * (1.0 - wx) + pixel(x0 + 1, y0 + 1) * wx;
            let v = top * (1.0 - wy) + bottom * wy;
            // In [0, 255] by construction; the clamp guards rounding.
            *value = v.round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// Writes `options.samples` distorted training images with their labels and
/// a copy of the test set into `options.out_dir`, then checks that they open.
///
/// Files are written to temporary names in the output folder and renamed at
/// the end, so a final name never holds a partial file.
///
/// # Errors
///
/// Invalid options, an unreadable source, a write that fails, or output that
/// does not validate.
pub fn synth(options: &Options) -> anyhow::Result<Report> {
    options.check()?;
    let src_dir = &options.source_dir;
    let (images, labels) = open_pair(src_dir.join(TRAIN_IMAGES), src_dir.join(TRAIN_LABELS))
        .with_context(|| format!("source {}", src_dir.display()))?;
    if images.is_empty() {
        bail!("source {} holds no training images", src_dir.display());
    }
    for name in TEST_FILES {
        let path = src_dir.join(name);
        if !path.is_file() {
            bail!("source {}: {name} not found", src_dir.display());
        }
    }
    let out = &options.out_dir;
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let pixels = images.rows() * images.cols();
    let images_bytes = (options.samples as u64)
        .checked_mul(pixels as u64)
        .and_then(|n| n.checked_add(16))
        .context("output size overflows")?;
    options.progress.line(&format!(
        "synth: {} images of {}x{} from {} source images into {} ({})",
        options.samples,
        images.rows(),
        images.cols(),
        images.len(),
        out.display(),
        bytes(images_bytes)
    ));

    let mut temps = TempFiles::default();
    let images_tmp = temps.add(out, TRAIN_IMAGES);
    let labels_tmp = temps.add(out, TRAIN_LABELS);
    write_train(options, &images, &labels, &images_tmp, &labels_tmp)?;
    let mut finals = vec![(images_tmp, out.join(TRAIN_IMAGES))];
    finals.push((labels_tmp, out.join(TRAIN_LABELS)));
    for name in TEST_FILES {
        let tmp = temps.add(out, name);
        fs::copy(src_dir.join(name), &tmp)
            .with_context(|| format!("cannot copy {} to {}", name, tmp.display()))?;
        finals.push((tmp, out.join(name)));
    }
    for (tmp, path) in &finals {
        fs::rename(tmp, path).with_context(|| format!("cannot rename to {}", path.display()))?;
    }
    temps.commit();

    let (written, written_labels) =
        open_pair(out.join(TRAIN_IMAGES), out.join(TRAIN_LABELS)).context("output")?;
    if written.len() != options.samples || written_labels.len() != options.samples {
        bail!(
            "{}: expected {} images, found {}",
            out.display(),
            options.samples,
            written.len()
        );
    }
    let (test, _) =
        open_pair(out.join(TEST_FILES[0]), out.join(TEST_FILES[1])).context("output test set")?;
    options.progress.line(&format!(
        "synth: wrote and checked {} training and {} test images in {}",
        written.len(),
        test.len(),
        out.display()
    ));
    Ok(Report {
        dir: out.clone(),
        samples: written.len(),
        images_bytes,
        test_samples: test.len(),
    })
}

/// One chunk's output: its images and labels.
type Chunk = (Vec<u8>, Vec<u8>);

fn make_chunk(chunk: usize, options: &Options, images: &Images, labels: &Labels) -> Chunk {
    let pixels = images.rows() * images.cols();
    let start = chunk * options.chunk;
    let end = (start + options.chunk).min(options.samples);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    rng.set_stream(chunk as u64);
    let mut out = vec![0; (end - start) * pixels];
    let mut out_labels = Vec::with_capacity(end - start);
    for (i, dst) in (start..end).zip(out.chunks_exact_mut(pixels)) {
        let source = i % images.len();
        let d = Distortion::random(&mut rng);
        // `source < images.len()` and labels pair with images (open_pair).
        if let (Some(src), Some(label)) = (images.image(source), labels.get(source)) {
            distort(src, images.rows(), images.cols(), &d, dst);
            out_labels.push(label);
        }
    }
    (out, out_labels)
}

fn write_train(
    options: &Options,
    images: &Images,
    labels: &Labels,
    images_path: &Path,
    labels_path: &Path,
) -> anyhow::Result<()> {
    let create = |path: &Path| {
        File::create(path)
            .map(PieceWriter::new)
            .with_context(|| format!("cannot create {}", path.display()))
    };
    let mut image_out = create(images_path)?;
    let mut label_out = create(labels_path)?;
    let count = u32::try_from(options.samples).context("too many samples")?;
    let rows = u32::try_from(images.rows()).context("too many rows")?;
    let cols = u32::try_from(images.cols()).context("too many columns")?;
    let write_err = |path: &Path| format!("cannot write {}", path.display());
    for word in [IMAGES_MAGIC, count, rows, cols] {
        image_out
            .write_all(&word.to_be_bytes())
            .with_context(|| write_err(images_path))?;
    }
    for word in [LABELS_MAGIC, count] {
        label_out
            .write_all(&word.to_be_bytes())
            .with_context(|| write_err(labels_path))?;
    }

    let chunks = options.samples.div_ceil(options.chunk);
    let threads = options.threads.min(chunks).max(1);
    let every = (chunks / 10).max(1);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        // One bounded channel per worker, read in chunk order: the output
        // order is fixed and at most two chunks per worker wait in memory.
        let mut receivers = Vec::with_capacity(threads);
        for worker in 0..threads {
            let (tx, rx) = mpsc::sync_channel::<Chunk>(2);
            receivers.push(rx);
            scope.spawn(move || {
                for chunk in (worker..chunks).step_by(threads) {
                    if tx.send(make_chunk(chunk, options, images, labels)).is_err() {
                        // The writer stopped on an error.
                        return;
                    }
                }
            });
        }
        for chunk in 0..chunks {
            let (pixels, chunk_labels) = receivers
                .get(chunk % threads)
                .and_then(|rx| rx.recv().ok())
                .context("a synth worker stopped early")?;
            image_out
                .write_all(&pixels)
                .with_context(|| write_err(images_path))?;
            label_out
                .write_all(&chunk_labels)
                .with_context(|| write_err(labels_path))?;
            if (chunk + 1) % every == 0 && chunk + 1 < chunks {
                options.progress.line(&format!(
                    "synth: {} / {} images",
                    (chunk + 1) * options.chunk,
                    options.samples
                ));
            }
        }
        Ok(())
    })?;
    for (out, path) in [(image_out, images_path), (label_out, labels_path)] {
        let file = out.finish().with_context(|| write_err(path))?;
        file.sync_all().with_context(|| write_err(path))?;
    }
    Ok(())
}

/// Temporary files removed on drop unless committed.
#[derive(Debug, Default)]
struct TempFiles {
    paths: Vec<PathBuf>,
}

impl TempFiles {
    fn add(&mut self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!(".{name}.part-{}", std::process::id()));
        self.paths.push(path.clone());
        path
    }

    fn commit(&mut self) {
        self.paths.clear();
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob() -> Vec<u8> {
        let mut image = vec![0u8; 28 * 28];
        for y in 8..20 {
            for x in 10..18 {
                image[y * 28 + x] = 200;
            }
        }
        image
    }

    fn mass(image: &[u8]) -> u64 {
        image.iter().map(|&p| u64::from(p)).sum()
    }

    #[test]
    fn identity_copies() {
        let src = blob();
        let mut out = vec![0; src.len()];
        distort(&src, 28, 28, &Distortion::IDENTITY, &mut out);
        assert_eq!(out, src);
    }

    #[test]
    fn integer_shift_moves_pixels() {
        let src = blob();
        let mut out = vec![0; src.len()];
        distort(&src, 28, 28, &Distortion::shift(2.0, -1.0), &mut out);
        assert_eq!(out[7 * 28 + 12], 200);
        assert_eq!(out[7 * 28 + 11], 0);
        assert_eq!(out[18 * 28 + 19], 200);
        assert_eq!(out[19 * 28 + 19], 0);
        assert_eq!(mass(&out), mass(&src));
    }

    #[test]
    fn random_distortions_keep_mass_roughly() {
        let src = blob();
        let mut out = vec![0; src.len()];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..200 {
            let d = Distortion::random(&mut rng);
            assert!(d.dx.abs() <= MAX_SHIFT && d.dy.abs() <= MAX_SHIFT);
            assert!((SCALE_RANGE.0..=SCALE_RANGE.1).contains(&d.scale));
            distort(&src, 28, 28, &d, &mut out);
            // Area changes by scale², at most 0.81 to 1.21.
            let ratio = mass(&out) as f64 / mass(&src) as f64;
            assert!((0.75..1.3).contains(&ratio), "{d:?}: {ratio}");
        }
    }

    #[test]
    fn options_are_checked() {
        let mut options = Options::new(0, "out");
        assert!(options.check().is_err());
        options.samples = usize::MAX;
        assert!(options.check().is_err());
        options.samples = 10;
        options.threads = 0;
        assert!(options.check().is_err());
        options.threads = 1;
        assert!(options.check().is_ok());
    }
}
