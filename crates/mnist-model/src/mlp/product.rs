//! The matrix products of the network's forward and backward passes.
//!
//! # Why a kernel of our own
//!
//! Single-thread minimum times of the two large products of a part of the
//! `--preset mlp` step (64 rows; `x W1`: 64 x 785 times 785 x 256, and
//! `x^T dh`: 785 x 64 times 64 x 256; 25.7 MFLOP each), AMD EPYC (Zen 4,
//! AVX-512), minimum of 2,000 calls each, under another agent's builds:
//!
//! | product | `x W1` | `x^T dh` |
//! | --- | --- | --- |
//! | `matrixmultiply` 0.3 (ndarray's, now) | 265 us, 97 GFLOP/s | 236 us, 109 GFLOP/s |
//! | `gemm` 0.19 (crates.io, `x86-v4`) | 248 us, 104 GFLOP/s | 240 us, 107 GFLOP/s |
//! | this kernel, AVX-512 | 219 us, 118 GFLOP/s | 222 us, 116 GFLOP/s |
//!
//! The kernel needs no packing (the right-hand side's rows are read in
//! place) and keeps 6 rows x 64 columns of the result in 24 registers,
//! which reaches the core's FMA peak (about 116 GFLOP/s at 3.6 GHz). The
//! `gemm` crate was within the noise of `matrixmultiply` and would add a
//! dozen dependencies. Without AVX-512, or for shapes it does not take
//! (fewer than 64 or a ragged number of columns), `matrixmultiply` runs.
//!
//! Each element of the result is one chain of fused multiply-adds over
//! `k` in order, whatever the thread or the position of the part, so the
//! same inputs give the same bits on a given CPU.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// `c = a b` on the calling thread.
pub(super) fn product(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if avx512::product(&a, &b, &mut c) {
        return;
    }
    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };

    use ndarray::{ArrayView2, ArrayViewMut2};

    /// Columns of the result in one block: four vectors of 16.
    const NR: usize = 64;
    /// Rows of the result in one block.
    const MR: usize = 6;

    /// A matrix in memory: its first element and its strides in elements.
    #[derive(Clone, Copy)]
    struct Strided {
        ptr: *const f32,
        rows: usize,
        cols: usize,
    }

    fn strides(s: &[isize]) -> Option<(usize, usize)> {
        Some((usize::try_from(s[0]).ok()?, usize::try_from(s[1]).ok()?))
    }

    /// `c = a b` when the CPU has AVX-512F and the shapes suit the kernel
    /// (`b` and `c` with contiguous rows, a multiple of 64 columns, no
    /// negative strides); `false` (and `c` untouched) otherwise.
    pub(super) fn product(
        a: &ArrayView2<'_, f32>,
        b: &ArrayView2<'_, f32>,
        c: &mut ArrayViewMut2<'_, f32>,
    ) -> bool {
        let ((m, k), n) = (a.dim(), b.ncols());
        let (Some((rsa, csa)), Some((rsb, 1)), Some((rsc, 1))) = (
            strides(a.strides()),
            strides(b.strides()),
            strides(c.strides()),
        ) else {
            return false;
        };
        if b.nrows() != k || c.dim() != (m, n) || m == 0 || k == 0 || n == 0 || n % NR != 0 {
            return false;
        }
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return false;
        }
        let a = Strided {
            ptr: a.as_ptr(),
            rows: rsa,
            cols: csa,
        };
        let b = Strided {
            ptr: b.as_ptr(),
            rows: rsb,
            cols: 1,
        };
        debug_assert_eq!(b.cols, 1);
        // SAFETY: AVX-512F is there (checked above); every element the
        // kernel reads or writes, (i, p) of `a` for i < m and p < k, (p, j)
        // of `b` and (i, j) of `c` for j < n, lies in the views, whose
        // strides are the ones passed; `c` is borrowed mutably, and the
        // views of `a` and `b` cannot alias it.
        unsafe { kernel(m, k, n, a, b, c.as_mut_ptr(), rsc) };
        true
    }

    /// # Safety
    /// As in [`product`]: AVX-512F, and the `m x k`, `k x n` and `m x n`
    /// elements valid.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel(
        m: usize,
        k: usize,
        n: usize,
        a: Strided,
        b: Strided,
        c: *mut f32,
        ldc: usize,
    ) {
        for j in (0..n).step_by(NR) {
            // The same `NR` columns of `b` (k rows, in the L2 cache) for
            // every block of rows.
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(MR);
                // SAFETY: as the caller's; the block's rows and columns
                // are within m and n.
                unsafe {
                    let a = Strided {
                        ptr: a.ptr.add(i * a.rows),
                        ..a
                    };
                    let (bp, ldb) = (b.ptr.add(j), b.rows);
                    let c = c.add(i * ldc + j);
                    match rows {
                        6 => block::<6>(k, a, bp, ldb, c, ldc),
                        5 => block::<5>(k, a, bp, ldb, c, ldc),
                        4 => block::<4>(k, a, bp, ldb, c, ldc),
                        3 => block::<3>(k, a, bp, ldb, c, ldc),
                        2 => block::<2>(k, a, bp, ldb, c, ldc),
                        _ => block::<1>(k, a, bp, ldb, c, ldc),
                    }
                }
                i += rows;
            }
        }
    }

    /// `R x 64` of `c`: for each of them one chain of fused multiply-adds
    /// over `p = 0..k` in order.
    ///
    /// # Safety
    /// AVX-512F; rows `0..R` of `a` (k columns), rows `0..k` of `b`
    /// (64 contiguous columns) and `R x 64` of `c` valid.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const R: usize>(
        k: usize,
        a: Strided,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc: [[__m512; 4]; R] = [[_mm512_setzero_ps(); 4]; R];
        for p in 0..k {
            // SAFETY: p < k and the 64 columns of row p of b are valid.
            let (b0, b1, b2, b3) = unsafe {
                let bp = b.add(p * ldb);
                (
                    _mm512_loadu_ps(bp),
                    _mm512_loadu_ps(bp.add(16)),
                    _mm512_loadu_ps(bp.add(32)),
                    _mm512_loadu_ps(bp.add(48)),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: r < R and p < k.
                let av = _mm512_set1_ps(unsafe { *a.ptr.add(r * a.rows + p * a.cols) });
                acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
                acc[2] = _mm512_fmadd_ps(av, b2, acc[2]);
                acc[3] = _mm512_fmadd_ps(av, b3, acc[3]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (q, &v) in acc.iter().enumerate() {
                // SAFETY: r < R and 16 q + 16 <= 64.
                unsafe { _mm512_storeu_ps(c.add(r * ldc + 16 * q), v) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Every shape the kernel takes or leaves, against ndarray's own
    /// product (the kernel fuses its multiply-adds, so not bit for bit).
    #[test]
    fn products_match_ndarray() {
        for (m, k, n) in [
            (13, 37, 128),
            (6, 1, 64),
            (1, 785, 64),
            (64, 785, 256),
            (5, 7, 10),
        ] {
            let a = Array2::from_shape_fn((m, k), |(i, p)| ((i * 31 + p * 17) % 23) as f32 - 11.0);
            let b = Array2::from_shape_fn((k, n), |(p, j)| ((p * 7 + j * 13) % 19) as f32 / 19.0);
            let at = a.t().as_standard_layout().into_owned();
            let want = a.dot(&b);
            for a in [a.view(), at.t()] {
                let mut c = Array2::from_elem((m, n), f32::NAN);
                product(a, b.view(), c.view_mut());
                ndarray::Zip::from(&c).and(&want).for_each(|&c, &w| {
                    assert!(
                        (c - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{m}x{k}x{n}: {c} vs {w}"
                    );
                });
            }
        }
    }
}
