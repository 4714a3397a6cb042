//! A memory-mapped, validating reader for the IDX file format, the format of
//! MNIST and Fashion-MNIST.
//!
//! An IDX file is two zero bytes, a type byte (`0x08` u8, `0x09` i8, `0x0B`
//! i16, `0x0C` i32, `0x0D` f32, `0x0E` f64, all big-endian), a rank byte,
//! `rank` big-endian `u32` dimensions, then the data. Everything is checked
//! before any view is handed out: the type, the rank, the product of the
//! dimensions (with overflow checks) and that the data is exactly as long as
//! the header promises. No input, however malformed, makes this crate panic;
//! every error names the file and says what was expected and found.
//!
//! Files are opened with [`memmap2`], so a 47 MB training set costs no heap:
//! [`Images::image`] is a slice of the mapped file. Where a file cannot be
//! mapped, it is read into memory instead, and bytes already in memory (for
//! example decompressed from a `.gz`) are accepted by the `from_bytes`
//! constructors. A mapped file must not be modified while it is open. On
//! Linux, maps ask for transparent huge pages (`MADV_HUGEPAGE`): a hint
//! that pages read from disk come in 2 MiB folios, mapped with 2 MiB pages.
//!
//! # Example
//! ```
//! use mnist_idx::{pair, Images, Labels};
//!
//! // Two 2x2 images and their labels, as they would sit in files.
//! let mut images = vec![0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
//! images.extend_from_slice(&[0, 255, 255, 0, 9, 9, 9, 9]);
//! let labels = vec![0, 0, 0x08, 1, 0, 0, 0, 2, 7, 3];
//!
//! let (images, labels) = pair(
//!     Images::from_bytes(images, "images")?,
//!     Labels::from_bytes(labels, "labels")?,
//! )?;
//! assert_eq!((images.len(), images.rows(), images.cols()), (2, 2, 2));
//! assert_eq!(images.image(0), Some(&[0, 255, 255, 0][..]));
//! assert_eq!(labels.as_slice(), &[7, 3]);
//!
//! // A truncated file is an error that says so, not a panic.
//! let err = Labels::from_bytes(vec![0, 0, 0x08, 1, 0, 0, 0, 5, 1], "short").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "short: truncated data: header promises 5 bytes, found 1"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod element;
mod error;
mod file;
mod header;
mod views;

pub use element::Element;
pub use error::{Error, Result};
pub use file::IdxFile;
pub use header::{DataType, Header};
pub use views::{open_pair, pair, Images, Labels, IMAGES_MAGIC, LABELS_MAGIC};
