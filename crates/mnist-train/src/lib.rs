//! The training loop for MNIST models: one [`Trainer`] for the blog post's
//! sigmoid model, softmax regression and the MLP, configured by a plain
//! [`TrainConfig`] (with [`Preset`]s as values of it), telling an
//! [`Observer`] what happens, and giving a [`TrainState`] to resume from.
//!
//! This crate knows datasets ([`mnist_data`]) and models ([`mnist_model`])
//! and joins them: batches from the data's loader, steps of the model's
//! kernels, an evaluation after every epoch (for the post's model, in the
//! moments the step's threads would wait). It writes no files and prints
//! nothing; the `mnist` command renders the events and keeps checkpoints.
//!
//! # Examples
//!
//! Training the post's model on an MNIST folder (here a tiny synthetic one):
//!
//! ```
//! use mnist_data::{Dataset, Part};
//! use mnist_train::{EpochRecord, Observer, Preset, TrainConfig, Trainer};
//!
//! /// Prints each epoch's validation accuracy.
//! struct Print;
//! impl Observer for Print {
//!     fn epoch_finished(&mut self, r: &EpochRecord) {
//!         println!("epoch {} accuracy {:.4}", r.epoch, r.val_accuracy);
//!     }
//! }
//!
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path();
//! # for (prefix, n) in [("train", 20u8), ("t10k", 10u8)] {
//! #     let mut images = vec![0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 2, 0, 0, 0, 2];
//! #     images.extend((0..u32::from(n) * 4).map(|i| (i * 53 % 256) as u8));
//! #     let mut labels = vec![0, 0, 8, 1, 0, 0, 0, n];
//! #     labels.extend((0..n).map(|i| i % 10));
//! #     std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images)?;
//! #     std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels)?;
//! # }
//! let train = Dataset::open(&dir, Part::Train)?;
//! let test = Dataset::open(&dir, Part::Test)?;
//! let config = TrainConfig { epochs: 3, ..TrainConfig::from(Preset::Post) };
//! let fitted = Trainer::new(config, &train, &test)?.fit(None, &mut Print)?;
//! assert_eq!(fitted.epochs.len(), 3);
//! println!("test accuracy {:.4}", fitted.test.accuracy);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod config;
mod error;
mod learner;
mod trainer;

pub use crate::{
    config::{Preset, TrainConfig},
    error::{Error, Result},
    learner::Velocity,
    trainer::{EpochRecord, Fitted, Observer, RunInfo, Silent, StateView, TrainState, Trainer},
};
