//! The output head of every model: how the last layer's outputs become
//! probabilities, and which loss the training minimises.

use crate::loss::bce_row_label;
use crate::sigmoid::{exp_nonpositive, ln, sigmoid_in_place};

/// How a model turns its last layer's outputs (the logits) into
/// probabilities. The post's model has the sigmoid head; every other preset
/// the softmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Head {
    /// An independent sigmoid per class with the post's clipped binary
    /// cross-entropy, summed over the classes.
    #[default]
    Sigmoid,
    /// A softmax over the classes with cross-entropy.
    Softmax,
}

impl Head {
    /// The name used in model files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Head::Sigmoid => "sigmoid",
            Head::Softmax => "softmax",
        }
    }

    /// The head called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sigmoid" => Some(Head::Sigmoid),
            "softmax" => Some(Head::Softmax),
            _ => None,
        }
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Head {
    /// The probabilities of logits `z`, `classes` to a row, in place.
    #[inline(always)]
    pub(crate) fn activate_rows(self, z: &mut [f32], classes: usize) {
        match self {
            Head::Sigmoid => sigmoid_in_place(z),
            Head::Softmax => softmax_rows(z, classes, None, &mut 0.0),
        }
    }

    /// The loss of one row of probabilities `p` against class `label`: the
    /// clipped binary cross-entropy summed over the classes for the sigmoid
    /// head, `-ln p[label]` (at most `-ln f32::MIN_POSITIVE`) for the
    /// softmax.
    pub(crate) fn row_loss(self, p: &[f32], label: usize) -> f64 {
        match self {
            Head::Sigmoid => bce_row_label(p, label),
            Head::Softmax => {
                let pl = p.get(label).copied().unwrap_or(f32::NAN);
                -ln(f64::from(pl.max(f32::MIN_POSITIVE)))
            }
        }
    }
}

/// Rows taken together, one to a lane: the softmax of a group of rows is
/// computed class by class, each operation on all the group's rows at
/// once, which the compiler vectorises (`f64` lanes: one AVX-512 register,
/// two of AVX2, four of NEON).
const LANES: usize = 8;

/// A group of rows' values class by class: a lane per row.
type ByClass<T> = [[T; LANES]];

/// Classes whose values for a group of rows are kept on the stack; more
/// go to the heap.
const STACK_CLASSES: usize = 32;

/// The softmax of every row of `z` (`classes` to a row), in place:
/// `e^(z - max)` in `f64` by the same exponential as the sigmoid, summed
/// in class order, each divided by the sum and rounded once, so every path
/// and platform gives the same bits. With targets `y` (as long as `z`),
/// adds the cross-entropy of every row to `loss` (row after row) and leaves
/// `p - y` in `z`.
///
/// Row by row, each step of this (the maximum, the exponentials and their
/// sum, the targets' dot product with the logits) waits for the one
/// before, and the sum keeps the exponentials from being vectorised.
/// [`LANES`] rows at a time, each lane does one row's operations in that
/// row's order: the bits of one row at a time, in less time. Every loop
/// over the lanes is written so that the compiler vectorises it: a zero
/// target is masked out rather than branched over, and `p` is rounded for
/// all lanes before `y` is subtracted.
#[inline(always)]
fn softmax_rows(z: &mut [f32], classes: usize, y: Option<&[f32]>, loss: &mut f64) {
    if classes == 0 {
        return;
    }
    // The group's logits and targets, class by class (a class's values
    // for the group's rows side by side: lanes that compute together),
    // padded with zeros to whole lanes (computed, never written back);
    // and the results, class by class.
    let mut stack = (
        [[0.0f64; LANES]; STACK_CLASSES],
        [[0.0f64; LANES]; STACK_CLASSES],
        [[0.0f32; LANES]; STACK_CLASSES],
    );
    let mut heap = (Vec::new(), Vec::new(), Vec::new());
    let (e, yt, out): (&mut ByClass<f64>, &mut ByClass<f64>, &mut ByClass<f32>) =
        if classes <= STACK_CLASSES {
            (
                &mut stack.0[..classes],
                &mut stack.1[..classes],
                &mut stack.2[..classes],
            )
        } else {
            heap.0.resize(classes, [0.0; LANES]);
            heap.1.resize(classes, [0.0; LANES]);
            heap.2.resize(classes, [0.0; LANES]);
            (&mut heap.0, &mut heap.1, &mut heap.2)
        };
    let group_len = LANES * classes;
    let mut ys = y.map(|y| y.chunks(group_len));
    for group in z.chunks_mut(group_len) {
        let rows = group.len() / classes;
        let yg = ys.as_mut().and_then(Iterator::next);
        // Moved into lanes row by row: each row's values are contiguous.
        transpose_in(group, classes, e);
        if let Some(yg) = yg {
            transpose_in(yg, classes, yt);
        }
        // The cross-entropy is `sum_c y_c (ln_sum + max - z_c)`: the
        // targets' mass and their dot product with the logits, in class
        // order. A zero target adds nothing, not even `0 * inf`; adding
        // `+0` for it changes neither sum (they start at `+0`, so they are
        // never `-0`).
        let (mut dot, mut mass) = ([0.0f64; LANES], [0.0f64; LANES]);
        if yg.is_some() {
            for (ec, yc) in e.iter().zip(yt.iter()) {
                for l in 0..LANES {
                    // All ones where the target is not zero: `+0` elsewhere
                    // (a mask, which vectorises where a branch did not).
                    let keep = u64::from(yc[l] != 0.0).wrapping_neg();
                    dot[l] += f64::from_bits((yc[l] * ec[l]).to_bits() & keep);
                    mass[l] += f64::from_bits(yc[l].to_bits() & keep);
                }
            }
        }
        // The maximum of each row, in class order: NaN never wins it (a
        // comparison, not `max`), but makes its own `e` NaN, hence the sum.
        // (Of the logits widened exactly: the maximum of the `f32`s.)
        let mut max = [f64::NEG_INFINITY; LANES];
        for ec in e.iter() {
            for l in 0..LANES {
                max[l] = if ec[l] > max[l] { ec[l] } else { max[l] };
            }
        }
        let mut sum = [0.0f64; LANES];
        for ec in e.iter_mut() {
            for l in 0..LANES {
                ec[l] = exp_nonpositive(ec[l] - max[l]);
                sum[l] += ec[l];
            }
        }
        if yg.is_some() {
            // The logarithms of every lane at once (vectorised), then
            // added row after row.
            let ln_sum: [f64; LANES] = std::array::from_fn(|l| ln(sum[l]));
            for l in 0..rows {
                *loss += mass[l] * (ln_sum[l] + max[l]) - dot[l];
            }
        }
        // `p`, rounded once, then `p - y` in `f32` (the targets widened
        // exactly, so narrowed back exactly).
        for (oc, ec) in out.iter_mut().zip(e.iter()) {
            *oc = std::array::from_fn(|l| (ec[l] / sum[l]) as f32);
        }
        if yg.is_some() {
            for (oc, yc) in out.iter_mut().zip(yt.iter()) {
                for l in 0..LANES {
                    oc[l] -= yc[l] as f32;
                }
            }
        }
        transpose_out(out, classes, group);
    }
}

/// The results in lanes back into rows: `group`'s row `l` (`classes` to a
/// row) from `out[c][l]`.
///
/// The two moves between rows and lanes are not inlined: compiled for the
/// baseline instruction set, as moves (nothing is computed, so no bit
/// depends on it); inlined into the AVX-512 entry point, the compiler
/// made them scatters, which made the softmax slower.
#[inline(never)]
fn transpose_out(out: &[[f32; LANES]], classes: usize, group: &mut [f32]) {
    for (l, row) in group.chunks_exact_mut(classes).enumerate() {
        for (v, oc) in row.iter_mut().zip(out.iter()) {
            *v = oc[l];
        }
    }
}

/// The rows of `src` (`classes` to a row, at most [`LANES`] rows) into
/// lanes: `lanes[c][l]` is class `c` of row `l`, widened exactly; lanes
/// past the rows are zero. Not inlined: see [`transpose_out`].
#[inline(never)]
fn transpose_in(src: &[f32], classes: usize, lanes: &mut [[f64; LANES]]) {
    for lc in lanes.iter_mut() {
        *lc = [0.0; LANES];
    }
    for (l, row) in src.chunks_exact(classes).enumerate() {
        for (lc, &v) in lanes.iter_mut().zip(row) {
            lc[l] = f64::from(v);
        }
    }
}

/// Softmax of logits `z` against targets `y` (`classes` to a row, as many
/// as `z`): adds the cross-entropy `sum_c y_c (ln sum_k e^(z_k - max) -
/// (z_c - max))` of every row to `loss` and leaves `p - y` in `z`.
#[inline(always)]
pub(crate) fn softmax_residuals(z: &mut [f32], y: &[f32], classes: usize, loss: &mut f64) {
    softmax_rows(z, classes, Some(y), loss);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// One row at a time, as the formula reads: the maximum, `e^(z - max)`
    /// summed in class order, `e / sum` rounded once, the cross-entropy
    /// from the targets' mass and dot product, then `p - y`.
    fn reference(z: &mut [f32], y: &[f32], classes: usize, loss: &mut f64) {
        for (zr, yr) in z.chunks_exact_mut(classes).zip(y.chunks_exact(classes)) {
            let (mut dot, mut mass) = (0.0f64, 0.0f64);
            for (&zv, &yv) in zr.iter().zip(yr) {
                if yv != 0.0 {
                    dot += f64::from(yv) * f64::from(zv);
                    mass += f64::from(yv);
                }
            }
            let max = zr
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
            let max = f64::from(max);
            let mut sum = 0.0f64;
            for &v in zr.iter() {
                sum += exp_nonpositive(f64::from(v) - max);
            }
            for v in zr.iter_mut() {
                *v = (exp_nonpositive(f64::from(*v) - max) / sum) as f32;
            }
            *loss += mass * (ln(sum) + max) - dot;
            for (v, &yv) in zr.iter_mut().zip(yr) {
                *v -= yv;
            }
        }
    }

    /// The same bits, or both NaN (whose sign and payload no result
    /// depends on: a NaN logit makes the loss NaN, and the step fails).
    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
    }

    /// Logits of every scale, with now and then an infinity, a NaN, a
    /// signed zero or a tie for the maximum.
    fn logits(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..n)
            .map(|_| match rng.gen_range(0..40) {
                0 => f32::INFINITY,
                1 => f32::NEG_INFINITY,
                2 => f32::NAN,
                3 => -0.0,
                4 => 0.0,
                5 => 3.0,
                _ => rng.gen_range(-1.0f32..1.0) * 2f32.powi(rng.gen_range(-20..8)),
            })
            .collect()
    }

    #[test]
    fn rows_in_lanes_give_the_bits_of_one_row_at_a_time() {
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        // Ten classes (MNIST's), others, and more than the stack
        // holds; row counts around the lanes.
        for classes in [1, 2, 3, 10, 11, STACK_CLASSES, STACK_CLASSES + 5] {
            for rows in [1, 7, 8, 9, 16, 64, 67] {
                for trial in 0..20 {
                    let n = rows * classes;
                    let z = logits(n, &mut rng);
                    let y: Vec<f32> = if trial % 2 == 0 {
                        // One-hot.
                        (0..n)
                            .map(|i| {
                                f32::from(u8::from(i % classes == (i / classes * 7) % classes))
                            })
                            .collect()
                    } else {
                        // Soft targets, zeros among them.
                        (0..n)
                            .map(|_| {
                                if rng.gen_bool(0.3) {
                                    0.0
                                } else {
                                    rng.gen_range(0.0..1.0)
                                }
                            })
                            .collect()
                    };
                    let (mut got, mut want) = (z.clone(), z.clone());
                    let (mut got_loss, mut want_loss) = (0.5f64, 0.5f64);
                    softmax_residuals(&mut got, &y, classes, &mut got_loss);
                    reference(&mut want, &y, classes, &mut want_loss);
                    assert!(
                        same_bits(&got, &want),
                        "{classes} classes, {rows} rows, trial {trial}"
                    );
                    assert!(
                        got_loss.to_bits() == want_loss.to_bits()
                            || (got_loss.is_nan() && want_loss.is_nan()),
                        "{classes} classes, {rows} rows, trial {trial}: {got_loss} vs {want_loss}"
                    );
                    // The probabilities alone: the residuals plus the targets.
                    let mut p = z.clone();
                    Head::Softmax.activate_rows(&mut p, classes);
                    let mut q = z.clone();
                    reference(&mut q, &vec![0.0; n], classes, &mut 0.0);
                    assert!(
                        same_bits(&p, &q),
                        "{classes} classes, {rows} rows, trial {trial}"
                    );
                }
            }
        }
    }

    /// The same on every kernel path (compiled for each instruction set).
    #[test]
    fn every_path_gives_the_same_residuals() {
        let mut rng = ChaCha8Rng::seed_from_u64(24);
        let (rows, classes) = (64, 10);
        let z = logits(rows * classes, &mut rng);
        let y: Vec<f32> = (0..rows * classes)
            .map(|i| f32::from(u8::from(i % classes == i / classes % classes)))
            .collect();
        let mut want = z.clone();
        let mut want_loss = 0.0;
        reference(&mut want, &y, classes, &mut want_loss);
        for (path, run) in crate::kernel::runnable() {
            let mut got = z.clone();
            let mut loss = 0.0;
            run(crate::kernel::Op::Residuals {
                head: Head::Softmax,
                classes,
                z: &mut got,
                y: &y,
                loss: &mut loss,
            });
            assert!(same_bits(&got, &want), "{}", path.name());
            assert!(
                loss.to_bits() == want_loss.to_bits() || (loss.is_nan() && want_loss.is_nan()),
                "{}",
                path.name()
            );
        }
    }
}
