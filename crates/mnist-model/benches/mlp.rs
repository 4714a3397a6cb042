//! The network of `--preset mlp` (785 inputs, 256 ReLU units, 10 softmax
//! outputs) on synthetic data (no files): one training step on a batch of
//! 128 (forward and backward of every part, the parts added up, then the
//! momentum update), on 1 thread and on 2, throughput in rows; and the
//! forward pass of one part (64 rows) on one thread, throughput in
//! multiply-adds, nearly all of them the `x W1` product (64 x 785 times
//! 785 x 256).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mnist_model::{Head, Mlp, MlpTrainer};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FEATURES: usize = 785;
const HIDDEN: usize = 256;
const CLASSES: usize = 10;
const BATCH: usize = 128;

fn inputs(rows: usize, rng: &mut ChaCha8Rng) -> (Array2<f32>, Array2<f32>) {
    let x = Array2::from_shape_fn((rows, FEATURES), |(_, f)| {
        if f == FEATURES - 1 {
            1.0
        } else {
            rng.gen_range(-0.5f32..0.5)
        }
    });
    let y = Array2::from_shape_fn((rows, CLASSES), |(r, c)| f32::from(r % CLASSES == c));
    (x, y)
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let Ok(mut net) = Mlp::new(
        FEATURES,
        Some(HIDDEN),
        CLASSES,
        Head::Softmax,
        false,
        &mut rng,
    ) else {
        return;
    };
    // Forward (x W1, h W2), backward (h^T dz, dz W2^T, x^T dh).
    let macs = BATCH * (FEATURES * HIDDEN * 2 + HIDDEN * CLASSES * 3);
    eprintln!("(a step is {:.1} MFLOP)", 2.0 * macs as f64 / 1e6);
    let (x, y) = inputs(BATCH, &mut rng);
    let mut group = c.benchmark_group("mlp_step");
    group.throughput(Throughput::Elements(BATCH as u64));
    for threads in [1, 2] {
        let Ok(trainer) = MlpTrainer::new(&net, 0.9, 1e-4) else {
            return;
        };
        let mut trainer = trainer.with_threads(threads);
        group.bench_function(format!("batch 128, 785x256x10, {threads} thread(s)"), |b| {
            // A tiny rate keeps the weights finite however many steps run.
            b.iter(|| trainer.step(&mut net, x.view(), y.view(), 1e-6))
        });
    }
    group.finish();

    let part = x.slice(ndarray::s![..64, ..]);
    let mut group = c.benchmark_group("mlp_forward");
    group.throughput(Throughput::Elements(
        (64 * (FEATURES * HIDDEN + HIDDEN * CLASSES)) as u64,
    ));
    group.bench_function("64 rows, 1 thread", |b| b.iter(|| net.predict_proba(part)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
