//! The convolutional network of `--preset cnn` on synthetic data (no
//! files): one training step on a batch of 64 (forward and backward on
//! every core, then the update), and the forward pass over 1,024 rows, on
//! 1 thread and on every core. Throughput is in images.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mnist_model::{Cnn, CnnTrainer};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIDE: usize = 28;
const FEATURES: usize = SIDE * SIDE + 1;
const CLASSES: usize = 10;
const BATCH: usize = 64;

/// Multiply-adds of one image's forward pass: the two convolutions and the
/// two dense layers.
const FORWARD_MACS: usize = 24 * 24 * 25 * 16 + 8 * 8 * 400 * 32 + 512 * 128 + 128 * 10;

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
    let Ok(mut net) = Cnn::new(SIDE, 5, &[16, 32], Some(128), CLASSES, &mut rng) else {
        return;
    };
    eprintln!(
        "(forward {:.2} MFLOP an image; a step is about three times that)",
        2.0 * FORWARD_MACS as f64 / 1e6
    );
    let (x, y) = inputs(BATCH, &mut rng);
    let mut group = c.benchmark_group("cnn_step");
    group.throughput(Throughput::Elements(BATCH as u64));
    for threads in [1, 2] {
        let Ok(trainer) = CnnTrainer::new(&net, 0.9, 5e-4) else {
            return;
        };
        let mut trainer = trainer.with_threads(threads);
        group.bench_function(format!("batch 64, {threads} thread(s)"), |b| {
            // A tiny rate keeps the weights finite however many steps run.
            b.iter(|| trainer.step(&mut net, x.view(), y.view(), 1e-6))
        });
    }
    group.finish();

    let (x, _) = inputs(1024, &mut rng);
    let mut group = c.benchmark_group("cnn_forward");
    group.throughput(Throughput::Elements(1024));
    group.bench_function("1024 rows, every core", |b| {
        b.iter(|| black_box(net.predict_proba(x.view())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
