// Index loops over fixed 16-lane arrays are what LLVM turns into SIMD
// registers.
#![allow(clippy::needless_range_loop)]

/// How pixels become features.
///
/// Every normalization is a fixed `f32` function of the `u8` pixel value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Normalization {
    /// The post's preprocessing: `x / 255 - 0.5`, in `[-0.5, 0.5]`, computed
    /// in `f32` exactly as numpy does for a `float32` array.
    #[default]
    Centered,
    /// `x / 255`, in `[0, 1]`.
    Unit,
}

impl Normalization {
    /// The feature value of one pixel.
    pub fn apply(self, pixel: u8) -> f32 {
        let x = f32::from(pixel) / 255.0;
        match self {
            Normalization::Centered => x - 0.5,
            Normalization::Unit => x,
        }
    }
}

/// Pixels to features: a normalization and an optional bias feature.
///
/// The post uses [`Normalization::Centered`] with a bias feature: 784 pixels
/// become 785 features, the last one always 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    normalization: Normalization,
    bias: bool,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self::new(Normalization::Centered, true)
    }
}

impl Preprocess {
    /// A preprocessing step; `bias` appends a constant 1 feature.
    pub fn new(normalization: Normalization, bias: bool) -> Self {
        Self {
            normalization,
            bias,
        }
    }

    /// The normalization.
    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    /// Whether a bias feature is appended.
    pub fn bias(&self) -> bool {
        self.bias
    }

    /// Features for an image of `pixels` pixels.
    pub fn features(&self, pixels: usize) -> usize {
        pixels + usize::from(self.bias)
    }

    /// Writes the features of one image into `out`, which must hold exactly
    /// [`features`](Self::features)`(pixels.len())` values.
    ///
    /// The values are those of [`Normalization::apply`], bit for bit, on
    /// every code path.
    ///
    /// # Panics
    /// When `out` has the wrong length: a programming error, not a data one.
    pub fn apply_into(&self, pixels: &[u8], out: &mut [f32]) {
        assert_eq!(
            out.len(),
            self.features(pixels.len()),
            "feature buffer size"
        );
        self.rows_into(&[pixels], out, out.len());
    }

    /// Writes the features of `images` into `out`, one row every `stride`
    /// values: the first [`features`](Self::features) values of each row are
    /// written, the rest left as they are.
    ///
    /// # Panics
    /// When the images differ in size, `stride` is smaller than the number
    /// of features, or `out` is not `images.len() * stride` long.
    pub fn rows_into(&self, images: &[&[u8]], out: &mut [f32], stride: usize) {
        let pixels = images.first().map_or(0, |p| p.len());
        assert!(
            images.iter().all(|p| p.len() == pixels),
            "images of one size"
        );
        assert!(stride >= self.features(pixels), "row stride");
        assert_eq!(out.len(), images.len() * stride, "feature buffer size");
        let job = Rows {
            pre: self,
            images,
            out,
            stride,
        };
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
                if is_x86_feature_detected!("avx512vbmi") {
                    // SAFETY: the only requirement of a `#[target_feature]`
                    // function is that the CPU has its features, checked
                    // above.
                    return unsafe { rows_avx512_vbmi(job) };
                }
                // SAFETY: as above, avx512f and fma were detected.
                return unsafe { rows_avx512(job) };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: as above, avx2 and fma were detected at run time.
                return unsafe { rows_avx2(job) };
            }
        }
        rows_body::<Portable>(job);
    }
}

/// The arguments of [`Preprocess::rows_into`], checked.
struct Rows<'a, 'b> {
    pre: &'a Preprocess,
    images: &'a [&'b [u8]],
    out: &'a mut [f32],
    stride: usize,
}

/// `out[i] = pixels[i] / 255 + offset` for a whole image. Adding `-0.5`
/// rounds exactly as subtracting `0.5`, and adding `0.0` to a non-negative
/// quotient changes nothing.
trait Convert {
    fn convert(pixels: &[u8], out: &mut [f32], offset: f32);
}

/// The division itself, sixteen at a time, left to the compiler.
struct Portable;

impl Convert for Portable {
    #[inline(always)]
    fn convert(pixels: &[u8], out: &mut [f32], offset: f32) {
        for (p, o) in pixels.chunks(16).zip(out.chunks_mut(16)) {
            let mut v = [0.0f32; 16];
            for (d, &s) in v.iter_mut().zip(p) {
                *d = f32::from(s);
            }
            let q = v.map(|x| x / 255.0);
            for (d, s) in o.iter_mut().zip(q) {
                *d = s + offset;
            }
        }
    }
}

/// `x / 255` by Markstein's method: a multiplication by the rounded
/// reciprocal and one correction with fused multiply-adds, three cheap
/// operations instead of a slow division. For the 256 possible pixel values
/// it gives the correctly rounded quotient, that is the division's result
/// bit for bit: the test `fast_paths_equal_the_division_for_every_byte`
/// checks all of them, here and in the SIMD paths below, which compute the
/// same three operations lane by lane.
#[cfg(any(target_arch = "x86_64", test))]
#[inline(always)]
fn div255_markstein(x: f32) -> f32 {
    const R: f32 = 1.0 / 255.0;
    let q = x * R;
    let residual = (-q).mul_add(255.0, x);
    residual.mul_add(R, q)
}

/// The offset of [`Normalization::Centered`].
const CENTERED: f32 = -0.5;

/// `0x0101_0101`: a byte times this is the byte repeated four times.
const REPLICATE: u32 = 0x0101_0101;

/// `2^-32`, exact in `f32`.
const TWO_TO_MINUS_32: f32 = 1.0 / 4_294_967_296.0;

/// `x / 255 - 0.5` for a pixel, without a division: the post's centered
/// feature, bit for bit, in two floating-point operations instead of four.
///
/// `x / 255` in binary is the byte repeated forever (`0.xxxxxxxx xxxxxxxx
/// ...`), because `1 / 255 = 2^-8 + 2^-16 + ...`. The byte repeated four
/// times, `u = x * 0x0101_0101`, is that quotient's first 32 bits
/// (`x / 255 * 2^32 = u + x / 255`); setting the lowest bit keeps the
/// integer's rounding to 24 bits on the side of the infinite expansion
/// where a tie could otherwise round the other way. Converting it to `f32`
/// rounds once, scaling by `2^-32` is exact, and one fused multiply-add
/// subtracts 0.5 with one rounding, as `x / 255 - 0.5` does in `f32`. For
/// the uncentered `x / 255` the result differs at `x = 0` and `1`, which is
/// why only the centered normalization uses it. The SIMD paths compute the
/// same lane by lane (AVX2 with `u / 2`, its conversion being signed); the
/// test `fast_paths_equal_the_division_for_every_byte` checks all 256
/// bytes, here and there.
#[cfg_attr(not(test), allow(dead_code))]
fn centered_by_replication(x: u8) -> f32 {
    let u = (u32::from(x) * REPLICATE) | 1;
    (u as f32).mul_add(TWO_TO_MINUS_32, CENTERED)
}

/// How the AVX-512 path repeats each of 16 pixels' byte four times, one
/// pixel a 32-bit lane.
#[cfg(target_arch = "x86_64")]
trait Replicate {
    /// The 16 bytes at `p`, each repeated in its lane.
    ///
    /// # Safety
    /// `p` must hold 16 bytes, and the CPU must have the implementation's
    /// features (enabled in the caller).
    unsafe fn replicate(p: &[u8]) -> std::arch::x86_64::__m512i;
}

/// Widen each byte to 32 bits and multiply by [`REPLICATE`] (AVX-512F).
#[cfg(target_arch = "x86_64")]
struct ByMultiply;

#[cfg(target_arch = "x86_64")]
impl Replicate for ByMultiply {
    #[inline(always)]
    unsafe fn replicate(p: &[u8]) -> std::arch::x86_64::__m512i {
        use std::arch::x86_64::{
            _mm512_cvtepu8_epi32, _mm512_mullo_epi32, _mm512_set1_epi32, _mm_loadu_si128,
        };
        // SAFETY: `p` holds 16 bytes and the CPU has avx512f (the caller's
        // contract); the load is an unaligned one.
        unsafe {
            let b = _mm512_cvtepu8_epi32(_mm_loadu_si128(p.as_ptr().cast()));
            _mm512_mullo_epi32(b, _mm512_set1_epi32(REPLICATE as i32))
        }
    }
}

/// One byte permutation copying byte `k` into the four bytes of lane `k`
/// (AVX-512 VBMI): cheaper than the 32-bit multiplication.
#[cfg(target_arch = "x86_64")]
struct ByPermute;

#[cfg(target_arch = "x86_64")]
impl Replicate for ByPermute {
    #[inline(always)]
    unsafe fn replicate(p: &[u8]) -> std::arch::x86_64::__m512i {
        use std::arch::x86_64::{
            _mm512_castsi128_si512, _mm512_loadu_si512, _mm512_permutexvar_epi8, _mm_loadu_si128,
        };
        /// Byte `i` of the result is byte `i / 4` of the source.
        const INDEX: [u8; 64] = {
            let mut index = [0u8; 64];
            let mut i = 0;
            while i < 64 {
                index[i] = (i / 4) as u8;
                i += 1;
            }
            index
        };
        // SAFETY: `p` holds 16 bytes and the CPU has avx512f and avx512vbmi
        // (the caller's contract); `INDEX` holds 64 bytes; both loads are
        // unaligned ones.
        unsafe {
            let index = _mm512_loadu_si512(INDEX.as_ptr().cast());
            let bytes = _mm512_castsi128_si512(_mm_loadu_si128(p.as_ptr().cast()));
            _mm512_permutexvar_epi8(index, bytes)
        }
    }
}

/// Sixteen pixels a step with AVX-512: widen, convert, divide (Markstein),
/// add the offset; the centered normalization by byte replication
/// ([`centered_by_replication`]), the bytes repeated by `R`.
#[cfg(target_arch = "x86_64")]
struct Avx512<R>(std::marker::PhantomData<R>);

#[cfg(target_arch = "x86_64")]
impl<R: Replicate> Convert for Avx512<R> {
    #[inline(always)]
    fn convert(pixels: &[u8], out: &mut [f32], offset: f32) {
        use std::arch::x86_64::{
            _mm512_add_ps, _mm512_cvtepi32_ps, _mm512_cvtepu32_ps, _mm512_cvtepu8_epi32,
            _mm512_fmadd_ps, _mm512_fnmadd_ps, _mm512_mul_ps, _mm512_or_si512, _mm512_set1_epi32,
            _mm512_set1_ps, _mm512_storeu_ps, _mm_loadu_si128,
        };
        let mut p16 = pixels.chunks_exact(16);
        let mut o16 = out.chunks_exact_mut(16);
        let centered = offset == CENTERED;
        for (p, o) in (&mut p16).zip(&mut o16) {
            // SAFETY: only called from `rows_avx512` and `rows_avx512_vbmi`,
            // compiled with (and dispatched on) avx512f and fma, and for
            // `ByPermute` avx512vbmi too; `p` holds 16 bytes and `o` 16
            // floats (`chunks_exact`), and these loads and stores are
            // unaligned ones.
            unsafe {
                if centered {
                    let u = _mm512_or_si512(R::replicate(p), _mm512_set1_epi32(1));
                    let y = _mm512_fmadd_ps(
                        _mm512_cvtepu32_ps(u),
                        _mm512_set1_ps(TWO_TO_MINUS_32),
                        _mm512_set1_ps(CENTERED),
                    );
                    _mm512_storeu_ps(o.as_mut_ptr(), y);
                    continue;
                }
                let r = _mm512_set1_ps(1.0 / 255.0);
                let x =
                    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.as_ptr().cast())));
                let q = _mm512_mul_ps(x, r);
                let residual = _mm512_fnmadd_ps(q, _mm512_set1_ps(255.0), x);
                let q = _mm512_fmadd_ps(residual, r, q);
                _mm512_storeu_ps(o.as_mut_ptr(), _mm512_add_ps(q, _mm512_set1_ps(offset)));
            }
        }
        for (o, &p) in o16.into_remainder().iter_mut().zip(p16.remainder()) {
            *o = div255_markstein(f32::from(p)) + offset;
        }
    }
}

/// Eight pixels a step with AVX2, as [`Avx512`].
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Convert for Avx2 {
    #[inline(always)]
    fn convert(pixels: &[u8], out: &mut [f32], offset: f32) {
        use std::arch::x86_64::{
            _mm256_add_ps, _mm256_cvtepi32_ps, _mm256_cvtepu8_epi32, _mm256_fmadd_ps,
            _mm256_fnmadd_ps, _mm256_mul_ps, _mm256_mullo_epi32, _mm256_or_si256,
            _mm256_set1_epi32, _mm256_set1_ps, _mm256_srli_epi32, _mm256_storeu_ps,
            _mm_loadl_epi64,
        };
        let mut p8 = pixels.chunks_exact(8);
        let mut o8 = out.chunks_exact_mut(8);
        let centered = offset == CENTERED;
        for (p, o) in (&mut p8).zip(&mut o8) {
            // SAFETY: only called from `rows_avx2`, compiled with (and
            // dispatched on) avx2 and fma; `p` holds 8 bytes and `o` 8
            // floats (`chunks_exact`), and these load and store are
            // unaligned ones.
            unsafe {
                if centered {
                    // See `centered_by_replication`: AVX2 converts signed
                    // integers only, so the 32-bit pattern is halved first.
                    let b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.as_ptr().cast()));
                    let u = _mm256_or_si256(
                        _mm256_srli_epi32::<1>(_mm256_mullo_epi32(
                            b,
                            _mm256_set1_epi32(REPLICATE as i32),
                        )),
                        _mm256_set1_epi32(1),
                    );
                    let y = _mm256_fmadd_ps(
                        _mm256_cvtepi32_ps(u),
                        _mm256_set1_ps(2.0 * TWO_TO_MINUS_32),
                        _mm256_set1_ps(CENTERED),
                    );
                    _mm256_storeu_ps(o.as_mut_ptr(), y);
                    continue;
                }
                let r = _mm256_set1_ps(1.0 / 255.0);
                let x =
                    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.as_ptr().cast())));
                let q = _mm256_mul_ps(x, r);
                let residual = _mm256_fnmadd_ps(q, _mm256_set1_ps(255.0), x);
                let q = _mm256_fmadd_ps(residual, r, q);
                _mm256_storeu_ps(o.as_mut_ptr(), _mm256_add_ps(q, _mm256_set1_ps(offset)));
            }
        }
        for (o, &p) in o8.into_remainder().iter_mut().zip(p8.remainder()) {
            *o = div255_markstein(f32::from(p)) + offset;
        }
    }
}

/// Asks the CPU to bring `bytes` into its second-level cache, without
/// waiting (`prefetcht1`; elsewhere nothing). Fetching into L1 (`t0`)
/// measured slower: an image is 13 lines, a block's worth is hundreds, and
/// the instructions then stall on L1's few outstanding-miss slots; the
/// block's rows are read once from L2 anyway, at little cost.
pub(crate) fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        // The last line too, when the slice does not start on a line.
        for at in (0..bytes.len())
            .step_by(64)
            .chain(bytes.len().checked_sub(1))
        {
            // SAFETY: a prefetch is a hint that never faults, and the pointer
            // is inside the slice anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(bytes.as_ptr().wrapping_add(at).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn rows_avx512(job: Rows<'_, '_>) {
    rows_body::<Avx512<ByMultiply>>(job);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vbmi,fma")]
fn rows_avx512_vbmi(job: Rows<'_, '_>) {
    rows_body::<Avx512<ByPermute>>(job);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn rows_avx2(job: Rows<'_, '_>) {
    rows_body::<Avx2>(job);
}

/// The body shared by every instruction set; inlined into each entry point
/// so it is compiled with that entry point's target features.
#[inline(always)]
fn rows_body<C: Convert>(job: Rows<'_, '_>) {
    let Rows {
        pre,
        images,
        out,
        stride,
    } = job;
    for (pixels, row) in images.iter().zip(out.chunks_exact_mut(stride)) {
        let (body, rest) = row.split_at_mut(pixels.len());
        match pre.normalization {
            Normalization::Centered => C::convert(pixels, body, CENTERED),
            Normalization::Unit => C::convert(pixels, body, 0.0),
        }
        if pre.bias {
            if let Some(b) = rest.first_mut() {
                *b = 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte through `rows_into` with `pre`, as one image.
    fn every_byte(pre: &Preprocess) -> Vec<f32> {
        let pixels: Vec<u8> = (0..=255).collect();
        let mut out = vec![0.0; 256];
        pre.rows_into(&[&pixels], &mut out, 256);
        out
    }

    #[test]
    fn fast_paths_equal_the_division_for_every_byte() {
        let centered = every_byte(&Preprocess::new(Normalization::Centered, false));
        let unit = every_byte(&Preprocess::new(Normalization::Unit, false));
        for p in 0..=255u8 {
            let x = f32::from(p);
            let (i, exact) = (usize::from(p), x / 255.0);
            assert_eq!(div255_markstein(x).to_bits(), exact.to_bits(), "{p}");
            assert_eq!(
                centered_by_replication(p).to_bits(),
                (exact - 0.5).to_bits(),
                "{p}"
            );
            assert_eq!(unit[i].to_bits(), exact.to_bits(), "{p}");
            assert_eq!(unit[i].to_bits(), Normalization::Unit.apply(p).to_bits());
            assert_eq!(
                centered[i].to_bits(),
                Normalization::Centered.apply(p).to_bits()
            );
        }
        // Whatever this CPU dispatches to, the other paths too.
        let pixels: Vec<u8> = (0..=255).chain(0..=7).collect();
        let mut exact = vec![0.0; pixels.len()];
        Portable::convert(&pixels, &mut exact, -0.5);
        #[cfg(target_arch = "x86_64")]
        {
            let mut fast = vec![0.0; pixels.len()];
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
                // SAFETY: the features were detected just above.
                unsafe { avx512_convert(&pixels, &mut fast, -0.5) };
                assert_eq!(fast, exact);
                if is_x86_feature_detected!("avx512vbmi") {
                    // SAFETY: as above, and avx512vbmi was detected too.
                    unsafe { avx512_vbmi_convert(&pixels, &mut fast, -0.5) };
                    assert_eq!(fast, exact);
                }
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: the features were detected just above.
                unsafe { avx2_convert(&pixels, &mut fast, -0.5) };
                assert_eq!(fast, exact);
            }
        }
        for (p, v) in pixels.iter().zip(&exact) {
            assert_eq!(v.to_bits(), Normalization::Centered.apply(*p).to_bits());
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    fn avx512_convert(pixels: &[u8], out: &mut [f32], offset: f32) {
        Avx512::<ByMultiply>::convert(pixels, out, offset);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vbmi,fma")]
    fn avx512_vbmi_convert(pixels: &[u8], out: &mut [f32], offset: f32) {
        Avx512::<ByPermute>::convert(pixels, out, offset);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn avx2_convert(pixels: &[u8], out: &mut [f32], offset: f32) {
        Avx2::convert(pixels, out, offset);
    }

    #[test]
    fn dispatched_rows_equal_apply_bit_for_bit() {
        let image: Vec<u8> = (0..784).map(|i| (i * 7 % 256) as u8).collect();
        let other: Vec<u8> = image.iter().rev().copied().collect();
        for (norm, bias) in [
            (Normalization::Centered, true),
            (Normalization::Unit, false),
        ] {
            let pre = Preprocess::new(norm, bias);
            let f = pre.features(784);
            let stride = 800;
            let mut out = vec![7.0f32; 2 * stride];
            pre.rows_into(&[&image, &other], &mut out, stride);
            for (row, src) in out.chunks_exact(stride).zip([&image, &other]) {
                for (o, &p) in row.iter().zip(src.iter()) {
                    assert_eq!(o.to_bits(), norm.apply(p).to_bits());
                }
                if bias {
                    assert_eq!(row[784], 1.0);
                }
                assert!(row[f..].iter().all(|&v| v == 7.0), "padding untouched");
            }
        }
    }
}
