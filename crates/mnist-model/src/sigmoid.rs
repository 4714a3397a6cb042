//! The logistic function, computed the same way, bit for bit, on every
//! code path and every platform.
//!
//! `1 / (1 + e^-z)` is evaluated in `f64` and rounded to `f32` once:
//! `e^-|z|` by range reduction to `r = x - n ln 2` (`|r| <= ln 2 / 2`) and a
//! degree-12 Taylor polynomial (truncation error below `2e-16` relative),
//! scaled by `2^n` built from the exponent bits. Every step is an IEEE
//! operation with one rounding (fused multiply-adds included), so the result
//! depends on nothing but the input: not on the C library's `expf`, which
//! differs between systems, and not on the SIMD width, since the slice
//! version below is this same function, vectorised by the compiler. The
//! `f64` pipeline is accurate to a few `f64` ulps, so the `f32` result is
//! the correctly rounded logistic except when the exact value lies within
//! about `1e-16` (relative) of a rounding boundary.
//!
//! The losses' natural logarithm, [`ln`], is the crate's own too, for the
//! same reason: the C library's `log` is not the same function everywhere
//! (glibc on x86-64 even picks one of two versions by whether the CPU has
//! FMA), so a loss taken through it could differ in its last bits from one
//! machine to another.

// The two parts of `ln 2` are written with the digits of their classic
// published form, more than an `f64` holds.
#![allow(clippy::excessive_precision)]

/// `log2(e)`.
const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// `ln 2` in two parts: `n * LN2_HI` is exact for the `|n| < 2^11` used here.
const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
/// `1.5 * 2^52`: adding it rounds an `f64` below `2^51` in magnitude to an
/// integer (to nearest, ties to even), which then sits in the low bits.
const SHIFT: f64 = 6_755_399_441_055_744.0;
/// Below this `e^x` is under half the smallest `f32` subnormal whatever
/// follows, so `x` is clamped there (`e^-110` is still a normal `f64`).
const FLOOR: f64 = -110.0;

/// `1/k!` for `k = 0..=12`, highest first, for Horner's scheme.
const COEFFS: [f64; 13] = [
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    1.0 / 2.0,
    1.0,
    1.0,
];

/// `2^54`, which makes a subnormal `f64` normal.
const TWO_54: f64 = 18_014_398_509_481_984.0;
/// The coefficients of `ln` in `s = f / (2 + f)`: `ln((1 + s) / (1 - s)) =
/// 2s + s R(s^2)`, `R(z) ~ LG1 z + LG2 z^2 + ... + LG7 z^7`, with an error
/// below `2^-58.45` on the interval used (the classic published minimax
/// fit).
const LG1: f64 = 6.666_666_666_666_735_130e-1;
const LG2: f64 = 3.999_999_999_940_941_908e-1;
const LG3: f64 = 2.857_142_874_366_239_149e-1;
const LG4: f64 = 2.222_219_843_214_978_396e-1;
const LG5: f64 = 1.818_357_216_161_805_012e-1;
const LG6: f64 = 1.531_383_769_920_937_332e-1;
const LG7: f64 = 1.479_819_860_511_658_591e-1;

/// The natural logarithm, within one `f64` ulp, with the same bits on
/// every platform and code path: `x = 2^k m` with `m` in `[sqrt(1/2),
/// sqrt(2))`, `f = m - 1` (exact), `s = f / (2 + f)`, `ln m = f - (f^2/2 -
/// s (f^2/2 + R(s^2)))`, and `k ln 2` added in two parts; only IEEE
/// additions, multiplications and one division, each rounded once, no
/// branch (the special cases are selected). `ln 0 = -inf`, `ln inf = inf`,
/// and NaN for NaN and negative inputs.
#[inline(always)]
pub(crate) fn ln(x: f64) -> f64 {
    let subnormal = x < f64::MIN_POSITIVE;
    let y = if subnormal { x * TWO_54 } else { x };
    let bits = y.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - if subnormal { 1023 + 54 } else { 1023 };
    // `m` in `[1, 2)`, halved (exactly) at `sqrt(2)` and above.
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let halve = m >= std::f64::consts::SQRT_2;
    let (m, k) = if halve {
        (m * 0.5, exponent + 1)
    } else {
        (m, exponent)
    };
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let r = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7))) + w * (LG2 + w * (LG4 + w * LG6));
    let hfsq = 0.5 * f * f;
    let k = k as f64;
    let v = k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f);
    if x > 0.0 && x < f64::INFINITY {
        v
    } else if x == 0.0 {
        f64::NEG_INFINITY
    } else if x == f64::INFINITY {
        x
    } else {
        f64::NAN
    }
}

/// `e^x` for `x <= 0` (or NaN), with the bits promised above: values
/// below `FLOOR` give `e^FLOOR`, under half the smallest `f32` subnormal.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f64) -> f64 {
    // A comparison, not `max`: NaN must stay NaN.
    let x = if x < FLOOR { FLOOR } else { x };
    let shifted = x.mul_add(LOG2_E, SHIFT);
    let n = shifted - SHIFT;
    let r = (-n).mul_add(LN2_HI, x);
    let r = (-n).mul_add(LN2_LO, r);
    let mut p = COEFFS[0];
    for &c in &COEFFS[1..] {
        p = p.mul_add(r, c);
    }
    // `n` is in the low bits of `shifted`; `n + 1023` in [864, 1023] is the
    // biased exponent of `2^n`.
    let n_bits = shifted.to_bits().wrapping_sub(SHIFT.to_bits());
    let scale = f64::from_bits(n_bits.wrapping_add(1023) << 52);
    p * scale
}

/// The logistic function `1 / (1 + e^-z)`; `exp` is only taken of `-|z|`,
/// so nothing overflows. NaN stays NaN, `±inf` gives 1 and 0.
#[inline(always)]
pub(crate) fn sigmoid(z: f32) -> f32 {
    let z = f64::from(z);
    let e = exp_nonpositive(-z.abs());
    let numerator = if z >= 0.0 { 1.0 } else { e };
    (numerator / (1.0 + e)) as f32
}

/// [`sigmoid`] of every value, in place; inlined into the callers so that
/// it is vectorised with their target features, with the same bits.
#[inline(always)]
pub(crate) fn sigmoid_in_place(z: &mut [f32]) {
    for v in z.iter_mut() {
        *v = sigmoid(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many `f64`s lie between `a` and `b` (both positive, finite).
    fn ulps(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn ln_is_within_one_ulp_of_the_c_library_s() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut worst = 0;
        let mut check = |x: f64| {
            let (got, want) = (ln(x), x.ln());
            let d = if got == want {
                0
            } else if got.signum() == want.signum() {
                ulps(got.abs(), want.abs())
            } else {
                u64::MAX
            };
            assert!(d <= 1, "ln({x:e}) = {got:e}, the C library's {want:e}");
            worst = worst.max(d);
        };
        // Every binade, subnormals included; near 1 on both sides; the
        // softmax's sums (1 to the number of classes) densely.
        for _ in 0..200_000 {
            check(f64::from_bits(rng.gen_range(1..0x7ff0_0000_0000_0000u64)));
            check(1.0 + rng.gen_range(-1e-3..1e-3));
            check(rng.gen_range(1.0..32.0));
        }
        for x in [
            1.0,
            2.0,
            0.5,
            std::f64::consts::SQRT_2,
            f64::MIN_POSITIVE,
            f64::MAX,
            5e-324,
        ] {
            check(x);
        }
        assert_eq!(ln(1.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert_eq!(ln(-0.0), f64::NEG_INFINITY);
        assert_eq!(ln(f64::INFINITY), f64::INFINITY);
        assert!(ln(f64::NAN).is_nan() && ln(-1.0).is_nan() && ln(f64::NEG_INFINITY).is_nan());
        // Most values agree to the bit.
        assert!(worst <= 1);
    }

    /// The logistic function through the C library's `f64` `exp`, rounded
    /// once: a reference accurate to about one `f64` ulp.
    fn reference(z: f32) -> f32 {
        let z = f64::from(z);
        (if z >= 0.0 {
            1.0 / (1.0 + (-z).exp())
        } else {
            let e = z.exp();
            e / (1.0 + e)
        }) as f32
    }

    /// Every 257th `f32` bit pattern, both signs: about 16.7 million values.
    fn sweep() -> impl Iterator<Item = f32> {
        (0..=u32::MAX).step_by(257).map(f32::from_bits)
    }

    #[test]
    fn matches_the_correctly_rounded_reference() {
        let (mut checked, mut off) = (0u64, 0u64);
        for z in sweep().filter(|z| z.is_finite()) {
            let (got, want) = (sigmoid(z), reference(z));
            checked += 1;
            if got.to_bits() != want.to_bits() {
                off += 1;
                // Never more than one ulp, and only on a rounding boundary.
                assert_eq!(got.to_bits().abs_diff(want.to_bits()), 1, "{z:e}");
            }
        }
        assert!(checked > 16_000_000);
        assert!(off <= 2, "{off} of {checked} values one ulp off");
    }

    #[test]
    fn extremes() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(-0.0), 0.5);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert!(sigmoid(f32::NAN).is_nan());
        assert_eq!(sigmoid(-103.0), reference(-103.0));
        assert!(sigmoid(-103.0) > 0.0, "subnormal results survive");
        assert_eq!(sigmoid(-110.0), 0.0);
        assert_eq!(sigmoid(2.0), 0.880_797_1);
        assert_eq!(sigmoid(-20.0), 2.061_153_6e-9);
    }

    /// The slice version, compiled for each instruction set the kernels
    /// use, gives the scalar function's bits.
    #[test]
    fn every_code_path_gives_the_same_bits() {
        let values: Vec<f32> = sweep().step_by(97).chain([f32::NAN, 0.0, -0.0]).collect();
        let scalar: Vec<u32> = values.iter().map(|&z| sigmoid(z).to_bits()).collect();
        let mut portable = values.clone();
        sigmoid_in_place(&mut portable);
        assert_eq!(
            portable.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            scalar
        );
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,fma")]
            fn avx512(z: &mut [f32]) {
                sigmoid_in_place(z)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2(z: &mut [f32]) {
                sigmoid_in_place(z)
            }
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
                let mut v = values.clone();
                // SAFETY: the features were detected just above.
                unsafe { avx512(&mut v) };
                assert_eq!(v.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), scalar);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                let mut v = values.clone();
                // SAFETY: as above.
                unsafe { avx2(&mut v) };
                assert_eq!(v.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), scalar);
            }
        }
    }
}
