use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mnist_idx::{Images, Labels};

use crate::error::{Error, Result};

/// Number of classes in MNIST and Fashion-MNIST.
pub const CLASSES: usize = 10;

/// The two parts of an MNIST-layout directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`.
    Train,
    /// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`.
    Test,
}

impl Part {
    /// File names of the images and labels, as in the original distribution.
    pub fn file_names(self) -> (&'static str, &'static str) {
        match self {
            Part::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            Part::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        }
    }

    /// Paths of the images and labels files inside `dir`.
    pub fn paths(self, dir: &Path) -> (PathBuf, PathBuf) {
        let (images, labels) = self.file_names();
        (dir.join(images), dir.join(labels))
    }
}

/// Images with their labels, every label checked to be a class.
///
/// The pixels stay where [`mnist_idx`] put them (normally a memory map): a
/// dataset copies nothing up front. Features are made batch by batch by a
/// [`Loader`](crate::Loader), or all at once by
/// [`Loader::features_of`](crate::Loader::features_of) when asked.
#[derive(Debug)]
pub struct Dataset {
    images: Images,
    labels: Labels,
    classes: usize,
    /// A number no other dataset of this process has.
    id: u64,
}

/// A dataset number not given out yet.
fn fresh_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Dataset {
    /// Pairs `images` with `labels`.
    ///
    /// # Errors
    /// [`mnist_idx::Error::CountMismatch`] when the counts differ,
    /// [`Error::Empty`] for no samples, [`Error::LabelOutOfRange`] for a
    /// label that is not below `classes`.
    pub fn new(images: Images, labels: Labels, classes: usize) -> Result<Self> {
        let (images, labels) = mnist_idx::pair(images, labels)?;
        if images.is_empty() {
            return Err(Error::Empty {
                path: images.path().to_path_buf(),
            });
        }
        if let Some((index, &label)) = labels
            .as_slice()
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::from(l) >= classes)
        {
            return Err(Error::LabelOutOfRange {
                path: labels.path().to_path_buf(),
                index,
                label,
                classes,
            });
        }
        Ok(Self {
            images,
            labels,
            classes,
            id: fresh_id(),
        })
    }

    /// Opens one part of an MNIST-layout directory, with 10 classes.
    ///
    /// # Errors
    /// Any error of [`mnist_idx::open_pair`] or [`Dataset::new`].
    pub fn open(dir: impl AsRef<Path>, part: Part) -> Result<Self> {
        let (images, labels) = part.paths(dir.as_ref());
        let (images, labels) = mnist_idx::open_pair(images, labels)?;
        Self::new(images, labels, CLASSES)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Always false: an empty dataset is rejected when built.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// A number that names this dataset among those made by this process:
    /// two datasets never have the same, so that keys of rows built from it
    /// ([`LazyBatch::rows_key`](crate::LazyBatch::rows_key)) cannot mix up
    /// datasets.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.images.pixels_per_image()
    }

    /// The images.
    pub fn images(&self) -> &Images {
        &self.images
    }

    /// All labels, one per sample.
    pub fn labels(&self) -> &[u8] {
        self.labels.as_slice()
    }

    /// Sample `index`: its pixels and its label.
    pub fn get(&self, index: usize) -> Option<(&[u8], u8)> {
        Some((self.images.image(index)?, self.labels.get(index)?))
    }
}

/// Writes the one-hot encoding of `labels` into `out`, `labels.len()` rows of
/// `classes` values, row-major.
///
/// # Panics
/// When `out` is not `labels.len() * classes` long or a label is not below
/// `classes`: a [`Dataset`] has checked its labels.
pub fn one_hot_into(labels: &[u8], classes: usize, out: &mut [f32]) {
    assert_eq!(out.len(), labels.len() * classes, "one-hot buffer size");
    out.fill(0.0);
    for (row, &label) in out.chunks_exact_mut(classes).zip(labels) {
        row[usize::from(label)] = 1.0;
    }
}
