//! Gathering one batch of 512 from a training-set-sized dataset held in
//! memory (60,000 synthetic 28 x 28 images, shuffled order): the whole batch
//! at once (`next_batch`), and the way training does it, block by block of
//! 30 rows into a padded buffer, asking for the next block's images first
//! (`next_lazy` + `prefetch` + `features_into`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mnist_data::{Dataset, Loader, LoaderConfig, Preprocess};
use mnist_idx::{Images, Labels};

const IMAGES: u32 = 60_000;
const SIDE: u32 = 28;
const BATCH: usize = 512;
const BLOCK: usize = 30;
/// 785 features rounded up to whole 16-lane chunks, as the model's blocks.
const STRIDE: usize = 800;

fn dataset() -> Option<Dataset> {
    let header = |dims: &[u32]| {
        let mut v = vec![0u8, 0, 0x08, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    };
    let mut images = header(&[IMAGES, SIDE, SIDE]);
    images.extend((0..(IMAGES * SIDE * SIDE) as usize).map(|i| (i * 31 % 251) as u8));
    let mut labels = header(&[IMAGES]);
    labels.extend((0..IMAGES).map(|i| (i % 10) as u8));
    Dataset::new(
        Images::from_bytes(images, "images").ok()?,
        Labels::from_bytes(labels, "labels").ok()?,
        10,
    )
    .ok()
}

fn bench(c: &mut Criterion) {
    let Some(data) = dataset() else {
        eprintln!("synthetic dataset rejected: skipped");
        return;
    };
    let Ok(mut loader) = Loader::new(&data, Preprocess::default(), LoaderConfig::default()) else {
        return;
    };
    let mut epoch = 0;
    let mut group = c.benchmark_group("gather");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("next_batch_512", |b| {
        b.iter(|| {
            let batch = match loader.next_batch() {
                Some(batch) if batch.len() == BATCH => batch,
                _ => {
                    epoch += 1;
                    loader.begin_epoch(epoch);
                    return 0.0;
                }
            };
            black_box(batch.x[[BATCH - 1, 0]])
        })
    });
    let mut block = vec![0.0f32; BLOCK * STRIDE];
    group.bench_function("next_lazy_512_blocks_of_30", |b| {
        b.iter(|| {
            let batch = match loader.next_lazy() {
                Some(batch) if batch.len() == BATCH => batch,
                _ => {
                    epoch += 1;
                    loader.begin_epoch(epoch);
                    return 0.0;
                }
            };
            for first in (0..BATCH).step_by(BLOCK) {
                // Training asks for the next block while computing on this
                // one; with nothing to compute here, just before making it.
                batch.prefetch(first + BLOCK, BLOCK);
                let n = BLOCK.min(BATCH - first);
                batch.features_into(first, &mut block[..n * STRIDE], STRIDE);
            }
            black_box(block[0])
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
