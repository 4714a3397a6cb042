//! Opening and validating a training-set-sized images file (60,000 x 28 x
//! 28), written to a temporary folder first: the cost of `Images::open`
//! (map, header checks) and of touching every page once.

use std::hint::black_box;
use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mnist_idx::Images;

const IMAGES: u32 = 60_000;
const SIDE: u32 = 28;

fn bench(c: &mut Criterion) {
    let Ok(dir) = tempfile::tempdir() else {
        eprintln!("no temporary folder: skipped");
        return;
    };
    let path = dir.path().join("train-images-idx3-ubyte");
    let pixels = (IMAGES * SIDE * SIDE) as usize;
    let mut bytes = vec![0u8, 0, 0x08, 3];
    for d in [IMAGES, SIDE, SIDE] {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend((0..pixels).map(|i| (i * 31 % 251) as u8));
    let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(&bytes));
    if written.is_err() {
        eprintln!("cannot write {}: skipped", path.display());
        return;
    }

    let mut group = c.benchmark_group("idx_open");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("open_60000x28x28", |b| {
        b.iter(|| Images::open(black_box(&path)).map(|i| i.len()))
    });
    group.bench_function("open_and_read_every_page", |b| {
        b.iter(|| {
            Images::open(black_box(&path)).map(|i| {
                // One byte a page: what the first epoch pays in page faults.
                i.pixels()
                    .iter()
                    .step_by(4096)
                    .fold(0u64, |a, &p| a + u64::from(p))
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
