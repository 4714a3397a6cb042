//! Opens the MNIST training set, cuts it into shuffled batches of 512 as the
//! blog post does, and prints what one epoch holds: the number of batches,
//! the shape of the first, and how many samples of each class the epoch
//! went through (every sample once).
//!
//! ```sh
//! cargo run --release -p mnist-data --example batches -- [DATA_DIR] [SEED]
//! ```
//!
//! `DATA_DIR` defaults to `data/mnist` (fetch it with `cargo xtask
//! fetch-data`).

use std::error::Error;

use mnist_data::{Dataset, Loader, LoaderConfig, Part, Preprocess};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "data/mnist".into());
    let seed: u64 = args.next().map_or(Ok(0), |s| s.parse())?;
    let train = Dataset::open(&dir, Part::Train)?;
    let config = LoaderConfig {
        seed,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(&train, Preprocess::default(), config)?;
    loader.begin_epoch(0);
    let mut per_class = vec![0usize; train.classes()];
    let mut batches = 0;
    while let Some(batch) = loader.next_batch() {
        if batches == 0 {
            println!(
                "first batch: {} rows x {} features (x / 255 - 0.5 and a bias of 1), targets {} x {}, labels {:?}...",
                batch.x.nrows(),
                batch.x.ncols(),
                batch.y.nrows(),
                batch.y.ncols(),
                &batch.labels[..8.min(batch.labels.len())]
            );
        }
        for &label in batch.labels {
            per_class[usize::from(label)] += 1;
        }
        batches += 1;
    }
    println!("{batches} batches in epoch 0 (the last one partial)");
    println!("samples per class: {per_class:?}");
    Ok(())
}
