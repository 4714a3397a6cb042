//! A step's batch: cut into two fixed parts, each made block by block from
//! its rows and run through the kernels while in cache, on two threads when
//! it pays; the gradients added in order.

use ndarray::{Array2, ArrayView2};

use super::{update, Rule, StepScratch};
use crate::error::{Error, Result};
use crate::head::Head;
use crate::kernel;
use crate::linear::{contiguous, LinearModel};
use crate::pool;
use crate::rows::RowSource;

/// Batches are split into this many fixed parts whose gradients are summed
/// in order, whether or not the parts run on separate threads: the result
/// depends only on the data, never on scheduling.
pub(super) const PARTS: usize = 2;

/// Below this many rows a second thread costs more than it saves. At 64
/// rows (`--preset softmax`), two threads took 1.43 to 1.52 s against 1.95
/// to 2.07 s on one (2-core Zen 4, with the update split as well).
const MIN_ROWS_FOR_THREADS: usize = 64;

/// Checks that `x` fits the model and `y` has a row per row of `x`.
pub(super) fn check_rows(
    model: &LinearModel,
    x: &ArrayView2<'_, f32>,
    y: &ArrayView2<'_, f32>,
) -> Result<()> {
    model.check_input(x)?;
    if y.ncols() != model.classes() {
        return Err(Error::DimensionMismatch {
            what: "target columns (classes)",
            expected: model.classes(),
            found: y.ncols(),
        });
    }
    if y.nrows() != x.nrows() {
        return Err(Error::DimensionMismatch {
            what: "target rows",
            expected: x.nrows(),
            found: y.nrows(),
        });
    }
    Ok(())
}

/// Calls `f` with a row source copying from `x`.
pub(crate) fn with_rows<T>(
    x: ArrayView2<'_, f32>,
    f: impl FnOnce(&(dyn Fn(usize, &mut [f32], usize) + Sync)) -> T,
) -> Result<T> {
    let features = x.ncols();
    let x = x.as_standard_layout();
    let xs = contiguous(&x, "input layout")?;
    let copy = |first: usize, out: &mut [f32], stride: usize| {
        for (k, row) in out.chunks_exact_mut(stride).enumerate() {
            let at = (first + k) * features;
            row[..features].copy_from_slice(&xs[at..at + features]);
        }
    };
    Ok(f(&copy))
}

/// Checks the targets against the model and sizes the scratch buffers;
/// returns the number of rows.
fn prepare(
    model: &LinearModel,
    y: &ArrayView2<'_, f32>,
    scratch: &mut StepScratch,
) -> Result<usize> {
    let (features, classes) = (model.features(), model.classes());
    if y.ncols() != classes {
        return Err(Error::DimensionMismatch {
            what: "target columns (classes)",
            expected: classes,
            found: y.ncols(),
        });
    }
    let rows = y.nrows();
    if rows == 0 {
        return Err(Error::ZeroSize { what: "batch rows" });
    }
    let len = kernel::packed_len(features, classes);
    let stride = kernel::stride(features);
    for k in 0..PARTS {
        // Written by the part itself, on the thread that fills it.
        scratch.grads[k].resize(len, 0.0);
        scratch.xs[k].resize(kernel::BLOCK * stride, 0.0);
        scratch.ps[k].resize(kernel::BLOCK * classes, 0.0);
    }
    Ok(rows)
}

/// A training step's work: the two fixed parts of the batch (forward pass,
/// loss and gradient, each into its own gradient buffer), on two threads
/// when `threads` allows and the batch is large enough, then, with an
/// update rule, the update of the weights (and the velocity) from
/// `g0 + g1` on this thread: a few microseconds, less than handing half of
/// it to the other thread would cost. The update is skipped if the loss is
/// not finite. Returns the summed loss and whether every updated weight is
/// finite.
///
/// Both parts read the weights and each writes only its own buffers, so
/// the borrow checker sees that they are apart; the pool's `join` is the
/// only concurrency.
pub(super) fn two_sides<F>(
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
    let packed = model.packed();
    let part = |range, grad: &mut [f32], x: &mut [f32], p: &mut [f32]| {
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
        run_part(part, range, grad, x, p)
    };
    let mid = rows / 2;
    let StepScratch { grads, xs, ps } = scratch;
    let ([g0, g1], [x0, x1], [p0, p1]) = (grads, xs, ps);
    let parallel = threads > 1 && rows >= MIN_ROWS_FOR_THREADS;
    let (l0, l1) = if parallel {
        pool::join(|| part(0..mid, g0, x0, p0), || part(mid..rows, g1, x1, p1))
    } else {
        (part(0..mid, g0, x0, p0), part(mid..rows, g1, x1, p1))
    };
    let loss = l0 + l1;
    let finite = match update_with {
        Some((rule, velocity)) if loss.is_finite() => {
            let w = model.packed_mut();
            if parallel {
                update_in_halves(w, velocity, g0, g1, rule)
            } else {
                update(w, velocity, g0, g1, rule)
            }
        }
        _ => true,
    };
    Ok((loss, finite))
}

/// [`update`] with each half of the weights on its own thread. The update
/// is weight by weight, so the halves give the same bits as one sweep. Each
/// thread reads half of the gradient the other thread wrote: after a step
/// on two threads, one sweep would wait on the other core's cache for all
/// of it (measured: about 15% of a `--preset softmax` run).
fn update_in_halves(
    w: &mut [f32],
    velocity: Option<&mut [f32]>,
    g0: &[f32],
    g1: &[f32],
    rule: Rule,
) -> bool {
    let mid = w.len() / kernel::LANES / 2 * kernel::LANES;
    let (wa, wb) = w.split_at_mut(mid);
    let (va, vb) = match velocity {
        Some(v) => {
            let (a, b) = v.split_at_mut(mid);
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    let (fa, fb) = pool::join(
        || update(wa, va, &g0[..mid], &g1[..mid], rule),
        || update(wb, vb, &g0[mid..], &g1[mid..], rule),
    );
    fa && fb
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
        two_sides(&mut copy, y_onehot, fill, scratch, None, 2)
    })??;
    let classes = model.classes();
    let [g0, g1] = &scratch.grads;
    Ok(Array2::from_shape_fn(
        (model.features(), classes),
        |(f, c)| {
            let i = kernel::packed_index(f, c, classes);
            g0[i] + g1[i]
        },
    ))
}
