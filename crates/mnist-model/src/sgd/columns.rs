//! A small batch's step, split by features instead of rows.
//!
//! With a few dozen rows (`--preset softmax` takes 64), parts of rows
//! leave each thread too little work beside what crosses between the
//! cores every step: each part's whole gradient for the update, and every
//! updated weight for the next forward pass. Cut by features instead, a
//! part owns a fixed range of the weights (and of the velocity and the
//! gradient): it makes those features of every row and computes their
//! share of the logits; then it adds the shares, turns them into `p - y`,
//! computes its range of the gradient and updates its range of the
//! weights. Only the shares of the logits and `p - y` (a few KiB each)
//! cross between the threads.
//!
//! Every part needs `p - y` of every row. Each computes that of its own
//! rows first and hands it over; of the other parts' rows it takes what
//! was handed over already and computes the rest itself (the same bits
//! either way), so no part ever waits for another and, on time, none
//! computes the softmax of more than its own rows.
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
use std::sync::{Mutex, PoisonError};

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
/// `p - y` (`rows x classes`: every part holds all of it, the same bits,
/// computed there or handed over), its
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

/// The rows whose `p - y` part `k` of a batch of `rows` rows computes
/// first and hands to the others.
fn rows_of(k: usize, rows: usize) -> Range<usize> {
    k * rows / PARTS..(k + 1) * rows / PARTS
}

/// What a part hands to the others: `p - y` of its rows and their loss,
/// for the step numbered `step`.
#[derive(Debug, Default)]
struct Handed {
    z: Vec<f32>,
    loss: f64,
    step: u64,
}

/// A place for each part to hand its rows over (see
/// [`in_columns`]). A clone starts empty: what the places hold is good
/// for one step only.
#[derive(Debug, Default)]
pub(super) struct Handovers(Vec<Mutex<Handed>>);

impl Clone for Handovers {
    fn clone(&self) -> Self {
        Handovers::default()
    }
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
    /// The parts' rows of `p - y`, handed over, and the number of the
    /// step they are of (steps are numbered from 1).
    handovers: Handovers,
    step: u64,
}

/// A step of a batch of at most [`MAX_ROWS`] rows, cut by features, in two
/// rounds of the parts on up to `threads` threads: each part's share of the
/// logits; then, in each part, the shares of a row added in part order
/// and turned into `p - y` (the same bits in every part), its range of the
/// gradient and of the update. Returns the loss (summed over each part's rows in
/// turn, and those sums added in part order) and whether every new weight
/// is finite; the weights are left as they are if the loss is not finite.
///
/// `p - y` of each part's rows ([`rows_of`]) is computed by that part and
/// handed over ([`Handovers`], a lock each: each part takes what another
/// handed over if it is there when asked for, without waiting, and makes
/// it otherwise); each part adds its range of the gradient row by
/// row in order, the rows of one part after another's. The residuals of a
/// row are a function of its logits and targets alone, so taken or made
/// they have the same bits; a part adds the shares of the rows it
/// computes only. Measured against computing every row in every part
/// (`mnist train --preset softmax --seed 0`, interleaved runs, a 2-core
/// Zen 4): 0.948 of the time (faster in 8 of 10); adding the shares of
/// those rows only, another 0.929 and 0.957 (9 and 11 of 12).
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
        handovers,
        step,
    } = scratch;
    *step += 1;
    let step = *step;
    handovers.0.resize_with(PARTS, Mutex::default);
    let handovers = &handovers.0[..];
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
        // The logits of rows `r` (their shares added in part order), then
        // `p - y` in their place, and their loss: the same bits whichever
        // part computes them.
        let residuals = |p: &mut [f32], r: &Range<usize>| {
            let z = r.start * classes..r.end * classes;
            p[z.clone()].copy_from_slice(&shares[0][z.clone()]);
            for share in &shares[1..] {
                for (z, &s) in p[z.clone()].iter_mut().zip(&share[z.clone()]) {
                    *z += s;
                }
            }
            let mut loss = 0.0;
            // Through the kernels: compiled for this CPU's fused
            // multiply-add.
            kernel::run(kernel::Op::Residuals {
                head,
                classes,
                z: &mut p[z.clone()],
                y: &ys[z],
                loss: &mut loss,
            });
            loss
        };
        // This part's rows first, handed over at once; then every part's
        // rows in order, each taken from its part if handed over for this
        // step already, made here otherwise (never waited for), and their
        // share of the gradient added in row order.
        let own = rows_of(k, rows);
        let own_loss = residuals(p, &own);
        {
            let mut handed = handovers[k].lock().unwrap_or_else(PoisonError::into_inner);
            handed.z.clear();
            handed
                .z
                .extend_from_slice(&p[own.start * classes..own.end * classes]);
            (handed.loss, handed.step) = (own_loss, step);
        }
        let stride = chunks_of(k, chunks).len() * kernel::LANES;
        *loss = 0.0;
        for (j, handover) in handovers.iter().enumerate() {
            let r = rows_of(j, rows);
            let zr = r.start * classes..r.end * classes;
            let taken = if j == k {
                Some(own_loss)
            } else {
                match handover.try_lock() {
                    Ok(handed) if handed.step == step => {
                        p[zr.clone()].copy_from_slice(&handed.z);
                        Some(handed.loss)
                    }
                    _ => None,
                }
            };
            *loss += taken.unwrap_or_else(|| residuals(p, &r));
            kernel::run(kernel::Op::Gradient {
                // The gradient reads no weights.
                block: kernel::Block {
                    x: &x[r.start * stride..r.end * stride],
                    rows: r.len(),
                    chunks: chunks_of(k, chunks).len(),
                    classes,
                    packed: &[],
                },
                g: &p[zr],
                grad,
                fresh: j == 0,
            });
        }
        *finite = true;
        if !loss.is_finite() {
            return;
        }
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
