use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use ndarray::{Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::{one_hot_into, Dataset};
use crate::error::{Error, Result};
use crate::preprocess::{Normalization, Preprocess};

/// How a [`Loader`] cuts a dataset into batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Samples per batch (the post: 512).
    pub batch_size: usize,
    /// A fresh random order every epoch (the post: on).
    pub shuffle: bool,
    /// Skip the short last batch (the post: off, so 60,000 samples give 117
    /// batches of 512 and one of 96).
    pub drop_last: bool,
    /// Seed of the shuffles.
    pub seed: u64,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 512,
            shuffle: true,
            drop_last: false,
            seed: 0,
        }
    }
}

impl LoaderConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero batch size.
    pub fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::InvalidConfig {
                name: "batch size",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// One batch: features, one-hot targets, labels and the sample indices.
///
/// The arrays borrow the loader's buffers, which are reused for every batch.
#[derive(Debug)]
pub struct Batch<'a> {
    /// Features, `rows x features`.
    pub x: ArrayView2<'a, f32>,
    /// One-hot targets, `rows x classes`.
    pub y: ArrayView2<'a, f32>,
    /// The labels.
    pub labels: &'a [u8],
    /// The dataset indices of the rows.
    pub indices: &'a [u32],
}

impl Batch<'_> {
    /// Number of samples in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch is empty (never, for batches a loader hands out).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Cuts a dataset (or a subset of its indices) into batches, epoch after
/// epoch.
///
/// Each epoch visits every sample exactly once; with shuffling on, in a
/// fresh permutation drawn from the seed and the epoch number alone, so an
/// epoch's order can be reproduced without replaying the earlier ones. Each
/// batch is gathered in one pass from the image bytes into buffers allocated
/// once.
#[derive(Debug)]
pub struct Loader<'d> {
    data: &'d Dataset,
    pre: Preprocess,
    config: LoaderConfig,
    /// The samples, when a subset; `None` for all of them in order (so a
    /// loader over the whole dataset keeps one index per sample, its order).
    base: Option<Vec<u32>>,
    order: Vec<u32>,
    /// The buffer of an order taken before, for the next one to prepare.
    spare: Vec<u32>,
    cursor: usize,
    features: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    labels: Vec<u8>,
}

impl<'d> Loader<'d> {
    /// A loader over every sample of `data`.
    ///
    /// # Errors
    /// As [`Loader::with_indices`].
    pub fn new(data: &'d Dataset, pre: Preprocess, config: LoaderConfig) -> Result<Self> {
        let n = u32::try_from(data.len()).map_err(|_| Error::InvalidConfig {
            name: "indices",
            reason: format!("{} samples are more than a loader indexes", data.len()),
        })?;
        Self::build(data, pre, config, None, (0..n).collect())
    }

    /// A loader over the samples `indices` of `data`, in that order when not
    /// shuffling.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad configuration, no indices, an
    /// index past the end of the dataset, or more than `u32::MAX` samples.
    pub fn with_indices(
        data: &'d Dataset,
        pre: Preprocess,
        config: LoaderConfig,
        indices: &[usize],
    ) -> Result<Self> {
        config.check()?;
        if indices.is_empty() {
            return Err(Error::InvalidConfig {
                name: "indices",
                reason: "no samples to load".into(),
            });
        }
        let base = indices
            .iter()
            .map(|&i| {
                u32::try_from(i)
                    .ok()
                    .filter(|_| i < data.len())
                    .ok_or_else(|| Error::InvalidConfig {
                        name: "indices",
                        reason: format!("index {i} is past the {} samples", data.len()),
                    })
            })
            .collect::<Result<Vec<u32>>>()?;
        let order = base.clone();
        Self::build(data, pre, config, Some(base), order)
    }

    fn build(
        data: &'d Dataset,
        pre: Preprocess,
        config: LoaderConfig,
        base: Option<Vec<u32>>,
        order: Vec<u32>,
    ) -> Result<Self> {
        config.check()?;
        if order.is_empty() {
            return Err(Error::InvalidConfig {
                name: "indices",
                reason: "no samples to load".into(),
            });
        }
        let features = pre.features(data.pixels());
        let rows = config.batch_size.min(order.len());
        Ok(Self {
            data,
            pre,
            order,
            spare: Vec::new(),
            base,
            cursor: 0,
            features,
            x: vec![0.0; rows * features],
            y: vec![0.0; rows * data.classes()],
            labels: Vec::with_capacity(rows),
            config,
        })
    }

    /// Samples per epoch.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether there are no samples (never: construction rejects that).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Features per sample.
    pub fn features(&self) -> usize {
        self.features
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Starts epoch `epoch`: draws its order and rewinds.
    pub fn begin_epoch(&mut self, epoch: usize) {
        let mut order = std::mem::take(&mut self.order);
        self.unshuffled(&mut order);
        self.order = order;
        if self.config.shuffle {
            let mut rng = self.epoch_rng(epoch);
            self.order.shuffle(&mut rng);
        }
        self.cursor = 0;
    }

    /// The order's random numbers for `epoch`: from the seed and the epoch
    /// alone.
    fn epoch_rng(&self, epoch: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        rng.set_stream(epoch as u64);
        rng
    }

    /// The samples in their unshuffled order, into `order` (cleared
    /// first).
    fn unshuffled(&self, order: &mut Vec<u32>) {
        order.clear();
        match &self.base {
            Some(base) => order.extend_from_slice(base),
            // Without a subset, every sample (fewer than 2^32: checked in
            // `new`).
            None => order.extend((0..self.data.len()).map(|i| i as u32)),
        }
    }

    /// Epoch `epoch`'s order, to be drawn a piece at a time (by threads
    /// that would otherwise wait, say during the epoch before) and then
    /// taken by [`begin_prepared_epoch`](Self::begin_prepared_epoch): the
    /// same order as [`begin_epoch`](Self::begin_epoch) draws, element for
    /// element, however the pieces fall. Reuses the buffer of an order
    /// taken before.
    pub fn prepare_epoch(&mut self, epoch: usize) -> PendingOrder {
        let mut order = std::mem::take(&mut self.spare);
        self.unshuffled(&mut order);
        // `SliceRandom::shuffle` swaps position `i` with a draw from
        // `0..=i`, for `i` from the last position down to 1.
        let left = if self.config.shuffle {
            order.len().saturating_sub(1)
        } else {
            0
        };
        PendingOrder {
            epoch,
            state: Mutex::new(Shuffle {
                order,
                left,
                rng: self.epoch_rng(epoch),
            }),
        }
    }

    /// Starts the epoch `pending` was prepared for, drawing what is left of
    /// its order, and rewinds; the same as
    /// [`begin_epoch`](Self::begin_epoch) for that epoch.
    ///
    /// # Panics
    /// When `pending` was prepared by a loader over another number of
    /// samples: a programming error.
    pub fn begin_prepared_epoch(&mut self, pending: PendingOrder) {
        let mut shuffle = pending
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        assert_eq!(
            shuffle.order.len(),
            self.order.len(),
            "an order prepared by another loader"
        );
        shuffle.draw(usize::MAX);
        self.spare = std::mem::replace(&mut self.order, shuffle.order);
        self.cursor = 0;
    }

    /// The sample order of the current epoch.
    pub fn order(&self) -> &[u32] {
        &self.order
    }

    /// Takes the next batch's rows of the order and fills the labels and
    /// one-hot targets; `None` at the end of the epoch.
    fn advance(&mut self) -> Option<(usize, usize)> {
        let remaining = self.order.len() - self.cursor;
        let rows = remaining.min(self.config.batch_size);
        if rows == 0 || (self.config.drop_last && rows < self.config.batch_size) {
            return None;
        }
        let start = self.cursor;
        self.cursor += rows;
        let classes = self.data.classes();
        self.labels.clear();
        let labels = self.data.labels();
        self.labels
            .extend(self.order[start..start + rows].iter().map(|&i| {
                labels
                    .get(i as usize)
                    .copied()
                    .unwrap_or_else(|| unreachable!("indices were checked against the dataset"))
            }));
        one_hot_into(&self.labels, classes, &mut self.y[..rows * classes]);
        Some((start, rows))
    }

    /// The next batch of the current epoch, or `None` at its end.
    pub fn next_batch(&mut self) -> Option<Batch<'_>> {
        let (start, rows) = self.advance()?;
        let indices = &self.order[start..start + rows];
        let f = self.features;
        let classes = self.data.classes();
        gather(
            self.data,
            &self.pre,
            indices,
            &mut self.x[..rows * f],
            f,
            0..self.data.pixels(),
        );
        Some(Batch {
            x: ArrayView2::from_shape((rows, f), &self.x[..rows * f])
                .unwrap_or_else(|_| unreachable!("buffer holds rows x features")),
            y: ArrayView2::from_shape((rows, classes), &self.y[..rows * classes])
                .unwrap_or_else(|_| unreachable!("buffer holds rows x classes")),
            labels: &self.labels,
            indices,
        })
    }

    /// The next batch of the current epoch without its features, or `None`
    /// at its end: the features are made later, a few rows at a time, by
    /// [`LazyBatch::features_into`], on whichever thread needs them, so that
    /// they are still in that core's cache when used. Same order, labels and
    /// targets as [`next_batch`](Self::next_batch).
    pub fn next_lazy(&mut self) -> Option<LazyBatch<'_>> {
        let (start, rows) = self.advance()?;
        let classes = self.data.classes();
        Some(LazyBatch {
            y: ArrayView2::from_shape((rows, classes), &self.y[..rows * classes])
                .unwrap_or_else(|_| unreachable!("buffer holds rows x classes")),
            labels: &self.labels,
            indices: &self.order[start..start + rows],
            from_here: &self.order[start..],
            data: self.data,
            pre: &self.pre,
        })
    }

    /// Features of `indices` of `data` as one array, `indices.len() x
    /// features`: the up-front copy, for callers that want it.
    pub fn features_of(data: &Dataset, pre: &Preprocess, indices: &[usize]) -> Option<Array2<f32>> {
        let f = pre.features(data.pixels());
        let mut out = Array2::zeros((indices.len(), f));
        let rows = indices
            .iter()
            .map(|&i| u32::try_from(i).ok().filter(|_| i < data.len()))
            .collect::<Option<Vec<u32>>>()?;
        gather(data, pre, &rows, out.as_slice_mut()?, f, 0..data.pixels());
        Some(out)
    }
}

/// An epoch's order being drawn ahead of time, a piece at a time: see
/// [`Loader::prepare_epoch`].
///
/// It is `Sync`: several threads may ask for pieces; they are drawn one
/// after the other, in the order [`Loader::begin_epoch`] draws them, so the
/// result never depends on who drew which piece.
#[derive(Debug)]
pub struct PendingOrder {
    epoch: usize,
    state: Mutex<Shuffle>,
}

impl PendingOrder {
    /// Swaps per piece: a few microseconds' work.
    const PIECE: usize = 768;

    /// The epoch this order is for.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Draws the next few positions of the order and returns `true`, or
    /// returns `false` when none are left or another thread is drawing.
    pub fn piece(&self) -> bool {
        match self.state.try_lock() {
            Ok(mut shuffle) => shuffle.draw(Self::PIECE),
            Err(_) => false,
        }
    }
}

/// A Fisher-Yates shuffle under way, exactly as `SliceRandom::shuffle`
/// runs it: position `i` swapped with a draw from `0..=i`, for `i` from
/// `left` down to 1.
#[derive(Debug)]
struct Shuffle {
    order: Vec<u32>,
    /// Positions left to draw: `left..=1`, from the top.
    left: usize,
    rng: ChaCha8Rng,
}

impl Shuffle {
    /// Draws up to `n` positions; whether any were drawn.
    fn draw(&mut self, n: usize) -> bool {
        let start = self.left;
        let stop = start.saturating_sub(n);
        for i in (stop + 1..=start).rev() {
            // `gen_range` on `u32`, as `shuffle` draws for slices shorter
            // than 2^32 (a loader indexes its samples with `u32`).
            let bound = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let j = self.rng.gen_range(0..bound) as usize;
            self.order.swap(i, j);
        }
        self.left = stop;
        start > stop
    }
}

/// A batch whose features are not made yet: see [`Loader::next_lazy`].
///
/// It is `Sync`: threads may each fill their own rows at the same time.
#[derive(Debug, Clone, Copy)]
pub struct LazyBatch<'a> {
    /// One-hot targets, `rows x classes`.
    pub y: ArrayView2<'a, f32>,
    /// The labels.
    pub labels: &'a [u8],
    /// The dataset indices of the rows.
    pub indices: &'a [u32],
    /// The indices of this batch and of the rest of the epoch after it.
    from_here: &'a [u32],
    data: &'a Dataset,
    pre: &'a Preprocess,
}

impl LazyBatch<'_> {
    /// Number of samples in the batch.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty (never, for batches a loader hands out).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Features per sample.
    pub fn features(&self) -> usize {
        self.pre.features(self.data.pixels())
    }

    /// Writes the features of rows `first..first + n` of the batch into
    /// `out`, one row every `stride` values, with `n = out.len() / stride`:
    /// the first [`features`](Self::features) values of each row, the rest
    /// untouched. The same values as [`Loader::next_batch`], bit for bit.
    /// Rows from [`len`](Self::len) on are those of the batches that
    /// follow in the epoch, numbered on (as for [`prefetch`](Self::prefetch)).
    /// Images are read where the rows are made: ask for them early with
    /// [`prefetch`](Self::prefetch).
    ///
    /// # Panics
    /// When `stride` is smaller than the number of features, `out.len()` is
    /// not a multiple of it, or the rows run past the end of the epoch.
    pub fn features_into(&self, first: usize, out: &mut [f32], stride: usize) {
        self.columns_into(first, out, stride, 0..self.features());
    }

    /// As [`features_into`](Self::features_into), for the features
    /// `columns` only: the first `columns.len()` values of each row are
    /// features `columns` of the row, the same values, bit for bit.
    ///
    /// # Panics
    /// As [`features_into`](Self::features_into), and when `columns` does
    /// not lie within the features or is longer than `stride`.
    pub fn columns_into(
        &self,
        first: usize,
        out: &mut [f32],
        stride: usize,
        columns: Range<usize>,
    ) {
        assert!(stride > 0 && out.len().is_multiple_of(stride), "row stride");
        assert!(
            columns.start <= columns.end
                && columns.end <= self.features()
                && columns.len() <= stride,
            "columns"
        );
        let n = out.len() / stride;
        let rows = &self.from_here[first..first + n];
        let pixels = self.data.pixels();
        // The bias feature, if any, follows the pixels.
        let pre = Preprocess::new(
            self.pre.normalization(),
            self.pre.bias() && columns.contains(&pixels),
        );
        let px = columns.start.min(pixels)..columns.end.min(pixels);
        gather(self.data, &pre, rows, out, stride, px);
    }

    /// A key for rows `first..first + n`, numbered on past the batch as
    /// for [`prefetch`](Self::prefetch): the dataset's
    /// [`id`](Dataset::id), the preprocessing and the rows' sample
    /// indices, so that equal keys mean the same features, bit for bit.
    /// `None` when the epoch has fewer rows.
    pub fn rows_key(&self, first: usize, n: usize) -> Option<Vec<u64>> {
        let rows = self.from_here.get(first..first.checked_add(n)?)?;
        let pre = match self.pre.normalization() {
            Normalization::Centered => 0,
            Normalization::Unit => 1,
        };
        let head = [self.data.id(), pre, u64::from(self.pre.bias())];
        Some(
            head.into_iter()
                .chain(rows.iter().map(|&i| u64::from(i)))
                .collect(),
        )
    }

    /// Asks the CPU to bring the images of rows `first..first + n` into its
    /// cache, without waiting for them: a hint, given a little ahead of
    /// [`features_into`](Self::features_into) so that memory latency
    /// overlaps other work. Rows from [`len`](Self::len) on are those of the
    /// batches that follow in the epoch, numbered on; rows past the epoch's
    /// end are ignored. On CPUs without a prefetch instruction available to
    /// stable Rust, does nothing.
    pub fn prefetch(&self, first: usize, n: usize) {
        self.prefetch_columns(first, n, 0..self.features());
    }

    /// As [`prefetch`](Self::prefetch), for the bytes of features
    /// `columns` only (see [`columns_into`](Self::columns_into)).
    pub fn prefetch_columns(&self, first: usize, n: usize, columns: Range<usize>) {
        let pixels = self.data.pixels();
        let px = columns.start.min(pixels)..columns.end.min(pixels);
        let rows = self.from_here.iter().skip(first).take(n);
        for &i in rows {
            if let Some(bytes) = self
                .data
                .images()
                .image(i as usize)
                .and_then(|image| image.get(px.clone()))
            {
                crate::preprocess::prefetch(bytes);
            }
        }
    }
}

/// Features of pixels `px` of samples `rows` of `data` into `out` (one row
/// every `stride` values), then the bias if `pre` has one; groups of a few
/// rows so that the image slices fit on the stack.
fn gather(
    data: &Dataset,
    pre: &Preprocess,
    rows: &[u32],
    out: &mut [f32],
    stride: usize,
    px: Range<usize>,
) {
    const GROUP: usize = 16;
    let image = |i: u32| {
        data.images()
            .image(i as usize)
            .and_then(|image| image.get(px.clone()))
            .unwrap_or_else(|| unreachable!("indices and pixels were checked against the dataset"))
    };
    for (group, out) in rows.chunks(GROUP).zip(out.chunks_mut(GROUP * stride)) {
        let mut images: [&[u8]; GROUP] = [&[]; GROUP];
        for (dst, &i) in images.iter_mut().zip(group) {
            *dst = image(i);
        }
        pre.rows_into(&images[..group.len()], out, stride);
    }
}
