//! Trains the `mlp` preset (256 hidden ReLU units, softmax, 20 epochs of
//! batches of 128, momentum 0.9) from the crates alone, and prints the test
//! accuracy: the same, bit for bit, as `mnist train --preset mlp` with the
//! same seed.
//!
//! ```sh
//! cargo run --release -p mnist-train --example mlp -- [DATA_DIR] [EPOCHS] [SEED]
//! ```
//!
//! `DATA_DIR` defaults to `data/mnist` (fetch it with `cargo xtask
//! fetch-data`); fewer `EPOCHS` make one cosine cycle over those epochs, as
//! `mnist train --preset mlp --epochs N` does.

use std::error::Error;

use mnist_data::{Dataset, Part};
use mnist_train::{EpochRecord, Observer, Preset, TrainConfig, Trainer};

/// Prints a line after every epoch.
struct EpochLines;

impl Observer for EpochLines {
    fn epoch_finished(&mut self, r: &EpochRecord) {
        println!(
            "epoch {:>2}  lr {:.5}  train loss {:.5}  val accuracy {:.4}",
            r.epoch, r.lr, r.train_loss, r.val_accuracy
        );
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "data/mnist".into());
    let mut config = TrainConfig::from(Preset::Mlp);
    if let Some(epochs) = args.next() {
        config.epochs = epochs.parse()?;
        config.cosine_period = config.epochs;
    }
    if let Some(seed) = args.next() {
        config.seed = seed.parse()?;
    }
    let train = Dataset::open(&dir, Part::Train)?;
    let test = Dataset::open(&dir, Part::Test)?;
    let fitted = Trainer::new(config, &train, &test)?.fit(None, &mut EpochLines)?;
    println!(
        "test accuracy {:.4}  loss {:.5}  ({} samples)",
        fitted.test.accuracy,
        fitted.test.loss,
        fitted.test.confusion.total()
    );
    Ok(())
}
