use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::file::IdxFile;

/// Magic number of an MNIST images file: unsigned bytes, rank 3.
pub const IMAGES_MAGIC: u32 = 0x0803;
/// Magic number of an MNIST labels file: unsigned bytes, rank 1.
pub const LABELS_MAGIC: u32 = 0x0801;

/// A validated images file: `n` images of `rows x cols` unsigned bytes,
/// row-major, read straight from the file's bytes without copying.
#[derive(Debug)]
pub struct Images {
    file: IdxFile,
    len: usize,
    rows: usize,
    cols: usize,
}

impl Images {
    /// Opens (memory-maps) an images file.
    ///
    /// # Errors
    /// Any error of [`IdxFile::open`], or [`Error::WrongMagic`] when the file
    /// is not an images file (magic 2051).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file(IdxFile::open(path)?)
    }

    /// Validates images held in memory; `name` is used in error messages.
    ///
    /// # Errors
    /// As [`Images::open`], for the bytes.
    pub fn from_bytes(bytes: Vec<u8>, name: impl Into<PathBuf>) -> Result<Self> {
        Self::from_file(IdxFile::from_bytes(bytes, name)?)
    }

    /// Views an already validated IDX file as images.
    ///
    /// # Errors
    /// [`Error::WrongMagic`] when the file is not `u8` with rank 3.
    pub fn from_file(file: IdxFile) -> Result<Self> {
        file.expect_magic(IMAGES_MAGIC, "images: u8, rank 3")?;
        // Magic 2051 implies rank 3; the fallback keeps this panic-free.
        let (len, rows, cols) = match *file.header().dims() {
            [len, rows, cols] => (len, rows, cols),
            _ => (0, 0, 0),
        };
        Ok(Self {
            file,
            len,
            rows,
            cols,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows per image (28 for MNIST).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns per image (28 for MNIST).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pixels per image: `rows * cols`.
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// Image `index` as `rows * cols` bytes, row-major; `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        // With zero-sized images every offset is 0, so the data length alone
        // cannot tell where the images end.
        if index >= self.len {
            return None;
        }
        let size = self.pixels_per_image();
        let start = index.checked_mul(size)?;
        self.file.data().get(start..start.checked_add(size)?)
    }

    /// All pixels, image after image.
    pub fn pixels(&self) -> &[u8] {
        self.file.data()
    }

    /// The images one at a time.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.len).map(|i| self.image(i).unwrap_or_default())
    }

    /// The underlying file.
    pub fn file(&self) -> &IdxFile {
        &self.file
    }

    /// The path the images were opened from.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// A validated labels file: `n` unsigned bytes.
#[derive(Debug)]
pub struct Labels {
    file: IdxFile,
}

impl Labels {
    /// Opens (memory-maps) a labels file.
    ///
    /// # Errors
    /// Any error of [`IdxFile::open`], or [`Error::WrongMagic`] when the file
    /// is not a labels file (magic 2049).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file(IdxFile::open(path)?)
    }

    /// Validates labels held in memory; `name` is used in error messages.
    ///
    /// # Errors
    /// As [`Labels::open`], for the bytes.
    pub fn from_bytes(bytes: Vec<u8>, name: impl Into<PathBuf>) -> Result<Self> {
        Self::from_file(IdxFile::from_bytes(bytes, name)?)
    }

    /// Views an already validated IDX file as labels.
    ///
    /// # Errors
    /// [`Error::WrongMagic`] when the file is not `u8` with rank 1.
    pub fn from_file(file: IdxFile) -> Result<Self> {
        file.expect_magic(LABELS_MAGIC, "labels: u8, rank 1")?;
        Ok(Self { file })
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.file.data().len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Label `index`; `None` past the end.
    pub fn get(&self, index: usize) -> Option<u8> {
        self.file.data().get(index).copied()
    }

    /// All labels.
    pub fn as_slice(&self) -> &[u8] {
        self.file.data()
    }

    /// The underlying file.
    pub fn file(&self) -> &IdxFile {
        &self.file
    }

    /// The path the labels were opened from.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Opens an images file and a labels file and checks their counts agree.
///
/// # Errors
/// Any error of [`Images::open`] or [`Labels::open`], or
/// [`Error::CountMismatch`].
pub fn open_pair(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<(Images, Labels)> {
    pair(Images::open(images)?, Labels::open(labels)?)
}

/// Checks that `images` and `labels` hold the same number of items.
///
/// # Errors
/// [`Error::CountMismatch`] when they do not.
pub fn pair(images: Images, labels: Labels) -> Result<(Images, Labels)> {
    if images.len() != labels.len() {
        return Err(Error::CountMismatch {
            images: images.path().to_path_buf(),
            n_images: images.len(),
            labels: labels.path().to_path_buf(),
            n_labels: labels.len(),
        });
    }
    Ok((images, labels))
}
