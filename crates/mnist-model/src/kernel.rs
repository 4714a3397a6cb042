//! The two matrix products of training, specialised to few outputs.
//!
//! Weights live in a packed layout `[chunk][class][lane]`: features are cut
//! into chunks of [`LANES`] (the last one zero-padded), and for each chunk the
//! weights of all classes are contiguous. With features along the SIMD lanes
//! nothing is wasted on padding classes (10 classes would fill 10 of 16 lanes),
//! and one chunk of an input row feeds one multiply-add per class.
//!
//! Every lane accumulates its own partial sum in a fixed order (chunks in
//! order for the forward pass, rows in order for the gradient) and lanes are
//! reduced by a fixed tree, so the register blocking chosen per instruction
//! set never changes the result: the AVX-512 and AVX2 paths give identical
//! bits, because both use fused multiply-add. Only the portable fallback,
//! which multiplies and adds separately, rounds differently.

// Index loops over small const-sized arrays are what LLVM turns into SIMD
// registers; iterator chains over several arrays at once would obscure that.
#![allow(clippy::needless_range_loop)]

use crate::linear::sigmoid;
use crate::loss::bce_term;

/// Lanes per chunk: one AVX-512 register, two AVX2 registers.
pub(crate) const LANES: usize = 16;

/// Rows per block of the training step: the block's inputs stay in L1/L2
/// between the forward pass and the gradient pass.
pub(crate) const STEP_BLOCK: usize = 32;

/// Number of chunks needed for `features` features.
pub(crate) fn chunks(features: usize) -> usize {
    features.div_ceil(LANES)
}

/// Length of the packed buffer for a `features x classes` matrix.
pub(crate) fn packed_len(features: usize, classes: usize) -> usize {
    chunks(features) * classes * LANES
}

/// Index of weight (`feature`, `class`) in the packed layout.
#[inline]
pub(crate) fn packed_index(feature: usize, class: usize, classes: usize) -> usize {
    ((feature / LANES) * classes + class) * LANES + feature % LANES
}

/// `a * b + c`, fused or not.
trait Arith {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// One rounding: compiled to a hardware FMA where the target has one.
struct Fused;

impl Arith for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// Two roundings: for targets without FMA, where `mul_add` is a libm call.
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
struct Separate;

impl Arith for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Sum of the lanes by a fixed pairwise tree.
#[inline(always)]
fn hsum(v: &[f32; LANES]) -> f32 {
    let mut s8 = [0.0f32; 8];
    for k in 0..8 {
        s8[k] = v[k] + v[k + 8];
    }
    let mut s4 = [0.0f32; 4];
    for k in 0..4 {
        s4[k] = s8[k] + s8[k + 4];
    }
    (s4[0] + s4[2]) + (s4[1] + s4[3])
}

/// `acc[r][g] += x[r] * w[g]` lane-wise for one chunk.
#[inline(always)]
fn chunk_fma<M: Arith, const R: usize, const G: usize>(
    acc: &mut [[[f32; LANES]; G]; R],
    x: [&[f32]; R],
    w: &[f32],
) {
    let w = &w[..G * LANES];
    let x: [&[f32]; R] = std::array::from_fn(|r| &x[r][..LANES]);
    // Each weight chunk is loaded once and feeds all `R` rows.
    for g in 0..G {
        let wg = &w[g * LANES..(g + 1) * LANES];
        for r in 0..R {
            for k in 0..LANES {
                acc[r][g][k] = M::mul_add(x[r][k], wg[k], acc[r][g][k]);
            }
        }
    }
}

/// Logits of `R` rows for classes `cg..cg + G`.
#[inline(always)]
fn logits_block<M: Arith, const R: usize, const G: usize>(
    rows: [&[f32]; R],
    features: usize,
    packed: &[f32],
    classes: usize,
    cg: usize,
) -> [[f32; G]; R] {
    let full = features / LANES;
    let mut acc = [[[0.0f32; LANES]; G]; R];
    for i in 0..full {
        let o = i * LANES;
        let x: [&[f32]; R] = std::array::from_fn(|r| &rows[r][o..o + LANES]);
        let w = &packed[(i * classes + cg) * LANES..];
        chunk_fma::<M, R, G>(&mut acc, x, w);
    }
    let rest = features - full * LANES;
    if rest != 0 {
        let o = full * LANES;
        let mut tail = [[0.0f32; LANES]; R];
        for r in 0..R {
            tail[r][..rest].copy_from_slice(&rows[r][o..features]);
        }
        let x: [&[f32]; R] = std::array::from_fn(|r| &tail[r][..]);
        let w = &packed[(full * classes + cg) * LANES..];
        chunk_fma::<M, R, G>(&mut acc, x, w);
    }
    let mut out = [[0.0f32; G]; R];
    for r in 0..R {
        for g in 0..G {
            out[r][g] = hsum(&acc[r][g]);
        }
    }
    out
}

/// Logits of `rows` consecutive rows of `x` into `out` (`rows x classes`).
#[inline(always)]
fn logits<M: Arith, const R: usize, const G: usize>(
    x: &[f32],
    rows: usize,
    features: usize,
    packed: &[f32],
    classes: usize,
    out: &mut [f32],
) {
    let mut r0 = 0;
    while r0 < rows {
        if r0 + R <= rows {
            let xr: [&[f32]; R] =
                std::array::from_fn(|r| &x[(r0 + r) * features..(r0 + r + 1) * features]);
            class_groups::<M, R, G>(xr, features, packed, classes, &mut out[r0 * classes..]);
            r0 += R;
        } else {
            let xr = [&x[r0 * features..(r0 + 1) * features]];
            class_groups::<M, 1, G>(xr, features, packed, classes, &mut out[r0 * classes..]);
            r0 += 1;
        }
    }
}

/// All classes of `R` rows: groups of `G`, then single classes.
#[inline(always)]
fn class_groups<M: Arith, const R: usize, const G: usize>(
    xr: [&[f32]; R],
    features: usize,
    packed: &[f32],
    classes: usize,
    out: &mut [f32],
) {
    let mut cg = 0;
    while cg + G <= classes {
        let z = logits_block::<M, R, G>(xr, features, packed, classes, cg);
        for (r, zr) in z.iter().enumerate() {
            out[r * classes + cg..r * classes + cg + G].copy_from_slice(zr);
        }
        cg += G;
    }
    while cg < classes {
        let z = logits_block::<M, R, 1>(xr, features, packed, classes, cg);
        for (r, zr) in z.iter().enumerate() {
            out[r * classes + cg] = zr[0];
        }
        cg += 1;
    }
}

/// `grad[chunks i..i+S, classes cg..cg+G] += sum_r g[r][c] * x[r][chunk]`,
/// rows in order; the chunks must be full (not the zero-padded last one).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gradient_strip<M: Arith, const S: usize, const G: usize>(
    x: &[f32],
    rows: usize,
    features: usize,
    g: &[f32],
    classes: usize,
    cg: usize,
    i: usize,
    grad: &mut [f32],
) {
    let mut acc = [[[0.0f32; LANES]; G]; S];
    for s in 0..S {
        for c in 0..G {
            let at = ((i + s) * classes + cg + c) * LANES;
            acc[s][c].copy_from_slice(&grad[at..at + LANES]);
        }
    }
    let o = i * LANES;
    for r in 0..rows {
        let xc = &x[r * features + o..r * features + o + S * LANES];
        let gr = &g[r * classes + cg..r * classes + cg + G];
        let xs: [&[f32]; S] = std::array::from_fn(|s| &xc[s * LANES..(s + 1) * LANES]);
        for c in 0..G {
            // A splatted array rather than a scalar: the vectoriser then sees
            // the same lane-by-lane shape as in `chunk_fma`.
            let gb = [gr[c]; LANES];
            for s in 0..S {
                for k in 0..LANES {
                    acc[s][c][k] = M::mul_add(gb[k], xs[s][k], acc[s][c][k]);
                }
            }
        }
    }
    for s in 0..S {
        for c in 0..G {
            let at = ((i + s) * classes + cg + c) * LANES;
            grad[at..at + LANES].copy_from_slice(&acc[s][c]);
        }
    }
}

/// The same sums for the last, partial chunk of `features % LANES` lanes:
/// lane by lane, rows in order, exactly as the full chunks.
#[inline(always)]
fn gradient_tail<M: Arith>(
    x: &[f32],
    rows: usize,
    features: usize,
    g: &[f32],
    classes: usize,
    grad: &mut [f32],
) {
    let full = features / LANES;
    let o = full * LANES;
    let rest = features - o;
    if rest == 0 {
        return;
    }
    for c in 0..classes {
        let at = (full * classes + c) * LANES;
        let acc = &mut grad[at..at + rest];
        for r in 0..rows {
            let gv = g[r * classes + c];
            let xr = &x[r * features + o..(r + 1) * features];
            for (a, &xv) in acc.iter_mut().zip(xr) {
                *a = M::mul_add(gv, xv, *a);
            }
        }
    }
}

/// Adds `X^T g` for `rows` rows into the packed `grad`.
#[inline(always)]
fn gradient<M: Arith, const S: usize, const G: usize>(
    x: &[f32],
    rows: usize,
    features: usize,
    g: &[f32],
    classes: usize,
    grad: &mut [f32],
) {
    let full = features / LANES;
    let mut cg = 0;
    while cg + G <= classes {
        let mut i = 0;
        while i + S <= full {
            gradient_strip::<M, S, G>(x, rows, features, g, classes, cg, i, grad);
            i += S;
        }
        while i < full {
            gradient_strip::<M, 1, G>(x, rows, features, g, classes, cg, i, grad);
            i += 1;
        }
        cg += G;
    }
    while cg < classes {
        for i in 0..full {
            gradient_strip::<M, 1, 1>(x, rows, features, g, classes, cg, i, grad);
        }
        cg += 1;
    }
    gradient_tail::<M>(x, rows, features, g, classes, grad);
}

/// Probabilities `sigmoid(X W)` of `rows` rows into `out` (`rows x classes`).
pub(crate) struct Forward<'a> {
    pub x: &'a [f32],
    pub rows: usize,
    pub features: usize,
    pub classes: usize,
    pub packed: &'a [f32],
    pub out: &'a mut [f32],
}

/// One pass of training over `rows` rows: adds `X^T (p - y)` into the packed
/// `grad` and returns the summed (not averaged) clipped cross-entropy.
pub(crate) struct Step<'a> {
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub rows: usize,
    pub features: usize,
    pub classes: usize,
    pub packed: &'a [f32],
    pub grad: &'a mut [f32],
    /// At least `STEP_BLOCK * classes` long.
    pub block: &'a mut [f32],
}

/// Work for one of the instruction-set-specific entry points.
pub(crate) enum Op<'a> {
    Forward(Forward<'a>),
    Step(Step<'a>),
}

/// The body shared by every instruction set; inlined into each entry point
/// so it is compiled with that entry point's target features.
#[inline(always)]
fn execute<M: Arith, const R: usize, const G: usize, const S: usize, const GG: usize>(
    op: Op<'_>,
) -> f64 {
    match op {
        Op::Forward(f) => {
            let out = &mut f.out[..f.rows * f.classes];
            logits::<M, R, G>(f.x, f.rows, f.features, f.packed, f.classes, out);
            for v in out.iter_mut() {
                *v = sigmoid(*v);
            }
            0.0
        }
        Op::Step(s) => {
            let (features, classes) = (s.features, s.classes);
            let mut loss = 0.0f64;
            let mut r0 = 0;
            while r0 < s.rows {
                let n = STEP_BLOCK.min(s.rows - r0);
                let x = &s.x[r0 * features..(r0 + n) * features];
                let y = &s.y[r0 * classes..(r0 + n) * classes];
                let p = &mut s.block[..n * classes];
                logits::<M, R, G>(x, n, features, s.packed, classes, p);
                for (pv, &yv) in p.iter_mut().zip(y) {
                    let prob = sigmoid(*pv);
                    loss += bce_term(prob, yv);
                    *pv = prob - yv;
                }
                gradient::<M, S, GG>(x, n, features, p, classes, s.grad);
                r0 += n;
            }
            loss
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn execute_avx512(op: Op<'_>) -> f64 {
    // Forward: 2 rows x 5 classes, each weight load feeding two FMAs.
    // Gradient: 10 classes, each input load feeding ten FMAs.
    execute::<Fused, 2, 5, 1, 10>(op)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn execute_avx2(op: Op<'_>) -> f64 {
    // 5 classes x 2 ymm halves = 10 of the 16 ymm registers as accumulators.
    execute::<Fused, 1, 5, 1, 5>(op)
}

/// Which code path [`run`] takes on this machine, for benchmarks and reports.
pub(crate) fn path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            return "avx512f+fma";
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return "avx2+fma";
        }
    }
    "portable"
}

/// Runs `op` with the best instruction set this CPU supports.
///
/// Slices must be consistent with the sizes in `op` (checked by the callers;
/// an inconsistency panics on a slice bound, it never reads out of bounds).
pub(crate) fn run(op: Op<'_>) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            // SAFETY: the only requirement of a `#[target_feature]` function
            // is that the CPU supports its features, checked just above.
            return unsafe { execute_avx512(op) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above, avx2 and fma were detected at run time.
            return unsafe { execute_avx2(op) };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // NEON has fused multiply-add on every aarch64 CPU.
        execute::<Fused, 1, 5, 1, 5>(op)
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        execute::<Separate, 1, 5, 1, 5>(op)
    }
}

/// Runs `op` on the portable path, whatever the CPU (for tests).
#[cfg(test)]
pub(crate) fn run_portable(op: Op<'_>) -> f64 {
    execute::<Separate, 1, 5, 1, 5>(op)
}

/// Runs `op` with FMA but the smallest register blocking (for tests).
#[cfg(test)]
pub(crate) fn run_fused_small(op: Op<'_>) -> f64 {
    execute::<Fused, 1, 3, 1, 3>(op)
}
