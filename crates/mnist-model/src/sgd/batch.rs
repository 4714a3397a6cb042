//! A step's batch: cut into fixed parts, each made block by block from its
//! rows and run through the kernels while in cache, on as many threads as
//! allowed when it pays; the gradients added in part order, and the update
//! of the weights split among the same threads.

use ndarray::{Array2, ArrayView2};

use super::{split_weights, update, Rule, StepScratch};
use crate::error::{Error, Result};
use crate::head::Head;
use crate::kernel;
use crate::linear::{contiguous, LinearModel};
use crate::parts::run_parts;
use crate::rows::RowSource;

/// The rows of a part, at most: a batch of `rows` is cut into
/// `max(2, ceil(rows / PART_ROWS))` parts of equal size (to a row) whose
/// gradients are summed in order, whatever the number of threads: the
/// result depends only on the data, never on scheduling. The post's batches
/// of 512 and softmax regression's of 64 are two parts; a batch of 4,096
/// is 16, enough for 16 cores.
const PART_ROWS: usize = 256;

/// Below this many rows a second thread costs more than it saves, in
/// parts of rows or halves of the features. At 64 rows (`--preset
/// softmax`, then cut into parts of rows), two threads took 1.43 to 1.52 s
/// against 1.95 to 2.07 s on one (2-core Zen 4, with the update split as
/// well).
pub(super) const MIN_ROWS_FOR_THREADS: usize = 64;

/// The number of parts of a batch of `rows` (see [`PART_ROWS`]).
pub(super) fn parts_of(rows: usize) -> usize {
    rows.div_ceil(PART_ROWS).max(2)
}

/// Rows of part `k` of `parts` in a batch of `rows`.
fn part_rows(k: usize, parts: usize, rows: usize) -> std::ops::Range<usize> {
    k * rows / parts..(k + 1) * rows / parts
}

/// One part's buffers: its gradient (packed), its block of inputs
/// (`kernel::BLOCK` rows of whole chunks), its block of probabilities
/// (then `p - y`), and its summed loss.
#[derive(Debug, Default, Clone)]
pub(super) struct PartBuffers {
    grad: Vec<f32>,
    x: Vec<f32>,
    p: Vec<f32>,
    loss: f64,
}

/// Checks that `x` fits the model and `y` has a row per row of `x`.
pub(super) fn check_rows(
    model: &LinearModel,
    x: &ArrayView2<'_, f32>,
    y: &ArrayView2<'_, f32>,
) -> Result<()> {
    model.check_input(x)?;
    check_targets(model, y)?;
    if y.nrows() != x.nrows() {
        return Err(Error::DimensionMismatch {
            what: "target rows",
            expected: x.nrows(),
            found: y.nrows(),
        });
    }
    Ok(())
}

/// Rows of a matrix in standard layout, `features` values each, as a row
/// source that copies them (whole rows or a range of their columns).
pub(crate) struct MatrixRows<'a> {
    xs: &'a [f32],
    features: usize,
}

impl RowSource for MatrixRows<'_> {
    fn fill(&self, first: usize, out: &mut [f32], stride: usize) {
        self.fill_columns(first, out, stride, 0..self.features, self.features);
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
            let at = (first + k) * self.features;
            row[..columns.len()].copy_from_slice(&self.xs[at + columns.start..at + columns.end]);
        }
    }
}

/// Calls `f` with a row source copying from `x`.
pub(crate) fn with_rows<T>(
    x: ArrayView2<'_, f32>,
    f: impl FnOnce(&MatrixRows<'_>) -> T,
) -> Result<T> {
    let features = x.ncols();
    let x = x.as_standard_layout();
    let xs = contiguous(&x, "input layout")?;
    Ok(f(&MatrixRows { xs, features }))
}

/// Checks that `y` has a column per class of the model and at least one
/// row; returns the number of rows.
pub(super) fn check_targets(model: &LinearModel, y: &ArrayView2<'_, f32>) -> Result<usize> {
    if y.ncols() != model.classes() {
        return Err(Error::DimensionMismatch {
            what: "target columns (classes)",
            expected: model.classes(),
            found: y.ncols(),
        });
    }
    match y.nrows() {
        0 => Err(Error::ZeroSize { what: "batch rows" }),
        rows => Ok(rows),
    }
}

/// Checks the targets against the model and sizes the scratch buffers;
/// returns the number of rows.
fn prepare(
    model: &LinearModel,
    y: &ArrayView2<'_, f32>,
    scratch: &mut StepScratch,
) -> Result<usize> {
    let (features, classes) = (model.features(), model.classes());
    let rows = check_targets(model, y)?;
    let len = kernel::packed_len(features, classes);
    let stride = kernel::stride(features);
    let parts = parts_of(rows);
    if scratch.parts.len() < parts {
        scratch.parts.resize_with(parts, PartBuffers::default);
    }
    for part in &mut scratch.parts[..parts] {
        // Written by the part itself, on the thread that runs it.
        part.grad.resize(len, 0.0);
        part.x.resize(kernel::BLOCK * stride, 0.0);
        part.p.resize(kernel::BLOCK * classes, 0.0);
    }
    Ok(rows)
}

/// A training step's work: the fixed parts of the batch (forward pass,
/// loss and gradient, each into its own buffers), on up to `threads`
/// threads when the batch is large enough, then, with an update rule, the
/// update of the weights (and the velocity) from the parts' gradients
/// added in order, its weights split among the same threads. The update is
/// skipped if the loss is not finite. Returns the summed loss and whether
/// every updated weight is finite.
///
/// Every part reads the weights and writes only its own buffers, and each
/// thread of the update writes only its own range of weights, so the
/// borrow checker sees that they are apart; `run_parts` is the only
/// concurrency.
pub(super) fn in_parts<F>(
    model: &mut LinearModel,
    y: ArrayView2<'_, f32>,
    fill: &F,
    scratch: &mut StepScratch,
    update_with: Option<(Rule, Option<&mut [f32]>)>,
    threads: usize,
) -> Result<(f64, bool)>
where
    F: RowSource + ?Sized,
{
    let rows = prepare(model, &y, scratch)?;
    let y = y.as_standard_layout();
    let ys = contiguous(&y, "target layout")?;
    let (features, classes, head) = (model.features(), model.classes(), model.head());
    let parts = parts_of(rows);
    let threads = if rows >= MIN_ROWS_FOR_THREADS {
        threads.clamp(1, parts)
    } else {
        1
    };
    let packed = model.packed();
    let buffers = &mut scratch.parts[..parts];
    run_parts(buffers, threads, |k, b| {
        let part = Part {
            head,
            packed,
            features,
            classes,
            ys,
            rows,
            fill,
            kernel: kernel::run,
        };
        b.loss = run_part(
            part,
            part_rows(k, parts, rows),
            &mut b.grad,
            &mut b.x,
            &mut b.p,
        );
    });
    let loss = buffers.iter().map(|b| b.loss).sum::<f64>();
    let finite = match update_with {
        Some((rule, velocity)) if loss.is_finite() => {
            update_in_ranges(model.packed_mut(), velocity, buffers, rule, threads)
        }
        _ => true,
    };
    Ok((loss, finite))
}

/// [`update`] from the parts' gradients, in `threads` ranges of the weights
/// on as many threads. Within each range, the gradients are first added
/// in part order into the first part's (`((g0 + g1) + g2) + ...`), the last
/// one within the update itself; the update is weight by weight, so the
/// ranges give the same bits as one sweep. Each thread reads only its range
/// of the gradients the other threads wrote: after a step on two threads,
/// one sweep would wait on the other core's cache for all of them
/// (measured: about 15% of a `--preset softmax` run).
fn update_in_ranges(
    w: &mut [f32],
    velocity: Option<&mut [f32]>,
    parts: &mut [PartBuffers],
    rule: Rule,
    threads: usize,
) -> bool {
    let Some((last, rest)) = parts.split_last_mut() else {
        return true;
    };
    let Some((first, middle)) = rest.split_first_mut() else {
        return true;
    };
    let len = w.len();
    let lanes = len / kernel::LANES;
    let cut = |r: usize| r * lanes / threads * kernel::LANES;
    let mut pieces = Vec::with_capacity(threads);
    let (mut w_rest, mut v_rest, mut g_rest) = (w, velocity, first.grad.as_mut_slice());
    for r in 0..threads {
        let n = if r + 1 == threads {
            w_rest.len()
        } else {
            cut(r + 1) - cut(r)
        };
        let ((wr, vr), (wt, vt)) = split_weights(w_rest, v_rest, n);
        let (gr, gt) = g_rest.split_at_mut(n);
        pieces.push((cut(r), wr, vr, gr, true));
        (w_rest, v_rest, g_rest) = (wt, vt, gt);
    }
    let (middle, last) = (&*middle, &last.grad);
    let path = kernel::path();
    run_parts(&mut pieces, threads, |_, (at, w, v, g0, finite)| {
        let range = *at..*at + w.len();
        for part in middle {
            for (g, &h) in g0.iter_mut().zip(&part.grad[range.clone()]) {
                *g += h;
            }
        }
        *finite = update(path, w, v.as_deref_mut(), g0, Some(&last[range]), rule);
    });
    pieces.iter().all(|piece| piece.4)
}

/// What every part of a batch shares.
pub(super) struct Part<'a, F: ?Sized> {
    pub(super) head: Head,
    pub(super) packed: &'a [f32],
    pub(super) features: usize,
    pub(super) classes: usize,
    pub(super) ys: &'a [f32],
    /// Rows in the batch.
    pub(super) rows: usize,
    pub(super) fill: &'a F,
    /// The kernel entry point (tests pick other register blockings).
    pub(super) kernel: fn(kernel::Op<'_>),
}

/// Rows `range` of a batch, block by block: made by `fill` into `x`, then
/// forward pass, loss and gradient while the block is in cache. As the
/// forward pass goes, the source is asked to prefetch the next block's rows,
/// a few at a time; after the part's last block, its first block in the next
/// batch. Returns the summed loss.
pub(super) fn run_part<F>(
    part: Part<'_, F>,
    range: std::ops::Range<usize>,
    grad: &mut [f32],
    x: &mut [f32],
    p: &mut [f32],
) -> f64
where
    F: RowSource + ?Sized,
{
    let Part {
        head,
        packed,
        features,
        classes,
        ys,
        rows,
        fill,
        kernel: run,
    } = part;
    let stride = kernel::stride(features);
    if range.is_empty() {
        grad.fill(0.0);
    }
    let mut loss = 0.0f64;
    let mut r = range.start;
    while r < range.end {
        let n = kernel::BLOCK.min(range.end - r);
        let xb = &mut x[..n * stride];
        fill.fill(r, xb, stride);
        let (next, next_n) = if r + n < range.end {
            (r + n, kernel::BLOCK.min(range.end - r - n))
        } else {
            (range.start + rows, kernel::BLOCK.min(range.len()))
        };
        let ahead = kernel::ahead(fill, n, next, next_n);
        // The padding must be zero whatever the source wrote there.
        for row in xb.chunks_exact_mut(stride) {
            row[features..].fill(0.0);
        }
        run(kernel::Op::Step {
            head,
            done: &ahead,
            block: kernel::Block {
                x: xb,
                rows: n,
                chunks: kernel::chunks(features),
                classes,
                packed,
            },
            y: &ys[r * classes..(r + n) * classes],
            p,
            grad,
            // The first block writes the gradient: no zeroing pass.
            fresh: r == range.start,
            loss: &mut loss,
        });
        r += n;
    }
    loss
}

/// The gradient `X^T (p - y)` of the summed (not averaged) clipped
/// cross-entropy with respect to the weights, shape `(features, classes)`,
/// with `p` the model's probabilities on `x`. Divide by the number of rows
/// for the gradient of [`bce_loss`](crate::bce_loss); the clipping is
/// ignored, so this is exact only where `p` lies within `[1e-4, 1 - 1e-4]`.
///
/// This is the quantity [`Sgd::step`](super::Sgd::step) uses, computed by the same kernels.
///
/// # Errors
///
/// As [`Sgd::step`](super::Sgd::step): [`Error::DimensionMismatch`] or [`Error::ZeroSize`].
pub fn gradient(
    model: &LinearModel,
    x: ArrayView2<'_, f32>,
    y_onehot: ArrayView2<'_, f32>,
    scratch: &mut StepScratch,
) -> Result<Array2<f32>> {
    check_rows(model, &x, &y_onehot)?;
    // The products only: on a copy of the model, which is never updated.
    let mut copy = model.clone();
    with_rows(x, |fill| {
        in_parts(&mut copy, y_onehot, fill, scratch, None, 2)
    })??;
    let classes = model.classes();
    let parts = &scratch.parts[..parts_of(y_onehot.nrows())];
    Ok(Array2::from_shape_fn(
        (model.features(), classes),
        |(f, c)| {
            let i = kernel::packed_index(f, c, classes);
            let mut sum = parts[0].grad[i];
            for part in &parts[1..] {
                sum += part.grad[i];
            }
            sum
        },
    ))
}
