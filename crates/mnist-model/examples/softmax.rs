//! Softmax regression on MNIST from `mnist-model` and `mnist-data` alone:
//! a 785 x 10 linear model with a softmax head, SGD with momentum 0.9 and
//! weight decay 1e-4 on the fused few-output kernels, batches of 64, a
//! cosine learning rate from 0.05 down to 5e-5 over the epochs; prints the
//! test accuracy after each epoch.
//!
//! ```sh
//! cargo run --release -p mnist-model --example softmax -- [DATA_DIR] [EPOCHS]
//! ```
//!
//! `DATA_DIR` defaults to `data/mnist` (fetch it with `cargo xtask
//! fetch-data`). The loop is the one `mnist-train` runs for `--preset
//! softmax`, without its per-epoch evaluation in the threads' idle moments,
//! checkpoints or reports.

use std::error::Error;

use mnist_data::{Dataset, Loader, LoaderConfig, Part, Preprocess};
use mnist_model::{
    evaluate, CosineWarmRestarts, Head, Init, LinearModel, LrSchedule, Sgd, StepScratch,
};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "data/mnist".into());
    let epochs: usize = args.next().map_or(Ok(10), |e| e.parse())?;
    let train = Dataset::open(&dir, Part::Train)?;
    let test = Dataset::open(&dir, Part::Test)?;
    let pre = Preprocess::default();
    let config = LoaderConfig {
        batch_size: 64,
        seed: 0,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(&train, pre.clone(), config)?;
    let all: Vec<usize> = (0..test.len()).collect();
    let x_test = Loader::features_of(&test, &pre, &all).ok_or("the test set is too large")?;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut model = LinearModel::new(loader.features(), train.classes(), Init::Zeros, &mut rng)?
        .with_head(Head::Softmax);
    let mut sgd = Sgd::with_momentum(0.9, 1e-4)?;
    let mut scratch = StepScratch::new();
    let schedule = CosineWarmRestarts::new(5e-5, 0.05, epochs)?;
    for epoch in 0..epochs {
        let lr = schedule.lr(epoch) as f32;
        loader.begin_epoch(epoch);
        let (mut loss, mut steps) = (0.0, 0);
        while let Some(batch) = loader.next_batch() {
            loss += sgd.step(&mut model, batch.x, batch.y, lr, &mut scratch)?;
            steps += 1;
        }
        let eval = evaluate(&model, x_test.view(), test.labels())?;
        println!(
            "epoch {epoch:>2}  lr {lr:.5}  train loss {:.5}  test accuracy {:.4}",
            loss / f64::from(steps.max(1)),
            eval.accuracy
        );
    }
    Ok(())
}
