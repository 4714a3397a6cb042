//! Input rows made on demand.

/// A source of input rows for [`Sgd::step_rows`](crate::Sgd::step_rows) and
/// [`evaluate_rows`](crate::evaluate_rows): rows are asked for a block of a
/// few dozen at a time, where and when they are used, so that only a block
/// per thread ever exists as `f32`.
///
/// Any `Fn(first, out, stride) + Sync` closure is a source (with no
/// prefetching).
///
/// # Examples
///
/// ```
/// use mnist_model::RowSource;
///
/// /// Row `i` is `[i, i, ...]`.
/// struct Ramp {
///     features: usize,
/// }
///
/// impl RowSource for Ramp {
///     fn fill(&self, first: usize, out: &mut [f32], stride: usize) {
///         for (k, row) in out.chunks_exact_mut(stride).enumerate() {
///             row[..self.features].fill((first + k) as f32);
///         }
///     }
/// }
///
/// let mut out = vec![0.0f32; 2 * 4];
/// Ramp { features: 3 }.fill(5, &mut out, 4);
/// assert_eq!(out, [5.0, 5.0, 5.0, 0.0, 6.0, 6.0, 6.0, 0.0]);
/// ```
pub trait RowSource: Sync {
    /// Writes rows `first..first + n`, with `n = out.len() / stride`, into
    /// `out`, one row every `stride` values: the first `features` values of
    /// each row (the rest are ignored and may be left as they are).
    fn fill(&self, first: usize, out: &mut [f32], stride: usize);

    /// A hint that rows `first..first + n` will be filled soon, given while
    /// the rows before them are being computed on. Row numbers may go past
    /// the last row of the batch: they then mean the rows of the batch that
    /// follows, numbered on (row `len + i` is row `i` of the next batch of
    /// the same length); a source that cannot tell ignores them. Only a
    /// hint: the default does nothing, and results never depend on it.
    fn prefetch(&self, first: usize, n: usize) {
        let _ = (first, n);
    }

    /// Writes features `columns` (of `features`) of rows `first..first +
    /// n`, with `n = out.len() / stride`, into `out`, one row every
    /// `stride` values: the first `columns.len()` values of each row (the
    /// rest are ignored). The values must be those [`fill`](Self::fill)
    /// writes there. The default fills whole rows into a temporary buffer
    /// and copies the columns; a source that can make part of a row
    /// directly should.
    ///
    /// # Panics
    /// When `columns` does not lie within `0..features`, or `stride` is
    /// shorter than it.
    fn fill_columns(
        &self,
        first: usize,
        out: &mut [f32],
        stride: usize,
        columns: std::ops::Range<usize>,
        features: usize,
    ) {
        assert!(columns.end <= features && columns.len() <= stride);
        let n = out.len() / stride;
        let mut rows = vec![0.0f32; n * features];
        self.fill(first, &mut rows, features);
        for (dst, src) in out
            .chunks_exact_mut(stride)
            .zip(rows.chunks_exact(features))
        {
            dst[..columns.len()].copy_from_slice(&src[columns.clone()]);
        }
    }

    /// As [`prefetch`](Self::prefetch), for features `columns` of the rows
    /// only. The default prefetches whole rows.
    fn prefetch_columns(&self, first: usize, n: usize, columns: std::ops::Range<usize>) {
        let _ = columns;
        self.prefetch(first, n);
    }

    /// A key for rows `first..first + n`, numbered on past the batch as for
    /// [`prefetch`](Self::prefetch), or `None` when the source cannot tell
    /// or has no such rows (the default). Keys that compare equal, from
    /// this source or any other, must mean the same features, bit for bit.
    ///
    /// With keys, a step may [`fill`](Self::fill) the next batch's rows
    /// (rows `len..2 * len`, asked for with the key of `len..2 * len`) and
    /// compute on them early, at the end of the step before, when that
    /// batch turns out to be the one whose rows `0..len` have that key and
    /// the weights have not changed in between. Results are the same, bit
    /// for bit, with keys or without.
    fn rows_key(&self, first: usize, n: usize) -> Option<RowsKey> {
        let _ = (first, n);
        None
    }
}

/// What identifies a block of rows: see [`RowSource::rows_key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowsKey(Vec<u64>);

impl RowsKey {
    /// The key made of `parts`: say, a number naming the data and its
    /// preprocessing, then the rows' sample indices.
    pub fn new(parts: impl IntoIterator<Item = u64>) -> Self {
        RowsKey(parts.into_iter().collect())
    }
}

impl<F> RowSource for F
where
    F: Fn(usize, &mut [f32], usize) + Sync + ?Sized,
{
    fn fill(&self, first: usize, out: &mut [f32], stride: usize) {
        self(first, out, stride)
    }
}
