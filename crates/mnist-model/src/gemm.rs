//! Register-blocked matrix products for every model's layers, with
//! AVX-512, AVX2 and NEON paths chosen at run time and an exact portable
//! fallback.
//!
//! A block of `R` rows by `V` vectors of the result stays in registers
//! while the inner index runs, broadcasting the left-hand side's values in
//! place (any strides, so a transposed view costs nothing). A ragged last
//! block of columns is masked. The right-hand side is read in place when
//! it is small (few columns: 10 classes, 16 or 32 filters; or few inner
//! terms: 25 for the first convolution), where copying would cost more
//! than it saves. A large one (the MLP's 785 x 256 layer) is copied a
//! chunk of 32 KiB at a time into a contiguous buffer that every block of
//! rows then reads from the L1 cache.
//!
//! Each element of the result is one chain of fused multiply-adds over
//! the inner index in order, starting from zero, whichever path, block,
//! thread or part computes it: the same inputs give the same bits on every
//! CPU. The portable path is that chain written with [`f32::mul_add`]; on a
//! CPU without FMA instructions it costs a call to the C library's `fmaf`
//! for every multiply-add, slow but exact.
//!
//! Single-thread minimum times of the MLP's two large products (64 rows:
//! `x W1`, 64 x 785 times 785 x 256, and `x^T dh`, 785 x 64 times
//! 64 x 256; 25.7 MFLOP each), AMD EPYC (Zen 4, AVX-512), minimum of 2,000
//! calls each, measured for the 6 x 64 block this module has:
//!
//! | product | `x W1` | `x^T dh` |
//! | --- | --- | --- |
//! | `matrixmultiply` 0.3 (ndarray's) | 265 us, 97 GFLOP/s | 236 us, 109 GFLOP/s |
//! | `gemm` 0.19 (crates.io, `x86-v4`) | 248 us, 104 GFLOP/s | 240 us, 107 GFLOP/s |
//! | the AVX-512 kernel here | 219 us, 118 GFLOP/s | 222 us, 116 GFLOP/s |
//!
//! Neither crate promises an order of summation, so neither could give the
//! same bits on every CPU.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// Which instructions a product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// 16 lanes, 32 registers.
    Avx512,
    /// 8 lanes and FMA, 16 registers.
    Avx2,
    /// 4 lanes, 32 registers (aarch64).
    Neon,
    /// One element at a time, [`f32::mul_add`].
    Portable,
}

impl Isa {
    /// The path of this process: the crate's kernel path (which honours
    /// `MNIST_KERNEL`).
    pub(crate) fn current() -> Self {
        match crate::kernel::path() {
            crate::kernel::Path::Avx512 => Self::Avx512,
            crate::kernel::Path::Avx2 => Self::Avx2,
            crate::kernel::Path::Neon => Self::Neon,
            crate::kernel::Path::Portable => Self::Portable,
        }
    }

    /// Every path this CPU can run.
    #[cfg(test)]
    pub(crate) fn runnable() -> Vec<Self> {
        [Self::Avx512, Self::Avx2, Self::Neon, Self::Portable]
            .into_iter()
            .filter(|isa| isa.available())
            .collect()
    }

    fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "aarch64")]
            Self::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            Self::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// `c = a b` on the calling thread, on this process's path.
pub(crate) fn product(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, c: ArrayViewMut2<'_, f32>) {
    product_on(Isa::current(), a, b, c);
}

/// `c = a b` on the calling thread, on `isa` when the CPU has it, else on
/// the portable chain: the same bits either way. A `b` whose rows are not
/// contiguous (a transposed view) is copied first, and `c` is written
/// through a copy when its rows are not; so every shape takes the kernels.
///
/// # Panics
/// When the shapes do not match (a bug of the caller).
pub(crate) fn product_on(
    isa: Isa,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
) {
    let ((m, k), n) = (a.dim(), b.ncols());
    assert!(
        b.nrows() == k && c.dim() == (m, n),
        "product of {m}x{k} and {}x{n} into {:?}",
        b.nrows(),
        c.dim()
    );
    if isa == Isa::Portable || !isa.available() || m == 0 || n == 0 {
        return chain(a, b, c);
    }
    let owned;
    let b = if b.strides()[1] == 1 {
        b.view()
    } else {
        owned = b.as_standard_layout().into_owned();
        owned.view()
    };
    if c.strides()[1] != 1 {
        let mut out = ndarray::Array2::zeros((m, n));
        product_on(isa, a, b.view(), out.view_mut());
        c.assign(&out);
        return;
    }
    // Other architectures have no kernels here: their only path is the
    // portable one, taken above.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if let Some(mats) = simd::Mats::new(&a, &b.view(), &mut c) {
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F (`available`), and `Mats::new`
            // checked that every element the kernel touches lies in the
            // views (see there); `c` is borrowed mutably for the call.
            Isa::Avx512 => return unsafe { simd::avx512::kernel(&mats) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, with AVX2 and FMA.
            Isa::Avx2 => return unsafe { simd::avx2::kernel(&mats) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: as above, with NEON.
            Isa::Neon => return unsafe { simd::neon::kernel(&mats) },
            _ => {}
        }
    }
    chain(a, b.view(), c)
}

/// The portable path: for each element, a chain of [`f32::mul_add`] over
/// the inner index in order, from zero, the chain every kernel computes.
fn chain(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, mut c: ArrayViewMut2<'_, f32>) {
    c.fill(0.0);
    Zip::from(c.rows_mut())
        .and(a.rows())
        .for_each(|mut c_row, a_row| {
            for (&aip, b_row) in a_row.iter().zip(b.rows()) {
                Zip::from(&mut c_row)
                    .and(&b_row)
                    .for_each(|acc, &bpj| *acc = aip.mul_add(bpj, *acc));
            }
        });
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod simd {
    use ndarray::{ArrayView2, ArrayViewMut2};

    /// The operands of `c = a b` as pointers and strides in elements.
    pub(super) struct Mats {
        pub(super) m: usize,
        pub(super) k: usize,
        pub(super) n: usize,
        pub(super) a: *const f32,
        /// Row and column strides of `a`.
        pub(super) rsa: usize,
        pub(super) csa: usize,
        /// `b`, rows `ldb` apart, columns contiguous.
        pub(super) b: *const f32,
        pub(super) ldb: usize,
        /// `c`, rows `ldc` apart, columns contiguous.
        pub(super) c: *mut f32,
        pub(super) ldc: usize,
    }

    fn stride(s: isize) -> Option<usize> {
        usize::try_from(s).ok()
    }

    impl Mats {
        /// The operands when the kernels take them: matching shapes, no
        /// empty dimension, no negative stride, and the columns of `b`
        /// and `c` contiguous. Then element `(i, p)` of `a` is at
        /// `a + i rsa + p csa` for `i < m`, `p < k`, `(p, j)` of `b` at
        /// `b + p ldb + j` and `(i, j)` of `c` at `c + i ldc + j` for
        /// `j < n`, all inside the views.
        pub(super) fn new(
            a: &ArrayView2<'_, f32>,
            b: &ArrayView2<'_, f32>,
            c: &mut ArrayViewMut2<'_, f32>,
        ) -> Option<Self> {
            let ((m, k), n) = (a.dim(), b.ncols());
            if b.nrows() != k || c.dim() != (m, n) || m == 0 || k == 0 || n < 2 {
                return None;
            }
            let (sa, sb) = (a.strides(), b.strides());
            let (ldc, csc) = (c.strides()[0], c.strides()[1]);
            if sb[1] != 1 || csc != 1 {
                return None;
            }
            Some(Self {
                m,
                k,
                n,
                a: a.as_ptr(),
                rsa: stride(sa[0])?,
                csa: stride(sa[1])?,
                b: b.as_ptr(),
                ldb: stride(sb[0])?,
                c: c.as_mut_ptr(),
                ldc: stride(ldc)?,
            })
        }
    }

    /// Floats of `b` in one chunk of a panel (32 KiB): as many inner terms
    /// as fit, 128 for the AVX-512 path's 64 columns, 512 for the AVX2
    /// and NEON paths' 16.
    ///
    /// Read in place, the 256-column rows of `b`, 1 KiB apart, fall into
    /// a quarter of the L1 cache's sets and evict each other even when
    /// the panel would fit. `cargo bench -p mnist-model --bench mlp --
    /// mlp_forward` (one part's forward pass, 64 rows, nearly all of it
    /// `x W1`), Intel Xeon (family 6, model 167, 48 KiB L1 a core; one
    /// core's FMA peak 107 G multiply-adds a second with AVX-512, 57 with
    /// AVX2): 58.8 G multiply-adds a second with `b` read in place, 67.7
    /// in chunks (with `MNIST_KERNEL=avx2`: 39.9 and 44.3), one build
    /// against the other. In a timing loop over the product alone, chunks
    /// of 32 and of 256 inner terms were slower than 32 KiB's on the
    /// AVX-512 path.
    const CHUNK: usize = 8192;

    /// A chunk of `b`, packed for a panel.
    #[repr(C, align(64))]
    struct Packed([f32; CHUNK]);

    /// One chunk of the inner index of a panel: `a` from the chunk's
    /// first term, `b` from its first row at the panel's first column,
    /// rows `ldb` apart.
    struct Chunk {
        a: *const f32,
        b: *const f32,
        ldb: usize,
        k: usize,
        /// Whether this is the first chunk (the sums start from zero, not
        /// from `c`).
        first: bool,
    }

    /// One kernel per instruction set, of the same shape: panels of
    /// columns (`V` vectors wide, the last one masked when the columns run
    /// out), each cut into blocks of `R` rows, then 4, then 1 for the
    /// rows left over.
    macro_rules! kernels {
        (
            $feature:literal, $lanes:expr, $vec:ty, $mask:ty,
            zero: $zero:expr,
            mask: $mk:expr,
            load: |$lp:ident, $lk:ident| $load:expr,
            broadcast: $bc:path,
            fma: $fma:path,
            store: |$sp:ident, $sk:ident, $sv:ident| $store:expr,
            panels: [$(($cols:expr, $r:literal, $v:literal)),*],
            tail: ($tr:literal),
        ) => {
            use super::{Chunk, Mats, Packed, CHUNK};

            /// `c = a b`.
            ///
            /// # Safety
            /// The CPU has the module's instructions, and `m` is as
            /// [`Mats::new`] makes it.
            #[target_feature(enable = $feature)]
            pub(in super::super) unsafe fn kernel(m: &Mats) {
                let mut j = 0;
                while j < m.n {
                    let left = m.n - j;
                    $(
                        if left >= $cols {
                            // SAFETY: columns j..j + $cols are within n.
                            unsafe { panel::<$r, $v>(m, j, $mk($lanes)) };
                            j += $cols;
                            continue;
                        }
                    )*
                    // The panels above leave less than one vector.
                    debug_assert!(left <= $lanes, "{left} columns left for one vector");
                    // SAFETY: the masked vector covers columns j..n only.
                    unsafe { panel::<$tr, 1>(m, j, $mk(left)) };
                    j = m.n;
                }
            }

            /// Columns `j..j + lanes V` (the last vector masked by `mask`)
            /// of every row.
            ///
            /// When more than one block of rows reads `b` and the part of
            /// it the panel spans is larger than 16 KiB, `b` goes through
            /// a contiguous buffer, [`CHUNK`] floats of it at a time, that
            /// stays in the L1 cache while every block runs over it (see
            /// there). Otherwise `b` is read in place, in one chunk.
            ///
            /// # Safety
            /// As [`kernel`], and those columns within `n` where `mask`
            /// is set.
            #[target_feature(enable = $feature)]
            unsafe fn panel<const R: usize, const V: usize>(m: &Mats, j: usize, mask: $mask) {
                let all = $mk($lanes);
                // At most 64 columns (4 vectors of 16 lanes): at least
                // 128 inner terms a chunk.
                let width = $lanes * V;
                let pack = m.m > R && m.k * m.ldb > CHUNK / 2;
                let mut buf = std::mem::MaybeUninit::<Packed>::uninit();
                let packed = buf.as_mut_ptr().cast::<f32>();
                let mut p0 = 0;
                while p0 < m.k {
                    let k = if pack { (CHUNK / width).min(m.k - p0) } else { m.k };
                    // SAFETY: rows p0..p0 + k of `b` are within its k rows,
                    // and its columns j.. within n where the lanes are
                    // masked in; the buffer holds k <= CHUNK / width rows
                    // of `width` columns, every one written (in full)
                    // before the blocks read it.
                    let chunk = unsafe {
                        let a = m.a.add(p0 * m.csa);
                        let b = m.b.add(p0 * m.ldb + j);
                        if pack {
                            for p in 0..k {
                                for v in 0..V {
                                    let $lk = if v + 1 == V { mask } else { all };
                                    let $lp = b.add(p * m.ldb + $lanes * v);
                                    let $sv = $load;
                                    let $sk = all;
                                    let $sp = packed.add(p * width + $lanes * v);
                                    $store;
                                }
                            }
                            Chunk { a, b: packed.cast_const(), ldb: width, k, first: p0 == 0 }
                        } else {
                            Chunk { a, b, ldb: m.ldb, k, first: p0 == 0 }
                        }
                    };
                    let mut i = 0;
                    while i + R <= m.m {
                        // SAFETY: rows i..i + R are within m.
                        unsafe { block::<R, V>(m, &chunk, i, j, mask) };
                        i += R;
                    }
                    while i + 4 <= m.m {
                        // SAFETY: rows i..i + 4 are within m.
                        unsafe { block::<4, V>(m, &chunk, i, j, mask) };
                        i += 4;
                    }
                    while i < m.m {
                        // SAFETY: row i is within m.
                        unsafe { block::<1, V>(m, &chunk, i, j, mask) };
                        i += 1;
                    }
                    p0 += k;
                }
            }

            /// Rows `i..i + R`, columns as [`panel`]'s, over one chunk
            /// of the inner index: each element one chain of fused
            /// multiply-adds over `p` in order, from zero in the first
            /// chunk and from the value the last chunk left in `c` after.
            ///
            /// # Safety
            /// As [`panel`], rows `i..i + R` within `m`, and `s` as
            /// [`panel`] makes it.
            #[target_feature(enable = $feature)]
            #[inline]
            unsafe fn block<const R: usize, const V: usize>(
                m: &Mats,
                s: &Chunk,
                i: usize,
                j: usize,
                mask: $mask,
            ) {
                let all = $mk($lanes);
                let mut acc: [[$vec; V]; R] = [[$zero; V]; R];
                // SAFETY (this whole body): every offset below is that of
                // an element (i + r, p) of `a` (from the chunk's first
                // term), (p, lanes v + lane) of the chunk's `b` or
                // (i + r, j + ...) of `c` with r < R, p < the chunk's k,
                // and the lanes masked to the columns within n;
                // `Mats::new` and `panel` put all of them inside the views
                // and the buffer.
                unsafe {
                    if !s.first {
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let cp = m.c.add((i + r) * m.ldc + j);
                            for (v, acc) in acc.iter_mut().enumerate() {
                                let $lk = if v + 1 == V { mask } else { all };
                                let $lp = cp.add($lanes * v).cast_const();
                                *acc = $load;
                            }
                        }
                    }
                    let a = s.a.add(i * m.rsa);
                    for p in 0..s.k {
                        let bp = s.b.add(p * s.ldb);
                        let mut bv: [$vec; V] = [$zero; V];
                        for (v, bv) in bv.iter_mut().enumerate() {
                            let $lk = if v + 1 == V { mask } else { all };
                            let $lp = bp.add($lanes * v);
                            *bv = $load;
                        }
                        let ap = a.add(p * m.csa);
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let av = $bc(*ap.add(r * m.rsa));
                            for (acc, &bv) in acc.iter_mut().zip(&bv) {
                                *acc = $fma(av, bv, *acc);
                            }
                        }
                    }
                    for (r, acc) in acc.iter().enumerate() {
                        let cp = m.c.add((i + r) * m.ldc + j);
                        for (v, &acc) in acc.iter().enumerate() {
                            let $sk = if v + 1 == V { mask } else { all };
                            let $sp = cp.add($lanes * v);
                            let $sv = acc;
                            $store;
                        }
                    }
                }
            }
        };
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) mod avx512 {
        use std::arch::x86_64::{
            __m512, __mmask16, _mm512_fmadd_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
            _mm512_set1_ps, _mm512_setzero_ps,
        };

        /// The first `n` (at most 16) lanes.
        #[target_feature(enable = "avx512f")]
        #[inline]
        fn mask(n: usize) -> __mmask16 {
            if n >= 16 {
                0xffff
            } else {
                ((1u32 << n) - 1) as __mmask16
            }
        }

        kernels! {
            "avx512f", 16, __m512, __mmask16,
            zero: _mm512_setzero_ps(),
            mask: mask,
            load: |p, k| _mm512_maskz_loadu_ps(k, p),
            broadcast: _mm512_set1_ps,
            fma: _mm512_fmadd_ps,
            store: |p, k, v| _mm512_mask_storeu_ps(p, k, v),
            panels: [(64, 6, 4), (32, 12, 2), (16, 12, 1)],
            tail: (12),
        }
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) mod avx2 {
        use std::arch::x86_64::{
            __m256, __m256i, _mm256_cmpgt_epi32, _mm256_fmadd_ps, _mm256_maskload_ps,
            _mm256_maskstore_ps, _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32,
            _mm256_setzero_ps,
        };

        /// All ones in the first `n` (at most 8) lanes.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn mask(n: usize) -> __m256i {
            let n = n.min(8) as i32;
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }

        kernels! {
            "avx2,fma", 8, __m256, __m256i,
            zero: _mm256_setzero_ps(),
            mask: mask,
            load: |p, k| _mm256_maskload_ps(p, k),
            broadcast: _mm256_set1_ps,
            fma: _mm256_fmadd_ps,
            store: |p, k, v| _mm256_maskstore_ps(p, k, v),
            panels: [(16, 6, 2), (8, 8, 1)],
            tail: (8),
        }
    }

    #[cfg(target_arch = "aarch64")]
    pub(super) mod neon {
        use std::arch::aarch64::{float32x4_t, vdupq_n_f32, vfmaq_f32, vld1q_f32, vst1q_f32};

        /// The number of lanes to load and store, at most 4: NEON has no
        /// masked loads, so a ragged vector goes through a copy.
        #[inline]
        fn mask(n: usize) -> usize {
            n.min(4)
        }

        /// `n` lanes from `p`, the rest zero.
        ///
        /// # Safety
        /// `p..p + n` is readable.
        #[target_feature(enable = "neon")]
        #[inline]
        unsafe fn load(p: *const f32, n: usize) -> float32x4_t {
            // SAFETY: per the contract, for `n` lanes.
            unsafe {
                if n == 4 {
                    return vld1q_f32(p);
                }
                let mut lanes = [0.0f32; 4];
                std::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), n);
                vld1q_f32(lanes.as_ptr())
            }
        }

        /// The first `n` lanes of `v` to `p`.
        ///
        /// # Safety
        /// `p..p + n` is writable.
        #[target_feature(enable = "neon")]
        #[inline]
        unsafe fn store(p: *mut f32, n: usize, v: float32x4_t) {
            // SAFETY: per the contract, for `n` lanes.
            unsafe {
                if n == 4 {
                    return vst1q_f32(p, v);
                }
                let mut lanes = [0.0f32; 4];
                vst1q_f32(lanes.as_mut_ptr(), v);
                std::ptr::copy_nonoverlapping(lanes.as_ptr(), p, n);
            }
        }

        /// `acc + a b`, fused (NEON's argument order: accumulator first).
        #[target_feature(enable = "neon")]
        #[inline]
        fn fma(a: float32x4_t, b: float32x4_t, acc: float32x4_t) -> float32x4_t {
            vfmaq_f32(acc, a, b)
        }

        kernels! {
            "neon", 4, float32x4_t, usize,
            zero: vdupq_n_f32(0.0),
            mask: mask,
            load: |p, k| load(p, k),
            broadcast: vdupq_n_f32,
            fma: fma,
            store: |p, k, v| store(p, k, v),
            panels: [(16, 6, 4), (8, 8, 2), (4, 8, 1)],
            tail: (8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Shapes every panel and leftover block takes, plain and transposed,
    /// on every path, against a product in f64.
    #[test]
    fn products_match_a_plain_one_on_every_path() {
        for (m, k, n) in [
            (13, 37, 128),
            (23, 600, 90),
            (6, 1, 64),
            (1, 785, 64),
            (29, 25, 16),
            (17, 400, 32),
            (25, 50, 16),
            (19, 32, 400),
            (5, 7, 10),
            (3, 4, 3),
            (8, 3, 1),
        ] {
            let a = Array2::from_shape_fn((m, k), |(i, p)| ((i * 31 + p * 17) % 23) as f32 - 11.0);
            let b = Array2::from_shape_fn((k, n), |(p, j)| ((p * 7 + j * 13) % 19) as f32 / 19.0);
            let at = a.t().as_standard_layout().into_owned();
            let want = Array2::from_shape_fn((m, n), |(i, j)| {
                (0..k)
                    .map(|p| f64::from(a[[i, p]]) * f64::from(b[[p, j]]))
                    .sum::<f64>()
            });
            for isa in Isa::runnable() {
                for a in [a.view(), at.t()] {
                    let mut c = Array2::from_elem((m, n), f32::NAN);
                    product_on(isa, a, b.view(), c.view_mut());
                    ndarray::Zip::from(&c).and(&want).for_each(|&c, &w| {
                        assert!(
                            (f64::from(c) - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "{isa:?} {m}x{k}x{n}: {c} vs {w}"
                        );
                    });
                }
            }
        }
    }

    /// Every path gives the portable chain's bits, on shapes that take
    /// every panel, leftover block and fallback: one column, a transposed
    /// `b`, a `c` with strided columns. The values are random, so the
    /// order of the additions shows in the bits.
    #[test]
    fn every_path_gives_the_portable_chains_bits() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (m, k, n) in [
            (13, 37, 128),
            (64, 785, 256),
            (23, 600, 90),
            (7, 785, 10),
            (29, 25, 16),
            (17, 400, 32),
            (19, 32, 400),
            (5, 7, 10),
            (9, 20, 13),
            (11, 30, 7),
            (4, 6, 5),
            (3, 4, 3),
            (8, 3, 1),
            (1, 1, 1),
        ] {
            let a = Array2::from_shape_fn((m, k), |_| rng.gen_range(-1.0f32..1.0));
            let b = Array2::from_shape_fn((k, n), |_| rng.gen_range(-1.0f32..1.0));
            let bt = b.t().as_standard_layout().into_owned();
            let mut want = Array2::zeros((m, n));
            chain(a.view(), b.view(), want.view_mut());
            for isa in Isa::runnable() {
                for b in [b.view(), bt.t()] {
                    let mut c = Array2::from_elem((m, n), f32::NAN);
                    product_on(isa, a.view(), b, c.view_mut());
                    assert!(
                        c.iter().zip(&want).all(|(c, w)| c.to_bits() == w.to_bits()),
                        "{isa:?} {m}x{k}x{n}"
                    );
                    let mut ct = Array2::from_elem((n, m), f32::NAN);
                    product_on(isa, a.view(), b, ct.view_mut().reversed_axes());
                    assert!(
                        ct.t()
                            .iter()
                            .zip(&want)
                            .all(|(c, w)| c.to_bits() == w.to_bits()),
                        "{isa:?} {m}x{k}x{n} into a transposed c"
                    );
                }
            }
        }
    }

    /// Columns past `n` in the rows of `c` (a view into a wider array) are
    /// left alone by the masked stores.
    #[test]
    fn masked_columns_are_untouched() {
        let a = Array2::from_elem((7, 3), 1.0f32);
        let b = Array2::from_elem((3, 20), 2.0f32);
        for isa in Isa::runnable() {
            let mut wide = Array2::from_elem((7, 24), -1.0f32);
            product_on(
                isa,
                a.view(),
                b.view(),
                wide.slice_mut(ndarray::s![.., ..20]),
            );
            assert!(wide.iter().take(20).all(|&v| v == 6.0), "{isa:?}");
            assert!(
                wide.slice(ndarray::s![.., 20..]).iter().all(|&v| v == -1.0),
                "{isa:?}"
            );
        }
    }
}
