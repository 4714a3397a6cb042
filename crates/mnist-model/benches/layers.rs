//! Each layer of `--preset cnn` on one part (`PART` = 16 images), forward
//! and backward, on one thread: where a step's time goes. Throughput is in
//! elements: multiply-adds for the products (criterion's "elem/s" is then
//! MAC/s; times 2 for FLOP/s), values for ReLU and pooling.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mnist_model::{Conv, ConvCache, Dense, MaxPool, PoolCache, Relu, PART};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.gen_range(-0.5f32..0.5))
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let n = PART;
    // (name, input side, kernel, input channels, filters, backward to the input)
    for (name, side, k, ci, co, dx) in [
        ("conv1", 28, 5, 1, 16, false),
        ("conv2", 12, 5, 16, 32, true),
    ] {
        let w = random(k * k * ci, co, &mut rng);
        let Ok(conv) = Conv::new(k, ci, w, Array1::zeros(co)) else {
            return;
        };
        let x = random(n, side * side * ci, &mut rng);
        let out = side - k + 1;
        let macs = (n * out * out * k * k * ci * co) as u64;
        let (mut cache, mut z) = (ConvCache::default(), Array2::zeros((0, 0)));
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(macs));
        group.bench_function("forward", |b| {
            b.iter(|| conv.forward(x.view(), side, &mut cache, &mut z))
        });
        let dz = random(n * out * out, co, &mut rng);
        let (mut dw, mut db, mut dinput) = (
            Array2::zeros((0, 0)),
            Array1::zeros(0),
            Array2::zeros((0, 0)),
        );
        // Backward: the weights' gradient, and the input's for conv2.
        group.throughput(Throughput::Elements(macs * if dx { 2 } else { 1 }));
        group.bench_function("backward", |b| {
            b.iter(|| {
                let dinput = if dx { Some(&mut dinput) } else { None };
                conv.backward(&mut cache, dz.view(), &mut dw, &mut db, dinput)
            })
        });
        group.throughput(Throughput::Elements(z.len() as u64));
        let mut zr = z.clone();
        group.bench_function("relu forward", |b| {
            b.iter(|| Relu.forward(black_box(&mut zr).view_mut()))
        });
        let mut dzr = dz.clone();
        group.bench_function("relu backward", |b| {
            b.iter(|| Relu.backward(zr.view(), black_box(&mut dzr).view_mut()))
        });
        let (mut pool, mut pooled, mut dpool) = (
            PoolCache::default(),
            Array2::zeros((0, 0)),
            Array2::zeros((0, 0)),
        );
        group.bench_function("pool forward", |b| {
            b.iter(|| MaxPool.forward(zr.view(), out, &mut pool, &mut pooled))
        });
        let dpooled = random(pooled.nrows(), co, &mut rng);
        group.bench_function("pool backward", |b| {
            b.iter(|| MaxPool.backward(&pool, dpooled.view(), &mut dpool))
        });
        group.finish();
    }
    for (name, i, o) in [("dense1", 512, 128), ("dense2", 128, 10)] {
        let Ok(layer) = Dense::new(random(i, o, &mut rng), Array1::zeros(o)) else {
            return;
        };
        let x = random(n, i, &mut rng);
        let dout = random(n, o, &mut rng);
        let mut out = Array2::zeros((0, 0));
        let (mut dw, mut db, mut dx) = (
            Array2::zeros((0, 0)),
            Array1::zeros(0),
            Array2::zeros((0, 0)),
        );
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements((n * i * o) as u64));
        group.bench_function("forward", |b| b.iter(|| layer.forward(x.view(), &mut out)));
        group.throughput(Throughput::Elements((2 * n * i * o) as u64));
        group.bench_function("backward", |b| {
            b.iter(|| layer.backward(x.view(), dout.view(), &mut dw, &mut db, Some(&mut dx)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
