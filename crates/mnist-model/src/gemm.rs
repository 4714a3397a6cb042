//! Register-blocked matrix products for skinny shapes, with AVX-512 and
//! AVX2 paths chosen at run time and `ndarray`'s product elsewhere.
//!
//! The convolutions' products have few columns (16 or 32 filters) or few
//! inner terms (25 for the first convolution), shapes for which a general
//! product spends much of its time packing. These kernels pack nothing:
//! a block of `R` rows by `V` vectors of the result stays in registers
//! while the inner index runs, reading the right-hand side's rows in place
//! and broadcasting the left-hand side's values (any strides, so a
//! transposed view costs nothing). A ragged last block of columns is
//! masked.
//!
//! Each element of the result is one chain of fused multiply-adds over
//! the inner index in order, whichever block, thread or part it falls in:
//! the same inputs give the same bits on a given CPU and path.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// Which instructions a product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// 16 lanes, 32 registers.
    Avx512,
    /// 8 lanes and FMA, 16 registers.
    Avx2,
    /// `ndarray`'s product (`matrixmultiply`).
    Portable,
}

impl Isa {
    /// The path of this process: the crate's kernel path (which honours
    /// `MNIST_KERNEL`), AVX-512 or AVX2 when it is one of those.
    pub(crate) fn current() -> Self {
        match crate::kernel::path() {
            crate::kernel::Path::Avx512 => Self::Avx512,
            crate::kernel::Path::Avx2 => Self::Avx2,
            _ => Self::Portable,
        }
    }

    /// Every path this CPU can run.
    #[cfg(test)]
    pub(crate) fn runnable() -> Vec<Self> {
        [Self::Avx512, Self::Avx2, Self::Portable]
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

/// `c = a b` on the calling thread, on `isa` when the CPU has it and the
/// shapes suit the kernels (`b` and `c` with contiguous rows, no negative
/// strides), else on `ndarray`'s product.
pub(crate) fn product_on(
    isa: Isa,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Portable && isa.available() {
        if let Some(mats) = x86::Mats::new(&a, &b, &mut c) {
            match isa {
                // SAFETY: the CPU has AVX-512F (`available`), and `Mats::new`
                // checked that every element the kernel touches lies in the
                // views (see there); `c` is borrowed mutably for the call.
                Isa::Avx512 => unsafe { x86::avx512::kernel(&mats) },
                // SAFETY: as above, with AVX2 and FMA.
                Isa::Avx2 => unsafe { x86::avx2::kernel(&mats) },
                Isa::Portable => {}
            }
            return;
        }
    }
    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
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
            use super::Mats;

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
                    // SAFETY: the masked vector covers columns j..n only.
                    unsafe { panel::<$tr, 1>(m, j, $mk(left)) };
                    j = m.n;
                }
            }

            /// Columns `j..j + lanes V` (the last vector masked by `mask`)
            /// of every row.
            ///
            /// # Safety
            /// As [`kernel`], and those columns within `n` where `mask`
            /// is set.
            #[target_feature(enable = $feature)]
            unsafe fn panel<const R: usize, const V: usize>(m: &Mats, j: usize, mask: $mask) {
                let mut i = 0;
                while i + R <= m.m {
                    // SAFETY: rows i..i + R are within m.
                    unsafe { block::<R, V>(m, i, j, mask) };
                    i += R;
                }
                while i + 4 <= m.m {
                    // SAFETY: rows i..i + 4 are within m.
                    unsafe { block::<4, V>(m, i, j, mask) };
                    i += 4;
                }
                while i < m.m {
                    // SAFETY: row i is within m.
                    unsafe { block::<1, V>(m, i, j, mask) };
                    i += 1;
                }
            }

            /// Rows `i..i + R`, columns as [`panel`]'s: each element one
            /// chain of fused multiply-adds over `p = 0..k` in order.
            ///
            /// # Safety
            /// As [`panel`], and rows `i..i + R` within `m`.
            #[target_feature(enable = $feature)]
            #[inline]
            unsafe fn block<const R: usize, const V: usize>(
                m: &Mats,
                i: usize,
                j: usize,
                mask: $mask,
            ) {
                let all = $mk($lanes);
                let mut acc: [[$vec; V]; R] = [[$zero; V]; R];
                // SAFETY (this whole body): every offset below is that of
                // an element (i + r, p) of `a`, (p, j + lanes v + lane)
                // of `b` or (i + r, j + ...) of `c` with r < R, p < k and
                // the lanes masked to the columns within n; `Mats::new`
                // puts all of them inside the views.
                unsafe {
                    let a = m.a.add(i * m.rsa);
                    let b = m.b.add(j);
                    for p in 0..m.k {
                        let bp = b.add(p * m.ldb);
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
