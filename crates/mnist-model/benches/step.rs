//! One SGD step at the post's batch shape, and the forward pass over a
//! test-set-sized input.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mnist_model::{Init, LinearModel, Sgd, StepScratch};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FEATURES: usize = 785;
const CLASSES: usize = 10;

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
    let Ok(mut model) = LinearModel::new(FEATURES, CLASSES, Init::default(), &mut rng) else {
        return;
    };
    eprintln!("kernel path: {}", mnist_model::kernel_path());

    let (x, y) = inputs(512, &mut rng);
    let sgd = Sgd::default();
    let mut scratch = StepScratch::new();
    let mut group = c.benchmark_group("sgd_step");
    group.throughput(Throughput::Elements(512));
    group.bench_function("512x785x10", |b| {
        // A tiny rate keeps the weights finite however many iterations run.
        b.iter(|| sgd.step(&mut model, x.view(), y.view(), 1e-6, &mut scratch))
    });
    group.finish();

    let (x, _) = inputs(10_000, &mut rng);
    let mut out = Array2::<f32>::zeros((10_000, CLASSES));
    let mut group = c.benchmark_group("forward");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10000x785x10", |b| {
        b.iter(|| model.forward_into(x.view(), out.view_mut()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
