//! The two matrix products of training, specialised to few outputs.
//!
//! Weights live in a packed layout `[chunk][class][lane]`: features are cut
//! into chunks of [`LANES`] (the last one zero-padded), and for each chunk the
//! weights of all classes are contiguous. With features along the SIMD lanes
//! nothing is wasted on padding classes (10 classes would fill 10 of 16 lanes),
//! and one chunk of an input row feeds one multiply-add per class.
//!
//! Every lane accumulates its own partial sum in a fixed order (chunks in
//! order for the forward pass, rows in order for the gradient), each step a
//! fused multiply-add (one rounding), and lanes are reduced by a fixed tree,
//! so the register blocking chosen per instruction set never changes the
//! result: the AVX-512, AVX2, NEON and portable paths give identical bits.
//! The portable path computes its multiply-adds with `f32::mul_add`, which
//! is exact everywhere: a hardware instruction where the target has one, a
//! call to the C library's `fmaf` where it does not (x86-64 CPUs without
//! FMA), much slower but with the same bits.
//!
//! The path is chosen once per process: the one named by the environment
//! variable [`ENV`] if it is set, else the fastest this CPU supports.

// Index loops over small const-sized arrays are what LLVM turns into SIMD
// registers; iterator chains over several arrays at once would obscure that.
#![allow(clippy::needless_range_loop)]

use crate::head::{softmax_residuals, Head};
use crate::loss::block_loss;
#[cfg(target_arch = "aarch64")]
use crate::loss::block_loss_neon;
#[cfg(target_arch = "x86_64")]
use crate::loss::{block_loss_avx2, block_loss_avx512};
use crate::rows::RowSource;
use crate::sigmoid::sigmoid_in_place;

/// Lanes per chunk: one AVX-512 register, two AVX2 registers.
pub(crate) const LANES: usize = 16;

/// Rows per block: a block's inputs are made, used by the forward pass and
/// used again by the gradient pass while they are still in L1/L2. Each
/// block reads and writes the whole gradient once, so a short block at the
/// end of a part costs nearly as much of that as a full one: with 32, the
/// parts of 32 rows (`--preset softmax`) and 256 rows (the post) are whole
/// blocks. (`valgrind --tool=callgrind`, one epoch of `--preset softmax` on
/// one thread, AVX2 path: 664 million instructions against 689 million
/// with blocks of 30.)
pub(crate) const BLOCK: usize = 32;

/// Number of chunks needed for `features` features.
pub(crate) fn chunks(features: usize) -> usize {
    features.div_ceil(LANES)
}

/// Values per row of a block: whole chunks, zero beyond the features.
pub(crate) fn stride(features: usize) -> usize {
    chunks(features) * LANES
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
fn chunk_fma<const R: usize, const G: usize>(
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
                acc[r][g][k] = x[r][k].mul_add(wg[k], acc[r][g][k]);
            }
        }
    }
}

/// Logits of `R` rows for classes `cg..cg + G`; rows are whole chunks.
#[inline(always)]
fn logits_block<const R: usize, const G: usize>(
    rows: [&[f32]; R],
    chunks: usize,
    packed: &[f32],
    classes: usize,
    cg: usize,
) -> [[f32; G]; R] {
    let mut acc = [[[0.0f32; LANES]; G]; R];
    for i in 0..chunks {
        let o = i * LANES;
        let x: [&[f32]; R] = std::array::from_fn(|r| &rows[r][o..o + LANES]);
        let w = &packed[(i * classes + cg) * LANES..];
        chunk_fma::<R, G>(&mut acc, x, w);
    }
    let mut out = [[0.0f32; G]; R];
    for r in 0..R {
        for g in 0..G {
            out[r][g] = hsum(&acc[r][g]);
        }
    }
    out
}

/// Logits of the rows of a block into `out` (`rows x classes`), calling
/// `done(first, n)` as rows `first..first + n` are finished.
#[inline(always)]
fn logits<const R: usize, const G: usize>(b: &Block<'_>, out: &mut [f32], done: Done<'_>) {
    let (stride, classes) = (b.chunks * LANES, b.classes);
    let row = |r: usize| &b.x[r * stride..(r + 1) * stride];
    let mut r0 = 0;
    while r0 + R <= b.rows {
        let xr: [&[f32]; R] = std::array::from_fn(|r| row(r0 + r));
        class_groups::<R, G>(xr, b, &mut out[r0 * classes..]);
        done(r0, R);
        r0 += R;
    }
    while r0 < b.rows {
        class_groups::<1, G>([row(r0)], b, &mut out[r0 * classes..]);
        done(r0, 1);
        r0 += 1;
    }
}

/// All classes of `R` rows: groups of `G`, then single classes.
#[inline(always)]
fn class_groups<const R: usize, const G: usize>(xr: [&[f32]; R], b: &Block<'_>, out: &mut [f32]) {
    let classes = b.classes;
    let mut cg = 0;
    while cg + G <= classes {
        let z = logits_block::<R, G>(xr, b.chunks, b.packed, classes, cg);
        for (r, zr) in z.iter().enumerate() {
            out[r * classes + cg..r * classes + cg + G].copy_from_slice(zr);
        }
        cg += G;
    }
    while cg < classes {
        let z = logits_block::<R, 1>(xr, b.chunks, b.packed, classes, cg);
        for (r, zr) in z.iter().enumerate() {
            out[r * classes + cg] = zr[0];
        }
        cg += 1;
    }
}

/// `grad[chunks i..i+S, classes cg..cg+G] += sum_r g[r][c] * x[r][chunk]`,
/// rows in order; `=` instead of `+=` if `fresh` (the same bits as adding
/// to zeros).
#[inline(always)]
fn gradient_strip<const S: usize, const G: usize>(
    b: &Block<'_>,
    g: &[f32],
    cg: usize,
    i: usize,
    grad: &mut [f32],
    fresh: bool,
) {
    let (stride, classes) = (b.chunks * LANES, b.classes);
    let mut acc = [[[0.0f32; LANES]; G]; S];
    if !fresh {
        for s in 0..S {
            for c in 0..G {
                let at = ((i + s) * classes + cg + c) * LANES;
                acc[s][c].copy_from_slice(&grad[at..at + LANES]);
            }
        }
    }
    let o = i * LANES;
    for r in 0..b.rows {
        let xc = &b.x[r * stride + o..r * stride + o + S * LANES];
        let gr = &g[r * classes + cg..r * classes + cg + G];
        let xs: [&[f32]; S] = std::array::from_fn(|s| &xc[s * LANES..(s + 1) * LANES]);
        for c in 0..G {
            // A splatted array rather than a scalar: the vectoriser then sees
            // the same lane-by-lane shape as in `chunk_fma`.
            let gb = [gr[c]; LANES];
            for s in 0..S {
                for k in 0..LANES {
                    acc[s][c][k] = gb[k].mul_add(xs[s][k], acc[s][c][k]);
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

/// Adds `X^T g` for the rows of a block into the packed `grad` (writes it,
/// if `fresh`).
#[inline(always)]
fn gradient<const S: usize, const G: usize>(
    b: &Block<'_>,
    g: &[f32],
    grad: &mut [f32],
    fresh: bool,
) {
    let mut cg = 0;
    while cg + G <= b.classes {
        let mut i = 0;
        while i + S <= b.chunks {
            gradient_strip::<S, G>(b, g, cg, i, grad, fresh);
            i += S;
        }
        while i < b.chunks {
            gradient_strip::<1, G>(b, g, cg, i, grad, fresh);
            i += 1;
        }
        cg += G;
    }
    while cg < b.classes {
        for i in 0..b.chunks {
            gradient_strip::<1, 1>(b, g, cg, i, grad, fresh);
        }
        cg += 1;
    }
}

/// Told by the forward pass that rows `first..first + n` of a block are
/// done: the moment to ask for the rows wanted next, spread over the work.
pub(crate) type Done<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// A [`Done`] for a block of `n` rows that asks `source` for the `next_n`
/// rows from `next` on, in step with the block's progress: when rows
/// `first..first + m` of the block are done, the same fraction of the next
/// block is asked for.
pub(crate) fn ahead<S: RowSource + ?Sized>(
    source: &S,
    n: usize,
    next: usize,
    next_n: usize,
) -> impl Fn(usize, usize) + Sync + '_ {
    move |first: usize, m: usize| {
        let (lo, hi) = (first * next_n / n, (first + m) * next_n / n);
        if hi > lo {
            source.prefetch(next + lo, hi - lo);
        }
    }
}

/// A block of rows: `rows` rows of `chunks * LANES` values, zero beyond the
/// features (the weights are zero there too, so the padding adds exact
/// zeros and leaves the gradient's padding at zero).
pub(crate) struct Block<'a> {
    pub x: &'a [f32],
    pub rows: usize,
    pub chunks: usize,
    pub classes: usize,
    pub packed: &'a [f32],
}

/// Work for one of the instruction-set-specific entry points.
pub(crate) enum Op<'a> {
    /// Probabilities `head(X W)` into `out` (`rows x classes`); `done`
    /// follows the products.
    Forward {
        head: Head,
        block: Block<'a>,
        done: Done<'a>,
        out: &'a mut [f32],
    },
    /// One block of a training step: adds the block's loss (for the sigmoid
    /// head the clipped cross-entropy summed by a `LossSum`, for the softmax
    /// the cross-entropy) to `loss`, and `X^T (p - y)` into the
    /// packed `grad` (or writes it there, if `fresh`: for the first block,
    /// the same bits as adding it to zeros); `p` is scratch of `rows x
    /// classes`. `done` follows the forward pass.
    Step {
        head: Head,
        block: Block<'a>,
        done: Done<'a>,
        y: &'a [f32],
        p: &'a mut [f32],
        grad: &'a mut [f32],
        fresh: bool,
        loss: &'a mut f64,
    },
    /// The logits `X W` into `out` (`rows x classes`), no head applied.
    Logits {
        block: Block<'a>,
        out: &'a mut [f32],
    },
    /// Logits `z` (`rows x classes`) to `p - y`, in place, adding their
    /// loss to `loss` (as a [`Step`](Op::Step) does).
    Residuals {
        head: Head,
        classes: usize,
        z: &'a mut [f32],
        y: &'a [f32],
        loss: &'a mut f64,
    },
    /// Adds `X^T g` (`g` of `rows x classes`) into the packed `grad` (or
    /// writes it there, if `fresh`).
    Gradient {
        block: Block<'a>,
        g: &'a [f32],
        grad: &'a mut [f32],
        fresh: bool,
    },
}

/// The two products, implemented per instruction set.
trait Products {
    /// Logits of the rows of a block into `out` (`rows x classes`).
    fn logits(b: &Block<'_>, out: &mut [f32], done: Done<'_>);
    /// Adds `X^T g` for the rows of a block into the packed `grad` (writes
    /// it, if `fresh`).
    fn gradient(b: &Block<'_>, g: &[f32], grad: &mut [f32], fresh: bool);
}

/// The products written with arrays of lanes, left to the compiler's
/// vectoriser: `R` rows x `G` classes for the forward pass, `S` chunks x
/// `GG` classes for the gradient.
struct Generic<const R: usize, const G: usize, const S: usize, const GG: usize>;

impl<const R: usize, const G: usize, const S: usize, const GG: usize> Products
    for Generic<R, G, S, GG>
{
    #[inline(always)]
    fn logits(b: &Block<'_>, out: &mut [f32], done: Done<'_>) {
        logits::<R, G>(b, out, done);
    }

    #[inline(always)]
    fn gradient(b: &Block<'_>, g: &[f32], grad: &mut [f32], fresh: bool) {
        gradient::<S, GG>(b, g, grad, fresh);
    }
}

/// The body of every entry point: `op` on the products of `$isa` (a
/// module of explicit instructions, or a [`Products`] type), the sigmoid
/// head's loss summed by `$loss`. Expanded into each entry point, so that
/// all of it (the heads and the loss too) is compiled with that entry
/// point's target features.
macro_rules! execute_body {
    ($op:expr, $isa:ident, $loss:expr) => {
        match $op {
            Op::Forward {
                head,
                block,
                done,
                out,
            } => {
                let out = &mut out[..block.rows * block.classes];
                $isa::logits(&block, out, done);
                head.activate_rows(out, block.classes);
            }
            Op::Step {
                head,
                block,
                done,
                y,
                p,
                grad,
                fresh,
                loss,
            } => {
                let n = block.rows * block.classes;
                let p = &mut p[..n];
                $isa::logits(&block, p, done);
                residuals(head, block.classes, p, &y[..n], loss, $loss);
                $isa::gradient(&block, p, grad, fresh);
            }
            Op::Logits { block, out } => {
                $isa::logits(&block, &mut out[..block.rows * block.classes], &|_, _| {});
            }
            Op::Residuals {
                head,
                classes,
                z,
                y,
                loss,
            } => residuals(head, classes, z, y, loss, $loss),
            Op::Gradient {
                block,
                g,
                grad,
                fresh,
            } => $isa::gradient(&block, g, grad, fresh),
        }
    };
}

/// The entry point of the generic code, `P`'s register blocking.
#[inline(always)]
fn execute<P: Products>(op: Op<'_>) {
    execute_body!(op, P, block_loss)
}

/// Logits to `p - y`, in place, adding their loss to `loss` (the sigmoid
/// head's summed by `block_loss`, which every path computes with the same
/// bits).
#[inline(always)]
fn residuals(
    head: Head,
    classes: usize,
    z: &mut [f32],
    y: &[f32],
    loss: &mut f64,
    block_loss: impl Fn(&[f32], &[f32]) -> f64,
) {
    match head {
        Head::Sigmoid => {
            sigmoid_in_place(z);
            *loss += block_loss(z, y);
            subtract(z, y);
        }
        Head::Softmax => softmax_residuals(z, y, classes, loss),
    }
}

/// `p -= y`.
#[inline(always)]
fn subtract(p: &mut [f32], y: &[f32]) {
    for (pv, &yv) in p.iter_mut().zip(y) {
        *pv -= yv;
    }
}

/// # Safety
/// The CPU must support avx512f and fma.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn execute_avx512(op: Op<'_>) {
    // SAFETY: this function's callers guarantee avx512f.
    let loss = |p: &[f32], y: &[f32]| unsafe { block_loss_avx512(p, y) };
    execute_body!(op, avx512, loss)
}

/// # Safety
/// The CPU must support avx2 and fma.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn execute_avx2(op: Op<'_>) {
    // SAFETY: this function's callers guarantee avx2.
    let loss = |p: &[f32], y: &[f32]| unsafe { block_loss_avx2(p, y) };
    execute_body!(op, avx2, loss)
}

/// # Safety
/// The CPU must support neon.
#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
unsafe fn execute_neon(op: Op<'_>) {
    // SAFETY: the `neon` functions and the loss need nothing but neon,
    // which this function's callers guarantee.
    let loss = |p: &[f32], y: &[f32]| unsafe { block_loss_neon(p, y) };
    unsafe { execute_body!(op, neon, loss) }
}

/// The environment variable that forces a code path: `avx512`, `avx2`,
/// `neon`, `portable` (or the names [`Path::name`] reports); unset or empty,
/// the fastest path this CPU supports.
pub(crate) const ENV: &str = "MNIST_KERNEL";

/// A code path of the products. All give the same bits; they differ in
/// speed and in what they need from the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// AVX-512F with FMA, explicit registers ([`avx512`]).
    Avx512,
    /// AVX2 with FMA, explicit registers ([`avx2`]).
    Avx2,
    /// NEON (aarch64), explicit 128-bit registers ([`neon`]).
    Neon,
    /// The generic code for the target's baseline, `f32::mul_add` for every
    /// multiply-add.
    Portable,
}

impl Path {
    /// Every path, fastest first.
    pub(crate) const ALL: [Path; 4] = [Path::Avx512, Path::Avx2, Path::Neon, Path::Portable];

    /// The name reports print.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Path::Avx512 => "avx512f+fma",
            Path::Avx2 => "avx2+fma",
            Path::Neon => "neon",
            Path::Portable => "portable",
        }
    }

    /// The short name [`ENV`] takes.
    pub(crate) fn short_name(self) -> &'static str {
        match self {
            Path::Avx512 => "avx512",
            Path::Avx2 => "avx2",
            Path::Neon => "neon",
            Path::Portable => "portable",
        }
    }

    /// What this CPU lacks to run the path (a feature, or another kind of
    /// CPU); `None` if it can.
    pub(crate) fn missing(self) -> Option<&'static str> {
        #[cfg(target_arch = "x86_64")]
        let x86 = |features: &[(&'static str, bool)]| {
            features
                .iter()
                .find(|(_, present)| !present)
                .map(|(name, _)| *name)
        };
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => x86(&[
                ("avx512f", is_x86_feature_detected!("avx512f")),
                ("fma", is_x86_feature_detected!("fma")),
            ]),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => x86(&[
                ("avx2", is_x86_feature_detected!("avx2")),
                ("fma", is_x86_feature_detected!("fma")),
            ]),
            #[cfg(not(target_arch = "x86_64"))]
            Path::Avx512 | Path::Avx2 => Some("an x86-64 CPU"),
            #[cfg(target_arch = "aarch64")]
            Path::Neon => (!std::arch::is_aarch64_feature_detected!("neon")).then_some("neon"),
            #[cfg(not(target_arch = "aarch64"))]
            Path::Neon => Some("an aarch64 CPU"),
            Path::Portable => None,
        }
    }

    /// The fastest path this CPU supports.
    fn best() -> Path {
        Path::ALL
            .into_iter()
            .find(|p| p.missing().is_none())
            .unwrap_or(Path::Portable)
    }

    /// The path [`ENV`] asks for (`requested`), or the fastest when it is
    /// unset or empty; an error message for a name that is not a path or a
    /// path this CPU lacks.
    fn choose(requested: Option<&std::ffi::OsStr>) -> Result<Path, String> {
        let Some(requested) = requested.filter(|r| !r.is_empty()) else {
            return Ok(Path::best());
        };
        let names = || {
            Path::ALL
                .iter()
                .map(|p| p.short_name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let shown = requested.to_string_lossy();
        let path = Path::ALL
            .into_iter()
            .find(|p| requested == p.short_name() || requested == p.name())
            .ok_or_else(|| {
                format!(
                    "{ENV}={shown}: no such kernel path (expected one of {}, or unset for the fastest this CPU supports)",
                    names()
                )
            })?;
        match path.missing() {
            None => Ok(path),
            Some(need) => Err(format!(
                "{ENV}={shown}: this CPU cannot run the {} path (it needs {need})",
                path.short_name()
            )),
        }
    }
}

/// The path of this process, read from [`ENV`] once.
pub(crate) fn selected() -> Result<Path, crate::Error> {
    static CHOICE: std::sync::OnceLock<Result<Path, String>> = std::sync::OnceLock::new();
    CHOICE
        .get_or_init(|| Path::choose(std::env::var_os(ENV).as_deref()))
        .clone()
        .map_err(|reason| crate::Error::Kernel { reason })
}

/// The path [`run`] takes.
///
/// # Panics
/// When [`ENV`] names no path or one this CPU lacks (see [`selected`]).
pub(crate) fn path() -> Path {
    match selected() {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}

/// Runs `op` on the path of this process ([`path`]).
///
/// Slices must be consistent with the sizes in `op` (checked by the callers;
/// an inconsistency panics on a slice bound, it never reads out of bounds).
///
/// # Panics
/// As [`path`].
pub(crate) fn run(op: Op<'_>) {
    run_on(path(), op)
}

/// Runs `op` on `path`.
///
/// # Panics
/// When this CPU cannot run `path`.
pub(crate) fn run_on(path: Path, op: Op<'_>) {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the only requirement of the function is that the CPU
        // supports its features, checked by `missing` in the guard.
        Path::Avx512 if path.missing().is_none() => unsafe { execute_avx512(op) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Path::Avx2 if path.missing().is_none() => unsafe { execute_avx2(op) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above.
        Path::Neon if path.missing().is_none() => unsafe { execute_neon(op) },
        Path::Portable => execute::<Generic<1, 5, 1, 5>>(op),
        _ => cannot_run(path),
    }
}

/// The panic of [`run_on`] and [`compiled_for`] for a path this CPU
/// cannot run.
fn cannot_run(path: Path) -> ! {
    panic!(
        "the {} kernel path needs {}",
        path.short_name(),
        path.missing().unwrap_or("another CPU")
    )
}

/// Runs `f` compiled for `path`'s instruction set: `f` is inlined into a
/// function with the path's target features, so that its loops over
/// slices are vectorised with them. For element-wise code (the weight
/// updates), whose operations are the same at any vector width (Rust never
/// fuses a multiplication and an addition by itself): the same bits on
/// every path. Give it a closure marked `#[inline(always)]`: without the
/// mark the compiler may keep the closure a function of its own, compiled
/// for the baseline (measured on a Zen 4: the update of 7,856 weights then
/// took 2.4 µs on every path, against 0.94 µs with AVX-512).
///
/// # Panics
/// When this CPU cannot run `path`.
#[inline(always)]
pub(crate) fn compiled_for<R>(path: Path, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    fn avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the only requirement of the function is that the CPU
        // supports its features, checked by `missing` in the guard.
        Path::Avx512 if path.missing().is_none() => unsafe { avx512(f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Path::Avx2 if path.missing().is_none() => unsafe { avx2(f) },
        // NEON is part of aarch64's baseline.
        Path::Neon if path.missing().is_none() => f(),
        Path::Portable => f(),
        _ => cannot_run(path),
    }
}

/// Runs `op` with the smallest register blocking (for tests).
#[cfg(test)]
pub(crate) fn run_small(op: Op<'_>) {
    execute::<Generic<1, 3, 1, 3>>(op)
}

/// Every path this CPU can run, with a runner for each (for tests).
#[cfg(test)]
pub(crate) fn runnable() -> Vec<(Path, fn(Op<'_>))> {
    let mut runs: Vec<(Path, fn(Op<'_>))> = Vec::new();
    for path in Path::ALL {
        if path.missing().is_none() {
            runs.push((
                path,
                match path {
                    Path::Avx512 => |op| run_on(Path::Avx512, op),
                    Path::Avx2 => |op| run_on(Path::Avx2, op),
                    Path::Neon => |op| run_on(Path::Neon, op),
                    Path::Portable => |op| run_on(Path::Portable, op),
                },
            ));
        }
    }
    runs
}

/// The forward pass's drivers of an instruction set's module, the same for
/// each: `logits_classes` runs the module's `logits_rows::<R, GC>` over a
/// block's rows (then single rows), and `logits` runs it over groups of
/// `G` classes (then single classes), calling `done` as rows are finished
/// in the first group.
///
/// Within a pass of the module's `PASS_ROWS` rows, groups of classes are
/// the outer loop: the weights of one group (half of them for ten classes
/// with AVX-512, 16 KB for the post's 785 features) stay in L1 while all
/// the pass's rows go by, instead of all the weights (32 KB, L1's size)
/// streaming from L2 again for every few rows. The rows are read once per
/// group instead: from L2 if the pass is the whole block (AVX-512), from
/// L1 if it is a few rows (AVX2).
#[cfg(target_arch = "x86_64")]
macro_rules! logits_drivers {
    ($feature:literal) => {
        /// Logits of every row of a block for classes `cg..cg + GC`, `R`
        /// rows at a time; `done`, if given, is told as rows are finished.
        #[inline]
        #[target_feature(enable = $feature)]
        fn logits_classes<const GC: usize>(
            b: &Block<'_>,
            cg: usize,
            out: &mut [f32],
            done: Option<Done<'_>>,
        ) {
            let mut r0 = 0;
            while r0 < b.rows {
                // Two left-over rows together: each weight load then
                // serves both. Rows are independent, so the grouping never
                // changes a bit.
                let n = if r0 + R <= b.rows {
                    logits_rows::<R, GC>(b, r0, cg, out);
                    R
                } else if r0 + 2 <= b.rows {
                    logits_rows::<2, GC>(b, r0, cg, out);
                    2
                } else {
                    logits_rows::<1, GC>(b, r0, cg, out);
                    1
                };
                if let Some(done) = done {
                    done(r0, n);
                }
                r0 += n;
            }
        }

        /// Logits of the rows of a block into `out` (`rows x classes`),
        /// [`PASS_ROWS`] rows at a time, each through every group of
        /// classes; calls `done` as rows are finished (in the first group
        /// of classes). Rows are independent: the passes never change a
        /// bit.
        #[target_feature(enable = $feature)]
        pub(super) fn logits(b: &Block<'_>, out: &mut [f32], done: Done<'_>) {
            let stride = b.chunks * LANES;
            let mut r0 = 0;
            while r0 < b.rows {
                let n = PASS_ROWS.min(b.rows - r0);
                let pass = Block {
                    x: &b.x[r0 * stride..(r0 + n) * stride],
                    rows: n,
                    ..*b
                };
                let out = &mut out[r0 * b.classes..(r0 + n) * b.classes];
                let done = |first: usize, m: usize| done(r0 + first, m);
                let mut cg = 0;
                while cg < b.classes {
                    let signal = (cg == 0).then_some(&done as Done<'_>);
                    if cg + G <= b.classes {
                        logits_classes::<G>(&pass, cg, out, signal);
                        cg += G;
                    } else {
                        logits_classes::<1>(&pass, cg, out, signal);
                        cg += 1;
                    }
                }
                r0 += n;
            }
        }
    };
}

/// The AVX-512 products with explicit registers: the compiler keeps arrays of
/// `__m512` in registers where it spills larger arrays of `f32` lanes, so
/// wider register blocking pays off only written this way. Lane by lane the
/// operations are those of [`Generic`], in the same order, so
/// the results are identical bit for bit.
///
/// Every function here carries the target features of `execute_avx512`, the
/// only caller, so that the intrinsics are inlined (and safe to call).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm256_add_ps, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm512_add_ps,
        _mm512_castps512_ps256, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps,
        _mm512_setzero_ps, _mm512_shuffle_f32x4, _mm512_shuffle_ps, _mm512_storeu_ps, _mm_add_ps,
        _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps,
    };

    use super::{Block, Done, LANES};

    /// Forward pass: rows x classes held in registers (15 accumulators).
    const R: usize = 3;
    const G: usize = 5;
    /// Rows of a block taken through every group of classes before the
    /// next: the whole block. A group's weights (16 KiB) stay in L1 while
    /// the block's rows stream from L2 twice (two groups); rows taken a few
    /// at a time would stay in L1 instead, but the weights (32 KiB) would
    /// then come from L2 again for every few rows, more bytes per
    /// multiply-add.
    const PASS_ROWS: usize = usize::MAX;
    /// Gradient: chunks x classes held in registers (20 accumulators: every
    /// class at once, so each row of a strip is read once).
    const S: usize = 2;
    const GG: usize = 10;

    /// The first 16 values of `s`.
    ///
    /// # Panics
    /// When `s` is shorter.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn load(s: &[f32]) -> __m512 {
        let s = &s[..LANES];
        // SAFETY: `s` holds 16 floats (checked above); the load is an
        // unaligned one.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }

    /// Stores `v` into the first 16 values of `s`.
    ///
    /// # Panics
    /// When `s` is shorter.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn store(s: &mut [f32], v: __m512) {
        let s = &mut s[..LANES];
        // SAFETY: as in `load`.
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), v) }
    }

    /// The lanes of `v` summed by the tree of `super::hsum`: lanes `k` and
    /// `k + 8`, then `k` and `k + 4`, then `(0 + 2) + (1 + 3)`.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn hsum(v: __m512) -> f32 {
        let hi = _mm512_castps512_ps256(_mm512_shuffle_f32x4::<0b11_10_11_10>(v, v));
        let s8 = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
        let t = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps::<0b01>(t, t)))
    }

    /// Where [`hsum16`] leaves the sums: lane `l` holds the sum of
    /// `v[SUM_LANE_OF[l]]`. (A transposition of 4 x 4, its own inverse.)
    const SUM_LANE_OF: [usize; LANES] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];

    /// The lanes of each of 16 vectors summed by the tree of
    /// `super::hsum` (lanes `k` and `k + 8`, then `k` and `k + 4`, then
    /// `(0 + 2) + (1 + 3)`), the sixteen sums in one vector (see
    /// [`SUM_LANE_OF`]): each level adds the same pairs as `hsum`, for
    /// several vectors in one instruction, so the sums are identical bit
    /// for bit, in 45 instructions instead of 128.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn hsum16(v: [__m512; LANES]) -> __m512 {
        // Lanes k + k+8 of two vectors: the first's in lanes 0..8.
        let t: [__m512; 8] = std::array::from_fn(|i| {
            let (a, b) = (v[2 * i], v[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
            )
        });
        // Lanes k + k+4 of each half: four vectors, one per 128-bit lane.
        let u: [__m512; 4] = std::array::from_fn(|i| {
            let (a, b) = (t[2 * i], t[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
            )
        });
        // (0 + 2) and (1 + 3) within each 128-bit lane, two vectors each.
        let w: [__m512; 2] = std::array::from_fn(|i| {
            let (a, b) = (u[2 * i], u[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
                _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
            )
        });
        _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(w[0], w[1]),
            _mm512_shuffle_ps::<0b11_01_11_01>(w[0], w[1]),
        )
    }

    /// Logits of `RR` rows starting at `r0` for classes `cg..cg + GC`, into
    /// `out` (`rows x classes`).
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn logits_rows<const RR: usize, const GC: usize>(
        b: &Block<'_>,
        r0: usize,
        cg: usize,
        out: &mut [f32],
    ) {
        let (chunks, classes) = (b.chunks, b.classes);
        let stride = chunks * LANES;
        let x = &b.x[r0 * stride..(r0 + RR) * stride];
        let w = &b.packed[..chunks * classes * LANES];
        assert!(cg + GC <= classes);
        // Raw pointers, their bounds checked once above: checked slices
        // cost a compare and a branch a load, more instructions than the
        // multiply-adds (in the inner loop, 40 besides 15 multiply-adds).
        let (x, w) = (x.as_ptr(), w[cg * LANES..].as_ptr());
        let mut acc = [[_mm512_setzero_ps(); GC]; RR];
        for i in 0..chunks {
            let (o, wo) = (i * LANES, i * classes * LANES);
            // SAFETY: with `r < RR` and `g < GC`, the 16 values at `x + r *
            // stride + o` are row `r0 + r`'s chunk `i` (`x` holds `RR` rows
            // of `stride`), and those at `w + wo + g * LANES` class `cg +
            // g`'s weights of chunk `i` (`cg + GC <= classes`, `w` starts
            // at class `cg` of `chunks * classes` chunks); the loads are
            // unaligned ones.
            unsafe {
                let mut xv = [_mm512_setzero_ps(); RR];
                for r in 0..RR {
                    xv[r] = _mm512_loadu_ps(x.add(r * stride + o));
                }
                for g in 0..GC {
                    let wg = _mm512_loadu_ps(w.add(wo + g * LANES));
                    for r in 0..RR {
                        acc[r][g] = _mm512_fmadd_ps(xv[r], wg, acc[r][g]);
                    }
                }
            }
        }
        if RR * GC > 8 && RR * GC <= LANES {
            // All sums at once: the same pairs added as in `hsum`, several
            // accumulators per instruction.
            let mut v = [_mm512_setzero_ps(); LANES];
            for r in 0..RR {
                for g in 0..GC {
                    v[SUM_LANE_OF[r * GC + g]] = acc[r][g];
                }
            }
            let mut sums = [0.0f32; LANES];
            store(&mut sums, hsum16(v));
            for r in 0..RR {
                let at = (r0 + r) * b.classes + cg;
                out[at..at + GC].copy_from_slice(&sums[r * GC..(r + 1) * GC]);
            }
        } else {
            for r in 0..RR {
                for g in 0..GC {
                    out[(r0 + r) * b.classes + cg + g] = hsum(acc[r][g]);
                }
            }
        }
    }

    logits_drivers!("avx512f,fma");

    /// `grad[chunks i..i+SS, classes cg..cg+GC] += sum_r g[r][c] x[r][chunk]`,
    /// rows in order; `=` if `fresh`.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn gradient_strip<const SS: usize, const GC: usize>(
        b: &Block<'_>,
        g: &[f32],
        cg: usize,
        i: usize,
        grad: &mut [f32],
        fresh: bool,
    ) {
        let (rows, chunks, classes) = (b.rows, b.chunks, b.classes);
        let stride = chunks * LANES;
        assert!(i + SS <= chunks && cg + GC <= classes);
        let x = &b.x[..rows * stride];
        let g = &g[..rows * classes];
        let mut acc = [[_mm512_setzero_ps(); GC]; SS];
        if !fresh {
            for s in 0..SS {
                for c in 0..GC {
                    acc[s][c] = load(&grad[((i + s) * classes + cg + c) * LANES..]);
                }
            }
        }
        // Raw pointers, their bounds checked once above (as in
        // `logits_rows`), computed without indexing: with no rows, `x` and
        // `g` are empty.
        let (xp, gp) = (
            x.as_ptr().wrapping_add(i * LANES),
            g.as_ptr().wrapping_add(cg),
        );
        for r in 0..rows {
            // SAFETY: with `r < rows`, `s < SS` and `c < GC`, the 16 values
            // at `xp + r * stride + s * LANES` are chunk `i + s` of row `r`
            // (`i + SS <= chunks`, `x` holds `rows` rows of `stride`), and
            // `gp + r * classes + c` is `g[r][cg + c]` (`cg + GC <=
            // classes`, `g` holds `rows` rows of `classes`); the loads are
            // unaligned ones.
            unsafe {
                let mut xv = [_mm512_setzero_ps(); SS];
                for s in 0..SS {
                    xv[s] = _mm512_loadu_ps(xp.add(r * stride + s * LANES));
                }
                for c in 0..GC {
                    let gb = _mm512_set1_ps(*gp.add(r * classes + c));
                    for s in 0..SS {
                        acc[s][c] = _mm512_fmadd_ps(gb, xv[s], acc[s][c]);
                    }
                }
            }
        }
        for s in 0..SS {
            for c in 0..GC {
                store(&mut grad[((i + s) * classes + cg + c) * LANES..], acc[s][c]);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn gradient_classes<const GC: usize>(
        b: &Block<'_>,
        g: &[f32],
        cg: usize,
        grad: &mut [f32],
        fresh: bool,
    ) {
        let mut i = 0;
        while i + S <= b.chunks {
            gradient_strip::<S, GC>(b, g, cg, i, grad, fresh);
            i += S;
        }
        while i < b.chunks {
            gradient_strip::<1, GC>(b, g, cg, i, grad, fresh);
            i += 1;
        }
    }

    /// Adds `X^T g` for the rows of a block into the packed `grad` (writes
    /// it, if `fresh`).
    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn gradient(b: &Block<'_>, g: &[f32], grad: &mut [f32], fresh: bool) {
        let mut cg = 0;
        while cg + GG <= b.classes {
            gradient_classes::<GG>(b, g, cg, grad, fresh);
            cg += GG;
        }
        while cg < b.classes {
            gradient_classes::<1>(b, g, cg, grad, fresh);
            cg += 1;
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use rand::{Rng, SeedableRng};

        #[test]
        fn hsum16_adds_the_pairs_of_hsum() {
            if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma")) {
                return;
            }
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
            for trial in 0..2000 {
                // Wide exponents so that the order of the additions shows.
                let lanes: [[f32; LANES]; LANES] = std::array::from_fn(|_| {
                    std::array::from_fn(|_| {
                        let x = rng.gen_range(-1.0f32..1.0) * 2f32.powi(rng.gen_range(-30..30));
                        if trial % 7 == 0 && rng.gen_bool(0.05) {
                            [f32::INFINITY, -0.0, f32::NAN][rng.gen_range(0..3)]
                        } else {
                            x
                        }
                    })
                });
                // SAFETY: avx512f and fma were detected above.
                let (sums, each) = unsafe { sum_both(&lanes) };
                for l in 0..LANES {
                    let (got, want) = (sums[l], each[SUM_LANE_OF[l]]);
                    assert!(
                        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                        "lane {l}: {got} vs {want}"
                    );
                }
            }
        }

        /// `hsum16` of the vectors, and `hsum` of each.
        #[target_feature(enable = "avx512f,fma")]
        fn sum_both(lanes: &[[f32; LANES]; LANES]) -> ([f32; LANES], [f32; LANES]) {
            let v: [__m512; LANES] = std::array::from_fn(|i| load(&lanes[i]));
            let mut sums = [0.0f32; LANES];
            store(&mut sums, hsum16(v));
            (sums, std::array::from_fn(|i| hsum(v[i])))
        }
    }
}

/// The AVX2 products with explicit registers, of the AVX-512 design: a
/// 16-lane chunk is two `__m256` halves (lanes 0-7 and 8-15), and the
/// register blocking fits AVX2's 16 ymm registers. The halves of a chunk
/// never mix until the final sum (the gradient counts its strips in
/// halves): lane by lane the operations are those of [`Generic`], in the
/// same order (`_mm256_fmadd_ps(a, b, c)` is `a * b + c` with one rounding,
/// as `mul_add`), and the lanes are summed by the tree of `hsum` (whose
/// first level adds the two halves), so the results are identical bit for
/// bit. Bounds are checked once per call, not once per load: written with
/// slices, the checks outnumbered the multiply-adds.
///
/// On a CPU that runs AVX-512 as two 256-bit halves (AMD Zen 4) this path
/// has the same multiply-add throughput as [`avx512`]; what it lacks is
/// registers, so it reuses each load less (10 loads for 12 multiply-adds
/// in the forward pass, where AVX-512 needs 8 for 15 of twice the width).
/// `MNIST_KERNEL=avx2 cargo bench -p mnist-model --bench step` against the
/// same without the variable measures the difference: one step of 512
/// rows within the noise of the AVX-512 one, the forward pass over 10,000
/// rows about 10% slower.
///
/// Every function here carries the target features of `execute_avx2`, the
/// only caller, so that the intrinsics are inlined (and safe to call).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_broadcast_ss, _mm256_castps256_ps128, _mm256_extractf128_ps,
        _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps, _mm_add_ps,
        _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps,
    };

    use super::{Block, Done, LANES};

    /// Lanes of a `__m256`: half a chunk.
    const HALF: usize = LANES / 2;

    /// Forward pass: rows x classes x halves held in registers (12
    /// accumulators; the 4 registers left hold the loads, 10 per chunk for
    /// 12 multiply-adds). Of the blockings that fit (2 x 3, 1 x 5, and
    /// passes over one half of the chunks at a time), the fastest measured.
    const R: usize = 3;
    const G: usize = 2;
    /// Rows taken through all five groups of classes before the next: six
    /// (19 KiB) stay in L1 beside a group's weights (6 KiB), so they come
    /// from L2 once instead of five times, and the weights once per six
    /// rows. Whole-block passes, two classes at a time (all the registers
    /// allow), streamed the block from L2 once for every two classes: 16
    /// bytes per 8-lane multiply-add, all of the 32 bytes a cycle that a
    /// Zen 3 core's L2 gives its two FMA pipes. Now about 8.5. Measured
    /// with `valgrind --tool=callgrind --cache-sim=yes --D1=32768,8,64`
    /// (one epoch of the post, one thread): the forward pass's L1 read
    /// misses went from 17.4 to 7.7 million. On a Zen 4, whose L2 gives
    /// 64 bytes a cycle, the time did not change (0.31 to 0.33 s for the
    /// post on one thread, either way).
    const PASS_ROWS: usize = 6;
    /// Gradient: units (half chunks) x classes held in registers (12
    /// accumulators, with a row's two units and a splatted factor beside
    /// them: 8 loads for 12 multiply-adds), then groups of `GG2` classes
    /// (ten classes are 6 + 4). Measured faster than 2 x 5, 2 x 4, 2 x 7,
    /// 3 x 4, 4 x 3 and 1 x 10: ten chains of multiply-adds are too few to
    /// hide their latency between the loads.
    const U: usize = 2;
    const GG: usize = 6;
    const GG2: usize = 4;

    /// The first 8 values of `s`.
    ///
    /// # Panics
    /// When `s` is shorter.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load(s: &[f32]) -> __m256 {
        let s = &s[..HALF];
        // SAFETY: `s` holds 8 floats (checked above); the load is an
        // unaligned one.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }

    /// Stores `v` into the first 8 values of `s`.
    ///
    /// # Panics
    /// When `s` is shorter.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn store(s: &mut [f32], v: __m256) {
        let s = &mut s[..HALF];
        // SAFETY: as in `load`.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
    }

    /// The lanes of the chunk `(lo, hi)` summed by the tree of
    /// `super::hsum`: lanes `k` and `k + 8` (the two halves), then `k` and
    /// `k + 4`, then `(0 + 2) + (1 + 3)`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(lo: __m256, hi: __m256) -> f32 {
        let s8 = _mm256_add_ps(lo, hi);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
        let t = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps::<0b01>(t, t)))
    }

    /// Logits of `RR` rows starting at `r0` for classes `cg..cg + GC`, into
    /// `out` (`rows x classes`).
    ///
    /// # Panics
    /// When the rows or the classes are not in the block.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn logits_rows<const RR: usize, const GC: usize>(
        b: &Block<'_>,
        r0: usize,
        cg: usize,
        out: &mut [f32],
    ) {
        let (chunks, classes) = (b.chunks, b.classes);
        let stride = chunks * LANES;
        let x = &b.x[r0 * stride..(r0 + RR) * stride];
        let w = &b.packed[..chunks * classes * LANES];
        assert!(cg + GC <= classes);
        // Raw pointers, their bounds checked once above.
        let (x, w) = (x.as_ptr(), w[cg * LANES..].as_ptr());
        let mut acc = [[[_mm256_setzero_ps(); 2]; GC]; RR];
        for i in 0..chunks {
            let (o, wo) = (i * LANES, i * classes * LANES);
            // SAFETY: with `r < RR`, `g < GC` and `h < 2`, the 8 values at
            // `x + r * stride + o + h * HALF` are in row `r0 + r`'s chunk
            // `i` (`x` holds `RR` rows of `stride`), and those at
            // `w + wo + g * LANES + h * HALF` in class `cg + g`'s weights of
            // chunk `i` (`cg + GC <= classes`, `w` starts at class `cg` of
            // `chunks * classes` chunks); the loads are unaligned ones.
            unsafe {
                let mut xv = [[_mm256_setzero_ps(); 2]; RR];
                for r in 0..RR {
                    for h in 0..2 {
                        xv[r][h] = _mm256_loadu_ps(x.add(r * stride + o + h * HALF));
                    }
                }
                for g in 0..GC {
                    for h in 0..2 {
                        let wg = _mm256_loadu_ps(w.add(wo + g * LANES + h * HALF));
                        for r in 0..RR {
                            acc[r][g][h] = _mm256_fmadd_ps(xv[r][h], wg, acc[r][g][h]);
                        }
                    }
                }
            }
        }
        for r in 0..RR {
            for g in 0..GC {
                out[(r0 + r) * classes + cg + g] = hsum(acc[r][g][0], acc[r][g][1]);
            }
        }
    }

    logits_drivers!("avx2,fma");

    /// `grad[units u0..u0+UU, classes cg..cg+GC] += sum_r g[r][c] x[r][unit]`,
    /// rows in order; `=` if `fresh`. A unit is half a chunk: unit `u` is
    /// lanes `8 (u % 2)..` of chunk `u / 2`, values `8 u..8 u + 8` of a row.
    ///
    /// # Panics
    /// When the units or the classes are not in the block, or `g` or
    /// `grad` is too short.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn gradient_strip<const UU: usize, const GC: usize>(
        b: &Block<'_>,
        g: &[f32],
        cg: usize,
        u0: usize,
        grad: &mut [f32],
        fresh: bool,
    ) {
        let (rows, chunks, classes) = (b.rows, b.chunks, b.classes);
        let stride = chunks * LANES;
        let at = |u: usize, c: usize| ((u / 2) * classes + cg + c) * LANES + (u % 2) * HALF;
        assert!(u0 + UU <= 2 * chunks && cg + GC <= classes);
        let x = &b.x[..rows * stride];
        let g = &g[..rows * classes];
        let mut acc = [[_mm256_setzero_ps(); GC]; UU];
        if !fresh {
            for u in 0..UU {
                for c in 0..GC {
                    acc[u][c] = load(&grad[at(u0 + u, c)..]);
                }
            }
        }
        // (Computed without indexing: with no rows, `x` and `g` are empty.)
        let (xp, gp) = (
            x.as_ptr().wrapping_add(u0 * HALF),
            g.as_ptr().wrapping_add(cg),
        );
        for r in 0..rows {
            // SAFETY: with `r < rows`, `u < UU` and `c < GC`, the 8 values
            // at `xp + r * stride + u * HALF` are unit `u0 + u` of row `r`
            // (`u0 + UU <= 2 * chunks`, `x` holds `rows` rows of `stride`),
            // and `gp + r * classes + c` is `g[r][cg + c]` (`cg + GC <=
            // classes`, `g` holds `rows` rows of `classes`); the loads are
            // unaligned ones.
            unsafe {
                let mut xv = [_mm256_setzero_ps(); UU];
                for u in 0..UU {
                    xv[u] = _mm256_loadu_ps(xp.add(r * stride + u * HALF));
                }
                for c in 0..GC {
                    let gb = _mm256_broadcast_ss(&*gp.add(r * classes + c));
                    for u in 0..UU {
                        acc[u][c] = _mm256_fmadd_ps(gb, xv[u], acc[u][c]);
                    }
                }
            }
        }
        for u in 0..UU {
            for c in 0..GC {
                store(&mut grad[at(u0 + u, c)..], acc[u][c]);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn gradient_classes<const GC: usize>(
        b: &Block<'_>,
        g: &[f32],
        cg: usize,
        grad: &mut [f32],
        fresh: bool,
    ) {
        let units = 2 * b.chunks;
        let mut u = 0;
        while u + U <= units {
            gradient_strip::<U, GC>(b, g, cg, u, grad, fresh);
            u += U;
        }
        while u < units {
            gradient_strip::<1, GC>(b, g, cg, u, grad, fresh);
            u += 1;
        }
    }

    /// Adds `X^T g` for the rows of a block into the packed `grad` (writes
    /// it, if `fresh`).
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn gradient(b: &Block<'_>, g: &[f32], grad: &mut [f32], fresh: bool) {
        let mut cg = 0;
        while cg < b.classes {
            let left = b.classes - cg;
            if left >= GG {
                gradient_classes::<GG>(b, g, cg, grad, fresh);
                cg += GG;
            } else if left >= GG2 {
                gradient_classes::<GG2>(b, g, cg, grad, fresh);
                cg += GG2;
            } else {
                gradient_classes::<1>(b, g, cg, grad, fresh);
                cg += 1;
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use rand::{Rng, SeedableRng};

        #[test]
        fn hsum_adds_the_pairs_of_the_generic_hsum() {
            if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
                return;
            }
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
            for trial in 0..20_000 {
                // Wide exponents so that the order of the additions shows.
                let lanes: [f32; LANES] = std::array::from_fn(|_| {
                    let x = rng.gen_range(-1.0f32..1.0) * 2f32.powi(rng.gen_range(-30..30));
                    if trial % 7 == 0 && rng.gen_bool(0.05) {
                        [f32::INFINITY, -0.0, f32::NAN][rng.gen_range(0..3)]
                    } else {
                        x
                    }
                });
                // SAFETY: avx2 and fma were detected above.
                let got = unsafe { sum(&lanes) };
                let want = super::super::hsum(&lanes);
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{lanes:?}: {got} vs {want}"
                );
            }
        }

        /// `hsum` of the two halves of `lanes`.
        #[target_feature(enable = "avx2,fma")]
        fn sum(lanes: &[f32; LANES]) -> f32 {
            hsum(load(&lanes[..HALF]), load(&lanes[HALF..]))
        }
    }
}

/// The NEON products with explicit registers, one row or one chunk at a
/// time for five classes (the blocking of [`Generic`]): a 16-lane chunk is four
/// 128-bit registers, so five classes keep 20 of the 32 vector registers as
/// accumulators, with the chunk's four and a weight's four beside them.
/// Lane by lane the operations are those of [`Generic`], in the same order
/// (`vfmaq_f32(c, a, b)` is `a * b + c` with one rounding, as `mul_add`),
/// and the lanes are summed by the tree of `hsum`, so the results are
/// identical bit for bit.
///
/// Every function here needs neon; `execute_neon`, the only caller, checks
/// it.
#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::{
        float32x4_t, vaddq_f32, vdupq_n_f32, vextq_f32, vfmaq_f32, vgetq_lane_f32, vld1q_f32,
        vst1q_f32,
    };

    use super::{Block, Done, LANES};

    /// The 16 lanes of a chunk: lanes 0-3, 4-7, 8-11 and 12-15.
    type Chunk = [float32x4_t; 4];

    /// Classes per pass, in the forward pass (one row) and the gradient
    /// (one chunk): 20 accumulators.
    const G: usize = 5;

    /// The first 16 values of `s`.
    ///
    /// # Safety
    /// The CPU must support neon.
    ///
    /// # Panics
    /// When `s` is shorter.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load(s: &[f32]) -> Chunk {
        let s = &s[..LANES];
        // SAFETY: `s` holds 16 floats (checked above), four loads of four
        // (unaligned loads).
        unsafe { std::array::from_fn(|q| vld1q_f32(s.as_ptr().add(4 * q))) }
    }

    /// Stores `v` into the first 16 values of `s`.
    ///
    /// # Safety
    /// As [`load`].
    ///
    /// # Panics
    /// When `s` is shorter.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn store(s: &mut [f32], v: Chunk) {
        let s = &mut s[..LANES];
        for (q, v) in v.into_iter().enumerate() {
            // SAFETY: as in `load`.
            unsafe { vst1q_f32(s.as_mut_ptr().add(4 * q), v) };
        }
    }

    /// `a * b + c` lane by lane, one rounding.
    ///
    /// # Safety
    /// The CPU must support neon.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn fma(a: Chunk, b: Chunk, c: Chunk) -> Chunk {
        std::array::from_fn(|q| vfmaq_f32(c[q], a[q], b[q]))
    }

    /// The lanes of `v` summed by the tree of `super::hsum`: lanes `k` and
    /// `k + 8`, then `k` and `k + 4`, then `(0 + 2) + (1 + 3)`.
    ///
    /// # Safety
    /// The CPU must support neon.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn hsum(v: Chunk) -> f32 {
        // Lanes 0-3 and 4-7 of the 8 sums `k + (k + 8)`.
        let (lo, hi) = (vaddq_f32(v[0], v[2]), vaddq_f32(v[1], v[3]));
        let s4 = vaddq_f32(lo, hi);
        let t = vaddq_f32(s4, vextq_f32::<2>(s4, s4));
        vgetq_lane_f32::<0>(t) + vgetq_lane_f32::<1>(t)
    }

    /// Logits of row `r` for classes `cg..cg + GC`, into `out` (`rows x
    /// classes`).
    ///
    /// # Safety
    /// The CPU must support neon.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn logits_row<const GC: usize>(b: &Block<'_>, r: usize, cg: usize, out: &mut [f32]) {
        let stride = b.chunks * LANES;
        let x = &b.x[r * stride..(r + 1) * stride];
        // SAFETY: the callers guarantee neon, all these functions need.
        unsafe {
            let mut acc = [[vdupq_n_f32(0.0); 4]; GC];
            for i in 0..b.chunks {
                // Slices of the exact lengths: one bounds check a chunk, not
                // one a load.
                let xv = load(&x[i * LANES..(i + 1) * LANES]);
                let at = (i * b.classes + cg) * LANES;
                let w = &b.packed[at..at + GC * LANES];
                for g in 0..GC {
                    acc[g] = fma(xv, load(&w[g * LANES..(g + 1) * LANES]), acc[g]);
                }
            }
            for g in 0..GC {
                out[r * b.classes + cg + g] = hsum(acc[g]);
            }
        }
    }

    /// Logits of the rows of a block into `out` (`rows x classes`), calling
    /// `done` as each row is finished.
    ///
    /// # Safety
    /// The CPU must support neon.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn logits(b: &Block<'_>, out: &mut [f32], done: Done<'_>) {
        for r in 0..b.rows {
            let mut cg = 0;
            // SAFETY: as in `logits_row`.
            unsafe {
                while cg + G <= b.classes {
                    logits_row::<G>(b, r, cg, out);
                    cg += G;
                }
                while cg < b.classes {
                    logits_row::<1>(b, r, cg, out);
                    cg += 1;
                }
            }
            done(r, 1);
        }
    }

    /// `grad[chunk i, classes cg..cg+GC] += sum_r g[r][c] x[r][chunk]`,
    /// rows in order; `=` if `fresh`.
    ///
    /// # Safety
    /// The CPU must support neon.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn gradient_strip<const GC: usize>(
        b: &Block<'_>,
        g: &[f32],
        cg: usize,
        i: usize,
        grad: &mut [f32],
        fresh: bool,
    ) {
        let (stride, classes) = (b.chunks * LANES, b.classes);
        // SAFETY: as in `logits_row`.
        unsafe {
            let mut acc = [[vdupq_n_f32(0.0); 4]; GC];
            if !fresh {
                for c in 0..GC {
                    acc[c] = load(&grad[(i * classes + cg + c) * LANES..]);
                }
            }
            for r in 0..b.rows {
                let at = r * stride + i * LANES;
                let xv = load(&b.x[at..at + LANES]);
                let gr = &g[r * classes + cg..r * classes + cg + GC];
                for c in 0..GC {
                    acc[c] = fma([vdupq_n_f32(gr[c]); 4], xv, acc[c]);
                }
            }
            for c in 0..GC {
                store(&mut grad[(i * classes + cg + c) * LANES..], acc[c]);
            }
        }
    }

    /// Adds `X^T g` for the rows of a block into the packed `grad` (writes
    /// it, if `fresh`).
    ///
    /// # Safety
    /// The CPU must support neon.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn gradient(b: &Block<'_>, g: &[f32], grad: &mut [f32], fresh: bool) {
        let mut cg = 0;
        // SAFETY: as in `logits_row`.
        unsafe {
            while cg + G <= b.classes {
                for i in 0..b.chunks {
                    gradient_strip::<G>(b, g, cg, i, grad, fresh);
                }
                cg += G;
            }
            while cg < b.classes {
                for i in 0..b.chunks {
                    gradient_strip::<1>(b, g, cg, i, grad, fresh);
                }
                cg += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Forward pass and training step of one block on `run`: the
    /// probabilities, the loss and the gradient (added to `grad0`).
    fn products(
        run: fn(Op<'_>),
        head: Head,
        b: &Block<'_>,
        y: &[f32],
        grad0: &[f32],
        fresh: bool,
    ) -> (Vec<u32>, u64, Vec<u32>) {
        let mut out = vec![0.0f32; b.rows * b.classes];
        let block = || Block { ..*b };
        run(Op::Forward {
            head,
            block: block(),
            done: &|_, _| {},
            out: &mut out,
        });
        let (mut p, mut grad, mut loss) = (vec![0.0f32; out.len()], grad0.to_vec(), 0.0f64);
        run(Op::Step {
            head,
            block: block(),
            done: &|_, _| {},
            y,
            p: &mut p,
            grad: &mut grad,
            fresh,
            loss: &mut loss,
        });
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (bits(&out), loss.to_bits(), bits(&grad))
    }

    #[test]
    fn every_path_gives_the_same_bits_on_random_shapes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1616);
        let mut runs = runnable();
        runs.push((Path::Portable, run_small));
        assert!(runs.iter().any(|(p, _)| *p == Path::Portable));
        for trial in 0..60 {
            // Odd remainders everywhere: features not a multiple of 16,
            // rows not a multiple of 3, classes not of 5 or 10.
            let features = match trial {
                0 => 785,
                1 => 1,
                _ => rng.gen_range(1..120),
            };
            // Some blocks of no rows: a part of a small batch cut by
            // features can have none.
            let rows = if trial % 10 == 3 {
                0
            } else {
                rng.gen_range(1..=BLOCK)
            };
            let classes = rng.gen_range(1..14);
            let chunks = chunks(features);
            let stride = chunks * LANES;
            let mut x = vec![0.0f32; rows * stride];
            for row in x.chunks_exact_mut(stride) {
                for v in &mut row[..features] {
                    *v = rng.gen_range(-0.5..0.5);
                }
            }
            let mut packed = vec![0.0f32; packed_len(features, classes)];
            for f in 0..features {
                for c in 0..classes {
                    packed[packed_index(f, c, classes)] = rng.gen_range(-2.0..2.0);
                }
            }
            let y: Vec<f32> = (0..rows * classes)
                .map(|i| f32::from(u8::from(i % classes == i / classes % classes)))
                .collect();
            let grad0: Vec<f32> = (0..packed.len())
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let b = Block {
                x: &x,
                rows,
                chunks,
                classes,
                packed: &packed,
            };
            let fresh = trial % 2 == 0;
            for head in [Head::Sigmoid, Head::Softmax] {
                let want = products(run_on_best, head, &b, &y, &grad0, fresh);
                for (path, run) in &runs {
                    let got = products(*run, head, &b, &y, &grad0, fresh);
                    assert!(
                        got == want,
                        "{} {head}: {rows} x {features} x {classes} differs",
                        path.name()
                    );
                }
            }
        }
    }

    fn run_on_best(op: Op<'_>) {
        run_on(Path::best(), op)
    }

    #[test]
    fn the_environment_names_a_path_this_cpu_has() {
        assert_eq!(Path::choose(None), Ok(Path::best()));
        assert_eq!(Path::choose(Some("".as_ref())), Ok(Path::best()));
        assert_eq!(Path::choose(Some("portable".as_ref())), Ok(Path::Portable));
        for path in Path::ALL {
            for name in [path.short_name(), path.name()] {
                match (Path::choose(Some(name.as_ref())), path.missing()) {
                    (Ok(chosen), None) => assert_eq!(chosen, path),
                    (Err(e), Some(lack)) => assert_eq!(
                        e,
                        format!(
                            "MNIST_KERNEL={name}: this CPU cannot run the {} path (it needs {lack})",
                            path.short_name()
                        )
                    ),
                    other => panic!("{name}: {other:?}"),
                }
            }
        }
        let e = Path::choose(Some("sse2".as_ref())).expect_err("not a path");
        assert!(
            e.starts_with("MNIST_KERNEL=sse2: no such kernel path"),
            "{e}"
        );
        assert!(e.contains("avx512, avx2, neon, portable"), "{e}");
    }
}
