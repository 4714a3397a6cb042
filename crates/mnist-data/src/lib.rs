//! MNIST datasets: the post's preprocessing, one-hot labels, seeded
//! shuffling and batching, and train/validation splits.
//!
//! A [`Dataset`] pairs the [`mnist_idx`] views of images and labels and
//! checks every label; the pixels stay in the memory map. A [`Loader`] cuts
//! it into batches: each epoch a permutation drawn from the seed and the
//! epoch number, every sample exactly once, the last batch partial unless
//! `drop_last` is set, each batch gathered in one pass into buffers that are
//! reused. [`Preprocess`] turns pixels into features; the default is the
//! post's `x / 255 - 0.5` with a bias feature of 1 (785 features).
//!
//! # Example
//! ```
//! use mnist_data::{Dataset, Loader, LoaderConfig, Preprocess};
//! use mnist_idx::{Images, Labels};
//!
//! // Five 1x2 images, labels 0..5, in memory.
//! let mut images = vec![0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 2];
//! images.extend_from_slice(&[0, 255, 51, 102, 153, 204, 255, 0, 0, 0]);
//! let labels = vec![0, 0, 8, 1, 0, 0, 0, 5, 0, 1, 2, 3, 4];
//! let data = Dataset::new(
//!     Images::from_bytes(images, "images")?,
//!     Labels::from_bytes(labels, "labels")?,
//!     10,
//! )?;
//!
//! let config = LoaderConfig { batch_size: 2, seed: 7, ..LoaderConfig::default() };
//! let mut loader = Loader::new(&data, Preprocess::default(), config)?;
//! assert_eq!(loader.batches_per_epoch(), 3);
//! loader.begin_epoch(0);
//! let mut seen = Vec::new();
//! while let Some(batch) = loader.next_batch() {
//!     assert_eq!(batch.x.ncols(), 3); // two pixels and the bias
//!     assert!(batch.x.column(2).iter().all(|&b| b == 1.0));
//!     seen.extend_from_slice(batch.labels);
//! }
//! seen.sort();
//! assert_eq!(seen, [0, 1, 2, 3, 4]); // each sample exactly once
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod dataset;
mod error;
mod fingerprint;
mod known;
mod loader;
mod preprocess;
mod split;

pub use dataset::{one_hot_into, Dataset, Part, CLASSES};
pub use error::{Error, Result};
pub use fingerprint::{BadFingerprint, Fingerprint};
pub use known::{identify, KnownDataset, FASHION_MNIST, KNOWN, MNIST};
pub use loader::{Batch, LazyBatch, Loader, LoaderConfig, PendingOrder};
pub use preprocess::{Normalization, Preprocess};
pub use split::{split_indices, Holdout};
