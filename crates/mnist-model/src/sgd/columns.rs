//! A small batch's step, split by features instead of rows.
//!
//! With a few dozen rows (`--preset softmax` takes 64), parts of rows
//! leave each thread too little work beside what crosses between the
//! cores every step: each part's whole gradient for the update, and every
//! updated weight for the next forward pass. Cut by features instead, a
//! part owns a fixed range of the weights (and of the velocity and the
//! gradient): it makes those features of every row and computes their
//! share of the logits; then it adds the shares, turns them into `p - y`
//! itself, computes its range of the gradient and updates its range of the
//! weights. Only the shares of the logits (a few KiB) cross between the
//! threads.
//!
//! On several threads each part also keeps its own copy of its range of
//! the weights, kept between steps: it updates and reads that copy, and
//! writes the new values into the model once a step (see
//! [`ColumnScratch`]).
//!
//! Steps of SGD on the mean gradient take this cut (see
//! [`cut_by_features`]). The cut depends on the model alone ([`PARTS`] parts of whole chunks),
//! the shares are added in part order, and the update is weight by weight:
//! the same bits on any number of threads.

use std::ops::Range;

use ndarray::ArrayView2;

use super::batch::{check_targets, MIN_ROWS_FOR_THREADS};
use super::{split_weights, update, Rule};
use crate::aligned::Floats;
use crate::error::Result;
use crate::kernel;
use crate::linear::{contiguous, LinearModel};
use crate::parts::run_parts;
use crate::rows::{RowSource, RowsKey};

/// Batches of at most this many rows are cut by features.
const MAX_ROWS: usize = 128;

/// The number of parts, on at most as many threads: two halves of the
/// features.
const PARTS: usize = 2;

/// Whether a step of `rule` on `rows` rows of a model of `features`
/// features is cut by features: SGD on the mean gradient (the post's SGD,
/// with its nominal batch, keeps parts of rows for every batch, short last
/// ones included, and so the bits of its published results), a batch of at
/// most [`MAX_ROWS`] rows, and a chunk of features at least for each part.
/// A choice made from the optimiser, the batch and the model alone, never
/// from the threads or the CPU.
pub(super) fn cut_by_features(rule: Rule, rows: usize, features: usize) -> bool {
    matches!(rule, Rule::Momentum { .. }) && rows <= MAX_ROWS && kernel::chunks(features) >= PARTS
}

/// One part's buffers: its features of every row (a row every
/// `chunks * LANES` values), the sum of the shares of the logits turned into
/// `p - y` (`rows x classes`: every part computes it, the same bits), its
/// range of the gradient (packed), its own copy of its range of the
/// weights (on several threads), the loss and whether its new weights are
/// finite.
#[derive(Debug, Default, Clone)]
pub(super) struct ColumnBuffers {
    x: Vec<f32>,
    p: Vec<f32>,
    grad: Vec<f32>,
    weights: Floats,
    loss: f64,
    finite: bool,
}

/// The chunks of part `k` of a model of `chunks` chunks.
fn chunks_of(k: usize, chunks: usize) -> Range<usize> {
    k * chunks / PARTS..(k + 1) * chunks / PARTS
}

/// What a step computed ahead for the next one: every part's features of
/// the next batch's rows (in its buffer) and its share of their logits (in
/// the spare shares), from the weights of version `version`, for the
/// `rows` rows of key `key`.
#[derive(Debug, Clone)]
pub(super) struct Ahead {
    version: u64,
    rows: usize,
    key: RowsKey,
}

/// The buffers of the steps cut by features, kept between steps.
///
/// On several threads, each part updates and reads its own copy of its
/// range of the weights (`ColumnBuffers::weights`, a separate allocation),
/// and writes the new values into the model after its update: the model's
/// weights are then only written, once a step, in one pass. Updated in
/// place in the model, the upper part's range ran its update two to three
/// times slower than the lower part's (a 2-core Zen 4 under KVM: 3,600
/// against 1,300 cycles for 4,000 weights, timed in the step; writing the
/// range's lines before the update cost the difference, so they were not
/// the part's own; which access of the other core took them was not
/// found). With the copies, `mnist train --preset softmax --seed 0` took
/// 0.986, 0.974 and 0.972 of the time (three interleaved series of 12
/// runs, faster in 7, 8 and 10 of them). The copies hold the same values
/// as the model, so the bits are the same; they are used while the
/// model's weights keep the version they had after the step that wrote
/// them, and taken from the model again otherwise.
#[derive(Debug, Default, Clone)]
pub(super) struct ColumnScratch {
    /// Each part's buffers.
    parts: Vec<ColumnBuffers>,
    /// Each part's share of this batch's logits.
    shares: Vec<Vec<f32>>,
    /// Each part's share of the next batch's logits, when computed ahead.
    next: Vec<Vec<f32>>,
    /// What `parts` and `next` hold for the next step, if anything.
    ahead: Option<Ahead>,
    /// The version of the model's weights that the parts' copies hold, if
    /// they hold any.
    copies: Option<u64>,
}

/// A step of a batch of at most [`MAX_ROWS`] rows, cut by features, in two
/// rounds of the parts on up to `threads` threads: each part's share of the
/// logits; then, in each part, the shares added in part order and turned
/// into `p - y` (the same bits in every part), its range of the gradient
/// and of the update. Returns the summed loss and whether every new weight
/// is finite; the weights are left as they are if the loss is not finite.
///
/// When `fill` gives keys to its rows ([`RowSource::rows_key`]) and the
/// step runs on several threads, the second round of each part goes on to
/// the first round of the next batch: it makes its features of the rows
/// past this batch and computes their share of the logits from its new
/// weights, which no other part changes. The next step skips its first
/// round if its rows have that key and the weights are still those: one
/// hand-over between the threads a step instead of two, and the same
/// work, so the same bits.
pub(super) fn in_columns<F>(
    model: &mut LinearModel,
    y: ArrayView2<'_, f32>,
    fill: &F,
    scratch: &mut ColumnScratch,
    (rule, velocity): (Rule, Option<&mut [f32]>),
    threads: usize,
) -> Result<(f64, bool)>
where
    F: RowSource + ?Sized,
{
    let (features, classes, head) = (model.features(), model.classes(), model.head());
    let rows = check_targets(model, &y)?;
    let y = y.as_standard_layout();
    let ys = contiguous(&y, "target layout")?;
    let chunks = kernel::chunks(features);
    let n = rows * classes;
    // Computed ahead for these rows and these weights? (The key is asked
    // for only if something was.)
    let ready = scratch.ahead.take().is_some_and(|ahead| {
        ahead.version == model.version()
            && ahead.rows == rows
            && fill.rows_key(0, rows).is_some_and(|k| k == ahead.key)
    });
    let ColumnScratch {
        parts: columns,
        shares,
        next,
        ahead,
        copies,
    } = scratch;
    // The parts' copies of the weights are the model's? (Asked before
    // the weights take a new version for this step's update.)
    let copied = copies.take() == Some(model.version());
    if ready {
        std::mem::swap(shares, next);
    }
    columns.resize_with(PARTS, ColumnBuffers::default);
    shares.resize_with(PARTS, Vec::new);
    next.resize_with(PARTS, Vec::new);
    for (k, ((part, share), next)) in columns
        .iter_mut()
        .zip(shares.iter_mut())
        .zip(next.iter_mut())
        .enumerate()
    {
        let width = chunks_of(k, chunks).len();
        // Written by the part itself, on the thread that runs it.
        part.x.resize(rows * width * kernel::LANES, 0.0);
        part.p.resize(n, 0.0);
        part.grad.resize(width * classes * kernel::LANES, 0.0);
        share.resize(n, 0.0);
        next.resize(n, 0.0);
    }
    let threads = if rows >= MIN_ROWS_FOR_THREADS {
        threads.clamp(1, PARTS)
    } else {
        1
    };
    // Part `k`'s features of rows `first..first + rows` into its buffer,
    // and their share of the logits from `packed`, its range of the
    // weights; then its features of the rows after them are asked for.
    let first_round = |k: usize, x: &mut [f32], share: &mut [f32], packed: &[f32], first| {
        let c = chunks_of(k, chunks);
        let stride = c.len() * kernel::LANES;
        let cols = (c.start * kernel::LANES).min(features)..(c.end * kernel::LANES).min(features);
        let x = &mut x[..rows * stride];
        fill.fill_columns(first, x, stride, cols.clone(), features);
        // The padding must be zero whatever the source wrote there.
        for row in x.chunks_exact_mut(stride) {
            row[cols.len()..].fill(0.0);
        }
        kernel::run(kernel::Op::Logits {
            block: kernel::Block {
                x,
                rows,
                chunks: c.len(),
                classes,
                packed,
            },
            out: share,
        });
        fill.prefetch_columns(first + rows, rows, cols);
    };

    if !ready {
        let packed = model.packed();
        let lanes = classes * kernel::LANES;
        let mut round: Vec<_> = columns.iter_mut().zip(shares.iter_mut()).collect();
        run_parts(&mut round, threads, |k, (part, share)| {
            let c = chunks_of(k, chunks);
            first_round(
                k,
                &mut part.x,
                share,
                &packed[c.start * lanes..c.end * lanes],
                0,
            );
        });
    }
    // The next batch's rows, if the source can name them and the step
    // runs on several threads: on one, computing ahead saves no hand-over
    // and measured slower (`softmax_step/64x785x10 keyed rows, 1
    // thread(s)` against `rows`).
    let next_key = if threads > 1 {
        fill.rows_key(rows, rows)
    } else {
        None
    };

    // Each part: `p - y` from the shares, its range of the gradient and of
    // the weights, then (with a key for the next rows) the first round of
    // the next batch. The update is skipped if the loss is not finite
    // (every part finds the same loss).
    let shares = &shares[..];
    let mut round = Vec::with_capacity(PARTS);
    let (mut w_rest, mut v_rest) = (model.packed_mut(), velocity);
    for (k, (part, next)) in columns.iter_mut().zip(next.iter_mut()).enumerate() {
        let len = chunks_of(k, chunks).len() * classes * kernel::LANES;
        let ((w, v), (wt, vt)) = split_weights(w_rest, v_rest, len);
        round.push((w, v, part, next));
        (w_rest, v_rest) = (wt, vt);
    }
    let path = kernel::path();
    let look_ahead = next_key.is_some();
    // Each part's own copy of its weights, on several threads (see
    // `ColumnScratch`).
    let own_copies = threads > 1;
    run_parts(&mut round, threads, |k, (w, v, part, next)| {
        let ColumnBuffers {
            x,
            p,
            grad,
            weights,
            loss,
            finite,
        } = &mut **part;
        p.copy_from_slice(&shares[0]);
        for share in &shares[1..] {
            for (z, &s) in p.iter_mut().zip(share) {
                *z += s;
            }
        }
        *loss = 0.0;
        // Through the kernels: compiled for this CPU's fused multiply-add.
        kernel::run(kernel::Op::Residuals {
            head,
            classes,
            z: p,
            y: &ys[..n],
            loss,
        });
        *finite = true;
        if !loss.is_finite() {
            return;
        }
        kernel::run(kernel::Op::Gradient {
            // The gradient reads no weights.
            block: kernel::Block {
                x,
                rows,
                chunks: chunks_of(k, chunks).len(),
                classes,
                packed: &[],
            },
            g: p,
            grad,
            fresh: true,
        });
        let w: &[f32] = if own_copies {
            if !copied {
                weights.resize(w.len(), 0.0);
                weights.copy_from_slice(w);
            }
            *finite = update(path, weights, v.as_deref_mut(), grad, None, rule);
            w.copy_from_slice(weights);
            weights
        } else {
            *finite = update(path, w, v.as_deref_mut(), grad, None, rule);
            w
        };
        if look_ahead && *finite {
            first_round(k, x, next, w, rows);
        }
    });
    let loss = columns[0].loss;
    let finite = columns.iter().all(|part| part.finite);
    if own_copies && finite && loss.is_finite() {
        *copies = Some(model.version());
    }
    if let Some(key) = next_key.filter(|_| finite && loss.is_finite()) {
        *ahead = Some(Ahead {
            version: model.version(),
            rows,
            key,
        });
    }
    Ok((loss, finite))
}
