//! Dataset validation, preprocessing, loader invariants and splits on tiny
//! in-memory datasets.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use mnist_data::{
    split_indices, Dataset, Error, Holdout, Loader, LoaderConfig, Normalization, Preprocess,
};
use mnist_idx::{Images, Labels};
use proptest::prelude::*;

fn idx(dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// `n` images of 2x2 whose first pixel is the sample index (mod 256), and
/// labels `i % 10`.
fn dataset(n: usize) -> Dataset {
    let pixels: Vec<u8> = (0..n).flat_map(|i| [i as u8, 0, 255, 51]).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    Dataset::new(
        Images::from_bytes(idx(&[n as u32, 2, 2], &pixels), "images").unwrap(),
        Labels::from_bytes(idx(&[n as u32], &labels), "labels").unwrap(),
        10,
    )
    .unwrap()
}

fn epoch_indices(loader: &mut Loader<'_>, epoch: usize) -> (Vec<u32>, Vec<usize>) {
    loader.begin_epoch(epoch);
    let (mut seen, mut sizes) = (Vec::new(), Vec::new());
    while let Some(b) = loader.next_batch() {
        assert_eq!(b.x.nrows(), b.len());
        assert_eq!(b.y.nrows(), b.len());
        for (row, &i) in b.indices.iter().enumerate() {
            // The row really is sample `i`, preprocessed, with its one-hot label.
            assert_eq!(b.x[[row, 0]], (i as u8) as f32 / 255.0 - 0.5);
            assert_eq!(b.labels[row], (i % 10) as u8);
            assert_eq!(b.y.row(row).sum(), 1.0);
            assert_eq!(b.y[[row, (i % 10) as usize]], 1.0);
        }
        seen.extend_from_slice(b.indices);
        sizes.push(b.len());
    }
    (seen, sizes)
}

#[test]
fn preprocessing_is_the_posts() {
    let pre = Preprocess::default();
    let mut out = [9.0f32; 5];
    pre.apply_into(&[0, 255, 51, 128], &mut out);
    assert_eq!(
        out,
        [-0.5, 0.5, 51.0 / 255.0 - 0.5, 128.0 / 255.0 - 0.5, 1.0]
    );
    assert_eq!(pre.features(784), 785);
    for v in 0..=255u8 {
        assert_eq!(Normalization::Centered.apply(v), f32::from(v) / 255.0 - 0.5);
        assert_eq!(Normalization::Unit.apply(v), f32::from(v) / 255.0);
    }
    let plain = Preprocess::new(Normalization::Unit, false);
    let mut out = [0.0f32; 2];
    plain.apply_into(&[255, 0], &mut out);
    assert_eq!(out, [1.0, 0.0]);
}

#[test]
fn the_posts_batches_117_of_512_and_one_of_96() {
    let data = dataset(60_000);
    let mut loader = Loader::new(&data, Preprocess::default(), LoaderConfig::default()).unwrap();
    assert_eq!(loader.batches_per_epoch(), 118);
    let (seen, sizes) = epoch_indices(&mut loader, 0);
    assert_eq!(sizes.len(), 118);
    assert!(sizes[..117].iter().all(|&s| s == 512));
    assert_eq!(sizes[117], 96);
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..60_000).collect::<Vec<u32>>());
    assert_ne!(seen[..100], sorted[..100], "shuffled");
}

#[test]
fn drop_last_skips_the_short_batch() {
    let data = dataset(10);
    let config = LoaderConfig {
        batch_size: 4,
        drop_last: true,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(&data, Preprocess::default(), config).unwrap();
    assert_eq!(loader.batches_per_epoch(), 2);
    let (seen, sizes) = epoch_indices(&mut loader, 3);
    assert_eq!(sizes, [4, 4]);
    assert_eq!(seen.len(), 8);
}

#[test]
fn without_shuffle_the_order_is_the_given_one() {
    let data = dataset(7);
    let config = LoaderConfig {
        batch_size: 3,
        shuffle: false,
        ..LoaderConfig::default()
    };
    let mut loader =
        Loader::with_indices(&data, Preprocess::default(), config, &[6, 2, 4, 0]).unwrap();
    let (seen, sizes) = epoch_indices(&mut loader, 5);
    assert_eq!(seen, [6, 2, 4, 0]);
    assert_eq!(sizes, [3, 1]);
}

#[test]
fn same_seed_same_order_other_seed_or_epoch_other_order() {
    let data = dataset(1000);
    let order = |seed, epoch| {
        let config = LoaderConfig {
            batch_size: 64,
            seed,
            ..LoaderConfig::default()
        };
        let mut l = Loader::new(&data, Preprocess::default(), config).unwrap();
        epoch_indices(&mut l, epoch).0
    };
    assert_eq!(order(1, 0), order(1, 0));
    assert_ne!(order(1, 0), order(2, 0));
    assert_ne!(order(1, 0), order(1, 1));
    // An epoch's order does not depend on the epochs before it.
    let config = LoaderConfig {
        seed: 1,
        ..LoaderConfig::default()
    };
    let mut l = Loader::new(&data, Preprocess::default(), config).unwrap();
    epoch_indices(&mut l, 0);
    assert_eq!(epoch_indices(&mut l, 1).0, order(1, 1));
}

#[test]
fn rejects_bad_loader_settings() {
    let data = dataset(5);
    let zero = LoaderConfig {
        batch_size: 0,
        ..LoaderConfig::default()
    };
    let err = Loader::new(&data, Preprocess::default(), zero).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                name: "batch size",
                ..
            }
        ),
        "{err}"
    );
    let err = Loader::with_indices(&data, Preprocess::default(), LoaderConfig::default(), &[5])
        .unwrap_err();
    assert!(
        err.to_string().contains("index 5 is past the 5 samples"),
        "{err}"
    );
    let err = Loader::with_indices(&data, Preprocess::default(), LoaderConfig::default(), &[])
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidConfig {
            name: "indices",
            ..
        }
    ));
}

#[test]
fn rejects_labels_outside_the_classes() {
    let err = Dataset::new(
        Images::from_bytes(idx(&[2, 1, 1], &[0, 0]), "img").unwrap(),
        Labels::from_bytes(idx(&[2], &[3, 10]), "lab").unwrap(),
        10,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        Error::LabelOutOfRange {
            index: 1,
            label: 10,
            classes: 10,
            ..
        }
    ));
    assert!(
        err.to_string().starts_with("lab: label 10 at index 1"),
        "{err}"
    );
}

#[test]
fn rejects_an_empty_dataset_and_mismatched_counts() {
    let err = Dataset::new(
        Images::from_bytes(idx(&[0, 28, 28], &[]), "img").unwrap(),
        Labels::from_bytes(idx(&[0], &[]), "lab").unwrap(),
        10,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Empty { .. }));
    let err = Dataset::new(
        Images::from_bytes(idx(&[2, 1, 1], &[0, 0]), "img").unwrap(),
        Labels::from_bytes(idx(&[3], &[0, 0, 0]), "lab").unwrap(),
        10,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        Error::Idx(mnist_idx::Error::CountMismatch { .. })
    ));
}

#[test]
fn features_of_copies_up_front_what_the_loader_gathers() {
    let data = dataset(9);
    let pre = Preprocess::default();
    let all = Loader::features_of(&data, &pre, &[3, 8]).unwrap();
    assert_eq!(all.dim(), (2, 5));
    assert_eq!(all[[1, 0]], 8.0 / 255.0 - 0.5);
    assert_eq!(all[[0, 4]], 1.0);
    assert!(Loader::features_of(&data, &pre, &[9]).is_none());
}

#[test]
fn splits_are_disjoint_complete_and_seeded() {
    let (train, val) = split_indices(100, Holdout::Fraction(0.25), 3).unwrap();
    assert_eq!((train.len(), val.len()), (75, 25));
    let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert_eq!(
        split_indices(100, Holdout::Fraction(0.25), 3).unwrap().1,
        val
    );
    assert_ne!(
        split_indices(100, Holdout::Fraction(0.25), 4).unwrap().1,
        val
    );
    assert_eq!(
        split_indices(100, Holdout::Count(10), 0).unwrap().1.len(),
        10
    );
    assert_eq!(
        split_indices(5, Holdout::None, 0).unwrap(),
        ((0..5).collect(), vec![])
    );
    assert!(split_indices(10, Holdout::Count(10), 0).is_err());
    assert!(split_indices(10, Holdout::Fraction(1.0), 0).is_err());
    assert!(split_indices(10, Holdout::Fraction(-0.1), 0).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_index_once_per_epoch(n in 1usize..300, batch in 1usize..80, seed: u64, epoch in 0usize..5, drop_last: bool) {
        let data = dataset(n);
        let config = LoaderConfig { batch_size: batch, shuffle: true, drop_last, seed };
        let mut loader = Loader::new(&data, Preprocess::default(), config.clone()).unwrap();
        let (seen, sizes) = epoch_indices(&mut loader, epoch);
        prop_assert_eq!(sizes.len(), loader.batches_per_epoch());
        prop_assert_eq!(sizes.iter().sum::<usize>(), seen.len());
        prop_assert!(sizes.iter().all(|&s| s == batch || (!drop_last && s < batch)));
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), seen.len(), "no index twice");
        if drop_last {
            prop_assert_eq!(seen.len(), n / batch * batch);
        } else {
            prop_assert_eq!(sorted, (0..n as u32).collect::<Vec<_>>());
        }
        let mut again = Loader::new(&data, Preprocess::default(), config).unwrap();
        prop_assert_eq!(epoch_indices(&mut again, epoch).0, seen, "same seed, same order");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Lazy batches, made block by block with prefetch hints anywhere (in the
    /// batch, in the batches after it, past the epoch's end), hold the same
    /// rows, labels and targets as the whole-batch loader, bit for bit.
    #[test]
    fn lazy_batches_equal_whole_batches(n in 1usize..200, batch in 1usize..60, block in 1usize..20, seed: u64, hint in 0usize..1000) {
        let data = dataset(n);
        let config = LoaderConfig { batch_size: batch, shuffle: true, drop_last: false, seed };
        let pre = Preprocess::default();
        let mut whole = Loader::new(&data, pre.clone(), config.clone()).unwrap();
        let mut lazy = Loader::new(&data, pre.clone(), config).unwrap();
        whole.begin_epoch(1);
        lazy.begin_epoch(1);
        let stride = pre.features(4) + 3;
        while let Some(expected) = whole.next_batch() {
            let got = lazy.next_lazy().unwrap();
            prop_assert_eq!(got.len(), expected.len());
            prop_assert_eq!(got.indices, expected.indices);
            prop_assert_eq!(got.labels, expected.labels);
            prop_assert_eq!(got.y, expected.y);
            got.prefetch(hint, block);
            got.prefetch(usize::MAX - 1, 5);
            let mut first = 0;
            while first < got.len() {
                let rows = block.min(got.len() - first);
                got.prefetch(first + rows, rows);
                let mut out = vec![f32::NAN; rows * stride];
                got.features_into(first, &mut out, stride);
                for (r, row) in out.chunks_exact(stride).enumerate() {
                    let want = expected.x.row(first + r);
                    prop_assert_eq!(&row[..want.len()], want.as_slice().unwrap());
                    prop_assert!(row[want.len()..].iter().all(|v| v.is_nan()), "padding untouched");
                }
                first += rows;
            }
        }
        prop_assert!(lazy.next_lazy().is_none());
    }

    /// Any range of the features (pixels, the bias, both or neither) made
    /// by `columns_into` holds the same values as those columns of
    /// `features_into`'s rows, bit for bit, and leaves the rest of each row
    /// untouched; prefetching any columns is harmless.
    #[test]
    fn lazy_columns_equal_the_columns_of_whole_rows(n in 1usize..100, batch in 1usize..40, lo in 0usize..6, len in 0usize..6, bias: bool, seed: u64) {
        let data = dataset(n);
        let config = LoaderConfig { batch_size: batch, shuffle: true, drop_last: false, seed };
        let pre = Preprocess::new(Normalization::Centered, bias);
        let features = pre.features(4);
        let (lo, hi) = (lo.min(features), (lo + len).min(features));
        let mut loader = Loader::new(&data, pre, config).unwrap();
        loader.begin_epoch(1);
        while let Some(got) = loader.next_lazy() {
            let rows = got.len();
            let mut whole = vec![0.0f32; rows * features];
            got.features_into(0, &mut whole, features);
            let stride = hi - lo + 2;
            let mut part = vec![f32::NAN; rows * stride];
            got.prefetch_columns(0, rows + 3, lo..hi);
            got.columns_into(0, &mut part, stride, lo..hi);
            for (row, want) in part.chunks_exact(stride).zip(whole.chunks_exact(features)) {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(&row[..hi - lo]), bits(&want[lo..hi]));
                prop_assert!(row[hi - lo..].iter().all(|v| v.is_nan()), "rest untouched");
            }
        }
    }
}

proptest! {
    /// Rows numbered past a batch are the next batches' rows: made by
    /// `columns_into` with the same values, and with the key the next batch
    /// gives them; no key past the epoch's end, and other keys for another
    /// dataset (even of the same images) or another preprocessing.
    #[test]
    fn rows_past_a_batch_are_the_next_batches_rows(n in 1usize..60, batch in 1usize..20, bias: bool, seed: u64) {
        let data = dataset(n);
        let twin = dataset(n);
        let config = LoaderConfig { batch_size: batch, shuffle: true, drop_last: false, seed };
        let pre = Preprocess::new(Normalization::Centered, bias);
        let features = pre.features(4);
        let mut loader = Loader::new(&data, pre.clone(), config.clone()).unwrap();
        let mut other_data = Loader::new(&twin, pre, config.clone()).unwrap();
        let mut other_pre = Loader::new(&data, Preprocess::new(Normalization::Unit, bias), config).unwrap();
        loader.begin_epoch(1);
        other_data.begin_epoch(1);
        other_pre.begin_epoch(1);
        let mut ahead: Option<(Vec<f32>, Vec<u64>)> = None;
        let mut left = n;
        while let Some(got) = loader.next_lazy() {
            let rows = got.len();
            left -= rows;
            let mut whole = vec![0.0f32; rows * features];
            got.features_into(0, &mut whole, features);
            let key = got.rows_key(0, rows).unwrap();
            if let Some((x, k)) = ahead.take() {
                prop_assert_eq!(&x[..], &whole[..]);
                prop_assert_eq!(&k, &key);
            }
            let twin_key = other_data.next_lazy().unwrap().rows_key(0, rows);
            let unit_key = other_pre.next_lazy().unwrap().rows_key(0, rows);
            prop_assert_ne!(Some(&key), twin_key.as_ref());
            prop_assert_ne!(Some(&key), unit_key.as_ref());
            prop_assert_eq!(got.rows_key(rows, left + 1), None);
            // The next batch's rows, if it is as long as this one.
            let next = batch.min(left);
            if next == rows {
                let mut x = vec![0.0f32; rows * features];
                got.columns_into(rows, &mut x, features, 0..features);
                ahead = Some((x, got.rows_key(rows, rows).unwrap()));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// An order prepared ahead and drawn in pieces, from two threads at
    /// once or partly, is the order `begin_epoch` draws, element for
    /// element, epoch after epoch (the buffers reused), with and without
    /// shuffling, over all samples or a subset.
    #[test]
    fn prepared_orders_equal_drawn_orders(n in 1usize..3000, seed: u64, shuffle: bool, subset: bool, pieces in 0usize..8) {
        let data = dataset(n);
        let config = LoaderConfig { batch_size: 7, shuffle, drop_last: false, seed };
        let pre = Preprocess::default();
        let make = || {
            if subset {
                let picked: Vec<usize> = (0..n).rev().step_by(2).collect();
                Loader::with_indices(&data, pre.clone(), config.clone(), &picked).unwrap()
            } else {
                Loader::new(&data, pre.clone(), config.clone()).unwrap()
            }
        };
        let (mut drawn, mut prepared) = (make(), make());
        for epoch in 0..3 {
            drawn.begin_epoch(epoch);
            let pending = prepared.prepare_epoch(epoch);
            prop_assert_eq!(pending.epoch(), epoch);
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| {
                        for _ in 0..pieces {
                            pending.piece();
                        }
                    });
                }
            });
            prepared.begin_prepared_epoch(pending);
            prop_assert_eq!(prepared.order(), drawn.order());
            let first = prepared.next_batch().unwrap().indices.to_vec();
            prop_assert_eq!(&first[..], &drawn.order()[..first.len()]);
        }
    }
}

#[test]
fn a_prepared_order_is_drawn_to_the_end_and_then_has_no_pieces() {
    let data = dataset(5000);
    let config = LoaderConfig {
        seed: 3,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(&data, Preprocess::default(), config).unwrap();
    let pending = loader.prepare_epoch(4);
    let mut pieces = 0;
    while pending.piece() {
        pieces += 1;
    }
    // 4,999 swaps, 768 a piece.
    assert_eq!(pieces, 7);
    assert!(!pending.piece());
    loader.begin_prepared_epoch(pending);
    let taken = loader.order().to_vec();
    loader.begin_epoch(4);
    assert_eq!(taken, loader.order());
    assert_ne!(taken, (0..5000).collect::<Vec<u32>>());
}
