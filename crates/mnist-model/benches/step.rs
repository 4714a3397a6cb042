//! The training kernels at the post's shapes, on synthetic data (no files):
//! one SGD step on a batch of 512 (on two threads and on one), a step of
//! softmax regression on 64 rows (on one and two threads; on one batch, and
//! on batch after batch with and without computing ahead on the next as
//! training does), one epoch of 60,000 rows (118 steps, rows made from
//! bytes block by block as training does), the forward pass and the
//! evaluation over a test-set-sized input of 10,000 rows.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mnist_model::{
    evaluate, evaluate_rows, Init, LinearModel, RowSource, RowsKey, Sgd, StepScratch,
};
use ndarray::{s, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FEATURES: usize = 785;
const PIXELS: usize = FEATURES - 1;
const CLASSES: usize = 10;
const BATCH: usize = 512;
const SOFTMAX_BATCH: usize = 64;
const TRAIN: usize = 60_000;
const TEST: usize = 10_000;

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

/// Batches of softmax regression in the `softmax_step ... rows` benches.
const WINDOWS: usize = 2;

/// The rows of a matrix (`FEATURES` to a row) from row `start` on, round
/// and round; with `keyed`, named by their row of the matrix.
struct Window<'a> {
    xs: &'a [f32],
    start: usize,
    keyed: bool,
}

impl Window<'_> {
    /// The row of the matrix that is row `i` here.
    fn row(&self, i: usize) -> usize {
        (self.start + i) % (self.xs.len() / FEATURES)
    }
}

impl RowSource for Window<'_> {
    fn fill(&self, first: usize, out: &mut [f32], stride: usize) {
        self.fill_columns(first, out, stride, 0..FEATURES, FEATURES);
    }

    fn fill_columns(
        &self,
        first: usize,
        out: &mut [f32],
        stride: usize,
        columns: std::ops::Range<usize>,
        _features: usize,
    ) {
        for (k, row) in out.chunks_exact_mut(stride).enumerate() {
            let at = self.row(first + k) * FEATURES;
            row[..columns.len()].copy_from_slice(&self.xs[at + columns.start..at + columns.end]);
        }
    }

    fn rows_key(&self, first: usize, n: usize) -> Option<RowsKey> {
        self.keyed
            .then(|| RowsKey::new((first..first + n).map(|i| self.row(i) as u64)))
    }
}

/// The post's features of byte `p`, as a table: `p / 255 - 0.5`.
fn table() -> [f32; 256] {
    std::array::from_fn(|p| p as f32 / 255.0 - 0.5)
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let Ok(mut model) = LinearModel::new(FEATURES, CLASSES, Init::default(), &mut rng) else {
        return;
    };
    eprintln!("kernel path: {}", mnist_model::kernel_path());
    let flops_per_row = 2 * 2 * FEATURES * CLASSES;

    let (x, y) = inputs(BATCH, &mut rng);
    let mut sgd = Sgd::default();
    let mut scratch = StepScratch::new();
    let mut group = c.benchmark_group("sgd_step");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("512x785x10", |b| {
        // A tiny rate keeps the weights finite however many iterations run.
        b.iter(|| sgd.step(&mut model, x.view(), y.view(), 1e-6, &mut scratch))
    });
    // One thread: the kernels alone, without the other core's timing.
    let mut one = Sgd::default().with_threads(1);
    group.bench_function("512x785x10 1 thread", |b| {
        b.iter(|| one.step(&mut model, x.view(), y.view(), 1e-6, &mut scratch))
    });
    group.finish();
    eprintln!(
        "(one step is {} MFLOP: forward and gradient products)",
        BATCH * flops_per_row / 1_000_000
    );

    // Softmax regression's step (`--preset softmax`): 64 rows, softmax
    // head, momentum and weight decay, cut into two halves of the features.
    let (x, y) = inputs(SOFTMAX_BATCH, &mut rng);
    let mut softmax = model.clone().with_head(mnist_model::Head::Softmax);
    let mut group = c.benchmark_group("softmax_step");
    group.throughput(Throughput::Elements(SOFTMAX_BATCH as u64));
    for threads in [1, 2] {
        let mut sgd = Sgd::with_momentum(0.9, 1e-4)
            .expect("valid momentum and weight decay")
            .with_threads(threads);
        let name = format!("64x785x10, {threads} thread(s)");
        group.bench_function(name.as_str(), |b| {
            b.iter(|| sgd.step(&mut softmax, x.view(), y.view(), 1e-6, &mut scratch))
        });
    }
    // The same step on rows made on demand, batch after batch, with and
    // without the rows' keys: with them, as in training, each step also
    // computes the next batch's share of the logits and the next step
    // skips its first round (one hand-over between the threads a step,
    // not two). The batches cycle through two windows of a matrix.
    let (x_all, y_all) = inputs(WINDOWS * SOFTMAX_BATCH, &mut rng);
    let xs = x_all.as_slice().expect("standard layout");
    for keyed in [false, true] {
        for threads in [1, 2] {
            let mut sgd = Sgd::with_momentum(0.9, 1e-4)
                .expect("valid momentum and weight decay")
                .with_threads(threads);
            let mut window = 0;
            let rows = if keyed { "keyed rows" } else { "rows" };
            let name = format!("64x785x10 {rows}, {threads} thread(s)");
            group.bench_function(name.as_str(), |b| {
                b.iter(|| {
                    let start = window * SOFTMAX_BATCH;
                    window = (window + 1) % WINDOWS;
                    let rows = Window { xs, start, keyed };
                    let y = y_all.slice(s![start..start + SOFTMAX_BATCH, ..]);
                    sgd.step_rows(&mut softmax, y, &rows, 1e-6, &mut scratch)
                })
            });
        }
    }
    group.finish();

    // An epoch as training runs it: 60,000 rows of bytes, batches of 512,
    // each block of rows made from the bytes on the thread that uses it.
    let pixels: Vec<u8> = (0..TRAIN * PIXELS).map(|_| rng.gen()).collect();
    let labels: Vec<usize> = (0..TRAIN).map(|_| rng.gen_range(0..CLASSES)).collect();
    let y_all = Array2::from_shape_fn((TRAIN, CLASSES), |(r, c)| f32::from(labels[r] == c));
    let lut = table();
    let mut group = c.benchmark_group("epoch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(TRAIN as u64));
    group.bench_function("60000x785x10", |b| {
        b.iter(|| {
            let mut loss = 0.0;
            for start in (0..TRAIN).step_by(BATCH) {
                let end = (start + BATCH).min(TRAIN);
                let fill = |first: usize, out: &mut [f32], stride: usize| {
                    for (k, row) in out.chunks_exact_mut(stride).enumerate() {
                        let at = (start + first + k) * PIXELS;
                        for (o, &p) in row.iter_mut().zip(&pixels[at..at + PIXELS]) {
                            *o = lut[usize::from(p)];
                        }
                        row[PIXELS] = 1.0;
                    }
                };
                let y = y_all.slice(s![start..end, ..]);
                loss += sgd
                    .step_rows(&mut model, y, &fill, 1e-6, &mut scratch)
                    .unwrap_or(f64::NAN);
            }
            black_box(loss)
        })
    });
    group.finish();

    let (x, _) = inputs(TEST, &mut rng);
    let test_labels: Vec<u8> = (0..TEST).map(|r| (r % CLASSES) as u8).collect();
    let mut out = Array2::<f32>::zeros((TEST, CLASSES));
    let mut group = c.benchmark_group("forward");
    group.throughput(Throughput::Elements(TEST as u64));
    group.bench_function("10000x785x10", |b| {
        b.iter(|| model.forward_into(x.view(), out.view_mut()))
    });
    group.finish();

    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(TEST as u64));
    group.bench_function("10000x785x10", |b| {
        b.iter(|| evaluate(&model, x.view(), &test_labels).map(|e| e.accuracy))
    });
    let test_pixels = &pixels[..TEST * PIXELS];
    group.bench_function("10000x785x10_from_bytes", |b| {
        let fill = |first: usize, out: &mut [f32], stride: usize| {
            for (k, row) in out.chunks_exact_mut(stride).enumerate() {
                let at = (first + k) * PIXELS;
                for (o, &p) in row.iter_mut().zip(&test_pixels[at..at + PIXELS]) {
                    *o = lut[usize::from(p)];
                }
                row[PIXELS] = 1.0;
            }
        };
        b.iter(|| evaluate_rows(&model, &test_labels, &fill).map(|e| e.accuracy))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
