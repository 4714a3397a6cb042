//! Binary cross-entropy, clipped as in the post.

use ndarray::ArrayView2;

use crate::error::{Error, Result};
use crate::sigmoid::ln;

/// Probabilities are clipped to `[PROB_CLIP, 1 - PROB_CLIP]` before the
/// logarithm, so a confident wrong answer costs at most `-ln(1e-4) ≈ 9.21`.
pub const PROB_CLIP: f64 = 1e-4;

/// `-(y ln p + (1 - y) ln(1 - p))` for one output, `p` clipped, in f64.
///
/// For the usual one-hot targets only one logarithm is taken.
#[inline]
pub(crate) fn bce_term(p: f32, y: f32) -> f64 {
    let p = f64::from(p).clamp(PROB_CLIP, 1.0 - PROB_CLIP);
    if y == 1.0 {
        -ln(p)
    } else if y == 0.0 {
        -ln(1.0 - p)
    } else {
        let y = f64::from(y);
        -(y * ln(p) + (1.0 - y) * ln(1.0 - p))
    }
}

/// The likelihood whose negative logarithm is [`bce_term`] for a target of
/// exactly 0 or 1: the clipped `p` or `1 - p`, in f64; `None` for a
/// fractional target.
#[inline]
fn likelihood(p: f32, y: f32) -> Option<f64> {
    let p = f64::from(p).clamp(PROB_CLIP, 1.0 - PROB_CLIP);
    if y == 1.0 {
        Some(p)
    } else if y == 0.0 {
        Some(1.0 - p)
    } else {
        None
    }
}

/// A sum of [`bce_term`]s taking one logarithm per many terms.
///
/// For 0/1 targets a term is `-ln(q)` with `q` in `[1e-4, 1]`, so a sum of
/// terms is `-ln` of the product of their `q`s: up to [`FACTORS`] of them
/// multiply to at least `1e-256`, far from underflow. Term `i` goes to
/// product `i % L` (`L` independent multiplications the CPU overlaps), and
/// the products' logarithms are taken when they are full and at the end.
/// Fractional targets add their term directly. The result differs from
/// adding the terms one by one only in the last bits (a product of `n`
/// factors carries a relative error of at most `n` ulps, which the logarithm
/// turns into an absolute error of about `n * 1.1e-16`).
#[derive(Debug, Clone)]
pub(crate) struct LossSum<const L: usize> {
    products: [f64; L],
    /// Terms in the products.
    terms: usize,
    sum: f64,
}

/// Factors per product before its logarithm is taken: `1e-4^64 = 1e-256`.
const FACTORS: usize = 64;

impl<const L: usize> LossSum<L> {
    pub(crate) fn new() -> Self {
        LossSum {
            products: [1.0; L],
            terms: 0,
            sum: 0.0,
        }
    }

    /// Adds the term of probability `p` and target `y`.
    #[inline]
    pub(crate) fn add(&mut self, p: f32, y: f32) {
        match likelihood(p, y) {
            Some(q) => {
                self.products[self.terms % L] *= q;
                self.terms += 1;
                if self.terms == L * FACTORS {
                    self.flush();
                }
            }
            None => self.sum += bce_term(p, y),
        }
    }

    /// Moves the products' logarithms into the sum, in order.
    fn flush(&mut self) {
        for q in &mut self.products {
            self.sum -= ln(*q);
            *q = 1.0;
        }
        self.terms = 0;
    }

    /// The sum of every term added.
    pub(crate) fn total(mut self) -> f64 {
        if self.terms > 0 {
            self.flush();
        }
        self.sum
    }
}

/// The sum of the terms of probabilities `p` against targets `y` (as long
/// as `p`), taken in order by a [`LossSum<8>`], one by one.
#[inline(always)]
pub(crate) fn block_loss(p: &[f32], y: &[f32]) -> f64 {
    let mut sum = LossSum::<8>::new();
    for (&pv, &yv) in p.iter().zip(y) {
        sum.add(pv, yv);
    }
    sum.total()
}

/// [`block_loss`] with the eight products of a [`LossSum<8>`] as eight
/// lanes, written for the compiler to vectorise with the target features
/// of the function it is inlined into: term `t` multiplies lane `t % 8`, as
/// it multiplies product `t % 8` there, with the same clipping and the same
/// `1 - p` in `f64` (lanes past the last term multiply by 1, which changes
/// no bit), and the lanes' logarithms are subtracted in lane order at the
/// end, as `total` does. `None` (the terms then go one by one) where
/// [`wide_loss`] gives `None`: a target neither 0 nor 1, a NaN probability,
/// or terms enough to fill a product.
///
/// AVX-512 keeps `wide_loss`, its intrinsics: with this function in its
/// place the post's run was 0.7% slower (`mnist train --seed 0`, two
/// interleaved series of 16 and 20 rounds, 2-core Zen 4; the same bits).
#[inline(always)]
pub(crate) fn lanes_loss(p: &[f32], y: &[f32]) -> Option<f64> {
    const LANES: usize = 8;
    /// Multiplies each lane's likelihood into its product (or 1 where the
    /// lane is not `active`); whether every active lane suits the lanes.
    #[inline(always)]
    fn multiply(
        p: &[f32; LANES],
        y: &[f32; LANES],
        active: &[bool; LANES],
        products: &mut [f64; LANES],
    ) -> bool {
        let mut suits = true;
        for l in 0..LANES {
            let (pv, yv) = (f64::from(p[l]), y[l]);
            suits &= !active[l] || ((yv == 1.0 || yv == 0.0) && !pv.is_nan());
            let clipped = pv.clamp(PROB_CLIP, 1.0 - PROB_CLIP);
            let q = if yv == 1.0 { clipped } else { 1.0 - clipped };
            products[l] *= if active[l] { q } else { 1.0 };
        }
        suits
    }
    let n = p.len().min(y.len());
    if n >= LANES * FACTORS {
        return None;
    }
    let (p, y) = (&p[..n], &y[..n]);
    let mut products = [1.0f64; LANES];
    let mut suits = true;
    let (pc, yc) = (p.chunks_exact(LANES), y.chunks_exact(LANES));
    let (p_tail, y_tail) = (pc.remainder(), yc.remainder());
    for (pl, yl) in pc.zip(yc) {
        let (Ok(pl), Ok(yl)) = (pl.try_into(), yl.try_into()) else {
            unreachable!("chunks of exactly LANES values");
        };
        suits &= multiply(pl, yl, &[true; LANES], &mut products);
    }
    if !p_tail.is_empty() {
        let (mut pl, mut yl) = ([0.0f32; LANES], [0.0f32; LANES]);
        pl[..p_tail.len()].copy_from_slice(p_tail);
        yl[..y_tail.len()].copy_from_slice(y_tail);
        let active = std::array::from_fn(|l| l < p_tail.len());
        suits &= multiply(&pl, &yl, &active, &mut products);
    }
    if !suits {
        return None;
    }
    let mut sum = 0.0f64;
    for q in products {
        sum -= ln(q);
    }
    Some(sum)
}

/// [`block_loss`] through [`lanes_loss`] compiled for AVX2, the same bits.
///
/// # Safety
/// The CPU must support avx2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn block_loss_avx2(p: &[f32], y: &[f32]) -> f64 {
    match lanes_loss(p, y) {
        Some(sum) => sum,
        None => block_loss(p, y),
    }
}

/// [`block_loss`] through [`lanes_loss`] compiled for NEON, the same bits.
///
/// # Safety
/// The CPU must support neon.
#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn block_loss_neon(p: &[f32], y: &[f32]) -> f64 {
    match lanes_loss(p, y) {
        Some(sum) => sum,
        None => block_loss(p, y),
    }
}

/// [`block_loss`], the same bits, eight terms at a time where the block
/// suits it (targets all 0 or 1, no NaN, at most one product's worth of
/// terms per lane).
///
/// # Safety
/// The CPU must support avx512f.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn block_loss_avx512(p: &[f32], y: &[f32]) -> f64 {
    match wide_loss(p, y) {
        Some(sum) => sum,
        None => block_loss(p, y),
    }
}

/// [`block_loss_avx512`]: [`block_loss`] with the eight products of a [`LossSum<8>`] in the eight
/// `f64` lanes of one register: term `t` multiplies lane `t % 8`, as it
/// multiplies product `t % 8` there, with the same clipping and the same
/// `1 - p` in `f64`, and the products' logarithms are subtracted in lane
/// order at the end, as `total` does. `None` (nothing computed) when a
/// target is neither 0 nor 1, a probability is NaN, or the terms would fill
/// a product (`LossSum` would flush midway).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn wide_loss(p: &[f32], y: &[f32]) -> Option<f64> {
    use std::arch::x86_64::{
        _mm256_loadu_ps, _mm256_maskz_loadu_ps, _mm512_cmp_pd_mask, _mm512_cvtps_pd,
        _mm512_mask_blend_pd, _mm512_mask_mul_pd, _mm512_max_pd, _mm512_min_pd, _mm512_set1_pd,
        _mm512_storeu_pd, _mm512_sub_pd, _CMP_EQ_OQ, _CMP_UNORD_Q,
    };
    const LANES: usize = 8;
    let n = p.len().min(y.len());
    if n == 0 {
        return Some(0.0);
    }
    if n >= LANES * FACTORS {
        return None;
    }
    let one = _mm512_set1_pd(1.0);
    let zero = _mm512_set1_pd(0.0);
    let lo = _mm512_set1_pd(PROB_CLIP);
    let hi = _mm512_set1_pd(1.0 - PROB_CLIP);
    let mut products = one;
    for at in (0..n).step_by(LANES) {
        let count = LANES.min(n - at);
        let active: u8 = if count == LANES {
            u8::MAX
        } else {
            (1u8 << count) - 1
        };
        // SAFETY: `at + count <= n` and both slices hold `n` values; the
        // full loads read 8 of them, the masked ones only the `count`
        // active lanes (others read as 0); all are unaligned loads.
        let (pv, yv) = unsafe {
            if count == LANES {
                (
                    _mm512_cvtps_pd(_mm256_loadu_ps(p.as_ptr().add(at))),
                    _mm512_cvtps_pd(_mm256_loadu_ps(y.as_ptr().add(at))),
                )
            } else {
                (
                    _mm512_cvtps_pd(_mm256_maskz_loadu_ps(active, p.as_ptr().add(at))),
                    _mm512_cvtps_pd(_mm256_maskz_loadu_ps(active, y.as_ptr().add(at))),
                )
            }
        };
        let is_one = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(yv, one);
        let is_zero = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(yv, zero);
        let nan = _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(pv, pv);
        if (is_one | is_zero) & active != active || nan & active != 0 {
            return None;
        }
        // No NaN: `min(max(p, lo), hi)` is `clamp(lo, hi)`.
        let clipped = _mm512_min_pd(_mm512_max_pd(pv, lo), hi);
        let q = _mm512_mask_blend_pd(is_one, _mm512_sub_pd(one, clipped), clipped);
        products = _mm512_mask_mul_pd(products, active, products, q);
    }
    let mut lanes = [0.0f64; LANES];
    // SAFETY: `lanes` holds 8 values; an unaligned store.
    unsafe { _mm512_storeu_pd(lanes.as_mut_ptr(), products) };
    let mut sum = 0.0f64;
    for q in lanes {
        sum -= ln(q);
    }
    Some(sum)
}

/// The summed cross-entropy of one row of probabilities against the one-hot
/// encoding of `label`: one logarithm for up to 64 classes.
pub(crate) fn bce_row_label(p: &[f32], label: usize) -> f64 {
    let mut sum = LossSum::<1>::new();
    for (c, &pv) in p.iter().enumerate() {
        sum.add(pv, if c == label { 1.0 } else { 0.0 });
    }
    sum.total()
}

/// Binary cross-entropy of probabilities `p` against targets `y`, both
/// `(n, classes)`: summed over the classes, averaged over the `n` rows,
/// with `p` clipped to `[1e-4, 1 - 1e-4]`:
/// `-sum(y ln p + (1 - y) ln(1 - p)) / n`, accumulated in f64.
///
/// # Errors
///
/// [`Error::DimensionMismatch`] if the shapes differ, and [`Error::ZeroSize`]
/// if there are no rows (the mean would be undefined).
///
/// # Examples
///
/// ```
/// use mnist_model::bce_loss;
/// use ndarray::array;
///
/// let p = array![[0.5f32, 0.5]];
/// let y = array![[1.0f32, 0.0]];
/// let loss = bce_loss(p.view(), y.view())?;
/// assert!((loss - 2.0 * 2f64.ln()).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn bce_loss(p: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> Result<f64> {
    if p.nrows() != y.nrows() {
        return Err(Error::DimensionMismatch {
            what: "target rows",
            expected: p.nrows(),
            found: y.nrows(),
        });
    }
    if p.ncols() != y.ncols() {
        return Err(Error::DimensionMismatch {
            what: "target columns (classes)",
            expected: p.ncols(),
            found: y.ncols(),
        });
    }
    if p.nrows() == 0 {
        return Err(Error::ZeroSize { what: "rows" });
    }
    let sum: f64 = p
        .iter()
        .zip(y.iter())
        .map(|(&pv, &yv)| bce_term(pv, yv))
        .sum();
    Ok(sum / p.nrows() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn matches_hand_computation() {
        let p = array![[0.9f32, 0.2], [0.3, 0.6]];
        let y = array![[1.0f32, 0.0], [0.0, 1.0]];
        let expected = -((0.9f32 as f64).ln()
            + (1.0 - 0.2f32 as f64).ln()
            + (1.0 - 0.3f32 as f64).ln()
            + (0.6f32 as f64).ln())
            / 2.0;
        let got = bce_loss(p.view(), y.view()).expect("same shapes");
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn clips_probabilities() {
        let p = array![[0.0f32, 1.0]];
        let y = array![[1.0f32, 0.0]];
        let got = bce_loss(p.view(), y.view()).expect("same shapes");
        assert!((got - 2.0 * -(1e-4f64).ln()).abs() < 1e-9, "{got}");
        let perfect = bce_loss(y.view(), y.view()).expect("same shapes");
        assert!((perfect - 2.0 * -(1.0 - 1e-4f64).ln()).abs() < 1e-12);
    }

    #[test]
    fn soft_targets_use_both_terms() {
        let p = array![[0.25f32]];
        let y = array![[0.5f32]];
        let expected = -(0.5 * 0.25f64.ln() + 0.5 * 0.75f64.ln());
        let got = bce_loss(p.view(), y.view()).expect("same shapes");
        assert!((got - expected).abs() < 1e-12);
        let row = bce_row_label(&[0.25, 0.5], 1);
        assert!((row - (bce_term(0.25, 0.0) + bce_term(0.5, 1.0))).abs() < 1e-15);
    }

    /// A xorshift generator from `state`: the tests' random bits.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// A value in `[0, 1)` from the top 24 of `bits`.
    fn unit(bits: u64) -> f32 {
        (bits >> 40) as f32 / (1u64 << 24) as f32
    }

    #[test]
    fn loss_sum_agrees_with_the_terms_one_by_one() {
        // Many products (flushes at 512 terms), clipped extremes, fractional
        // targets mixed in, and a partial product at the end.
        let mut bits = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut next = || unit(bits());
        let mut sum = LossSum::<8>::new();
        let mut one = LossSum::<1>::new();
        let mut exact = 0.0f64;
        for i in 0..5_000 {
            let p = match i % 97 {
                0 => 0.0,
                1 => 1.0,
                _ => next(),
            };
            let y = match i % 10 {
                3 => 1.0,
                7 if i % 3 == 0 => 0.3,
                _ => 0.0,
            };
            sum.add(p, y);
            one.add(p, y);
            exact += bce_term(p, y);
        }
        for (got, what) in [
            (sum.total(), "eight products"),
            (one.total(), "one product"),
        ] {
            assert!(
                (got - exact).abs() < 1e-12 * exact,
                "{what}: {got} vs {exact}"
            );
        }
        assert_eq!(LossSum::<8>::new().total(), 0.0);
    }

    #[test]
    fn block_loss_is_the_loss_sum_bit_for_bit() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for trial in 0..3_000usize {
            // Lengths on both sides of a full vector and of a full product.
            let n = (next() % 530) as usize;
            let p: Vec<f32> = (0..n)
                .map(|i| match (next() % 64, trial % 50 == 0 && i == n / 2) {
                    (_, true) => f32::NAN,
                    (0, _) => 0.0,
                    (1, _) => 1.0,
                    (2, _) => -0.0,
                    (3, _) => 1e-5,
                    (4, _) => 1.0 - 1e-5,
                    (5, _) => f32::MIN_POSITIVE / 4.0,
                    _ => unit(next()),
                })
                .collect();
            let y: Vec<f32> = (0..n)
                .map(|_| match next() % 10 {
                    0 if trial % 7 == 0 => 0.25,
                    1 | 2 => 1.0,
                    _ => 0.0,
                })
                .collect();
            let mut sum = LossSum::<8>::new();
            for (&pv, &yv) in p.iter().zip(&y) {
                sum.add(pv, yv);
            }
            let want = sum.total();
            let mut got = vec![block_loss(&p, &y)];
            if let Some(sum) = lanes_loss(&p, &y) {
                got.push(sum);
            }
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx512f") {
                    // SAFETY: avx512f was detected just above.
                    got.push(unsafe { block_loss_avx512(&p, &y) });
                }
                if is_x86_feature_detected!("avx2") {
                    // SAFETY: avx2 was detected just above.
                    got.push(unsafe { block_loss_avx2(&p, &y) });
                }
            }
            #[cfg(target_arch = "aarch64")]
            {
                if std::arch::is_aarch64_feature_detected!("neon") {
                    // SAFETY: neon was detected just above.
                    got.push(unsafe { block_loss_neon(&p, &y) });
                }
            }
            for got in got {
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "trial {trial}, {n} terms: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn loss_sum_propagates_nan() {
        let mut sum = LossSum::<8>::new();
        sum.add(0.5, 1.0);
        sum.add(f32::NAN, 0.0);
        assert!(sum.total().is_nan());
    }

    #[test]
    fn rejects_mismatched_or_empty() {
        let p = array![[0.5f32, 0.5]];
        let y = array![[1.0f32, 0.0, 0.0]];
        assert!(matches!(
            bce_loss(p.view(), y.view()),
            Err(Error::DimensionMismatch {
                expected: 2,
                found: 3,
                ..
            })
        ));
        let e = ndarray::Array2::<f32>::zeros((0, 2));
        assert!(matches!(
            bce_loss(e.view(), e.view()),
            Err(Error::ZeroSize { what: "rows" })
        ));
    }
}
