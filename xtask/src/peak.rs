//! The machine's fused multiply-add ceiling for a kernel path, measured on
//! the spot, so that `bench` can say what fraction of it a run reached.
//!
//! Independent FMA chains and nothing else (no loads, no stores), on every
//! core at once, with the instructions of the path that trained: 512-bit
//! for `avx512f+fma`, 256-bit for `avx2+fma`, 128-bit for `neon`. The same
//! loops as `cargo bench -p mnist-model --bench peak`, which measures one
//! core.

use std::time::Instant;

/// Rounds of FMAs per chain in one timed pass (about 7 ms at 3.6 GHz).
const ROUNDS: u64 = 2_000_000;
/// Timed passes, of which the best counts. On a shared virtual machine a
/// core is now and then taken away for milliseconds; a pass that loses one
/// measures half the peak, and with three passes all three once did (115
/// of about 230 GFLOP/s on two Zen 4 cores), which made a run look faster
/// than the peak. Twenty take about 0.15 s.
const PASSES: usize = 20;
/// Chains: more than an FMA's latency times the FMA units (AVX2 has 16
/// registers, AVX-512 and NEON 32).
const CHAINS: usize = 12;

/// FLOP/s (two per fused multiply-add) of `threads` threads running the
/// FMA instructions of `kernel` (a kernel path's reported name), the best
/// of `PASSES` passes; `None` for a path without SIMD FMAs, or one this
/// CPU lacks.
pub fn flops(kernel: &str, threads: usize) -> Option<f64> {
    let lanes = lanes(kernel)?;
    let pass = || -> Option<f64> {
        let start = Instant::now();
        let all = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads.max(1))
                .map(|_| s.spawn(|| chains(kernel, ROUNDS)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().ok().flatten())
                .collect::<Option<Vec<f32>>>()
        })?;
        std::hint::black_box(all);
        let fmas = ROUNDS as f64 * CHAINS as f64 * lanes as f64 * threads.max(1) as f64;
        Some(2.0 * fmas / start.elapsed().as_secs_f64())
    };
    (0..PASSES).filter_map(|_| pass()).reduce(f64::max)
}

/// The higher of two peaks, either of which may be missing.
pub fn higher(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The widest FMA instructions this CPU has, as a kernel path's name
/// (`avx512f+fma`, `avx2+fma`, `neon`), for a peak when the run's own
/// products are not one of those paths (the portable path); `None`
/// without SIMD FMAs.
pub fn widest_kernel() -> Option<&'static str> {
    FMA_KERNELS.into_iter().find(|k| chains(k, 1).is_some())
}

/// The kernel paths whose FMA peak [`flops`] measures, widest first.
const FMA_KERNELS: [&str; 3] = ["avx512f+fma", "avx2+fma", "neon"];

/// The FMA instructions of the kernel path a run's report names, when they
/// are one of those [`flops`] can measure; else the widest this CPU has.
/// A run forced onto AVX2 is measured against the AVX2 peak.
pub fn kernel_of_run(kernel: &str) -> Option<&'static str> {
    FMA_KERNELS
        .into_iter()
        .find(|k| *k == kernel && chains(k, 1).is_some())
        .or_else(widest_kernel)
}

/// `f32` lanes of the FMA instructions of `kernel`.
fn lanes(kernel: &str) -> Option<usize> {
    match kernel {
        "avx512f+fma" => Some(16),
        "avx2+fma" => Some(8),
        "neon" => Some(4),
        _ => None,
    }
}

/// Runs the chains of `kernel` if this CPU can; their sum (to keep them).
fn chains(kernel: &str, rounds: u64) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    {
        let fma = is_x86_feature_detected!("fma");
        if kernel == "avx512f+fma" && fma && is_x86_feature_detected!("avx512f") {
            // SAFETY: avx512f and fma were detected just above.
            return Some(unsafe { avx512(rounds) });
        }
        if kernel == "avx2+fma" && fma && is_x86_feature_detected!("avx2") {
            // SAFETY: avx2 and fma were detected just above.
            return Some(unsafe { avx2(rounds) });
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if kernel == "neon" && std::arch::is_aarch64_feature_detected!("neon") {
            // SAFETY: neon was detected just above.
            return Some(unsafe { neon(rounds) });
        }
    }
    let _ = (kernel, rounds);
    None
}

/// # Safety
/// The CPU must support avx512f and fma.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn avx512(rounds: u64) -> f32 {
    use std::arch::x86_64::{_mm512_add_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps, _mm512_set1_ps};
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..rounds {
        for v in &mut acc {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    _mm512_reduce_add_ps(
        acc.into_iter()
            .fold(_mm512_set1_ps(0.0), |s, v| _mm512_add_ps(s, v)),
    )
}

/// # Safety
/// The CPU must support avx2 and fma.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(rounds: u64) -> f32 {
    use std::arch::x86_64::{_mm256_add_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_storeu_ps};
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..rounds {
        for v in &mut acc {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let sum = acc
        .into_iter()
        .fold(_mm256_set1_ps(0.0), |s, v| _mm256_add_ps(s, v));
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 floats; an unaligned store.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}

/// # Safety
/// The CPU must support neon.
#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
unsafe fn neon(rounds: u64) -> f32 {
    use std::arch::aarch64::{vaddq_f32, vaddvq_f32, vdupq_n_f32, vfmaq_f32};
    let mut acc = [vdupq_n_f32(1.0); CHAINS];
    let (a, b) = (vdupq_n_f32(0.999_999), vdupq_n_f32(1e-7));
    for _ in 0..rounds {
        for v in &mut acc {
            *v = vfmaq_f32(b, *v, a);
        }
    }
    vaddvq_f32(
        acc.into_iter()
            .fold(vdupq_n_f32(0.0), |s, v| vaddq_f32(s, v)),
    )
}

/// FLOPs of `epochs` epochs of training a `model` (as the trainer's report
/// names it: `linear F x C, ...`) on `train` rows with an evaluation of
/// `val` rows after each epoch: forward pass and gradient, `2 F C` each a
/// row, and the evaluation's forward pass; `None` for another model.
pub fn linear_flops(model: &str, train: u64, val: u64, epochs: usize) -> Option<f64> {
    let shape = model.strip_prefix("linear ")?.split(',').next()?;
    let (f, c) = shape.split_once(" x ")?;
    let (f, c): (f64, f64) = (f.trim().parse().ok()?, c.trim().parse().ok()?);
    Some(2.0 * f * c * (2.0 * train as f64 + val as f64) * epochs as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's own path names the peak it is measured against (AVX2 for
    /// a run forced onto it on an AVX-512 CPU); a path without SIMD FMAs,
    /// or one this CPU lacks, takes the widest.
    #[test]
    fn a_runs_path_names_its_peak() {
        assert_eq!(kernel_of_run("portable"), widest_kernel());
        for k in FMA_KERNELS {
            let want = if chains(k, 1).is_some() {
                Some(k)
            } else {
                widest_kernel()
            };
            assert_eq!(kernel_of_run(k), want, "{k}");
        }
    }

    #[test]
    fn the_posts_run_is_20_gflop() {
        let flops = linear_flops("linear 785 x 10, sigmoid", 60_000, 10_000, 10);
        assert_eq!(flops, Some(20.41e9));
        assert_eq!(linear_flops("mlp 785-256-10, softmax", 60_000, 0, 1), None);
        assert_eq!(linear_flops("linear 785 by 10", 60_000, 0, 1), None);
    }

    #[test]
    fn paths_without_simd_fmas_have_no_peak() {
        assert_eq!(flops("portable", 2), None);
        assert_eq!(flops("sse9", 1), None);
    }

    #[test]
    fn the_higher_peak_counts_and_a_missing_one_does_not() {
        assert_eq!(higher(Some(1.0), Some(2.0)), Some(2.0));
        assert_eq!(higher(Some(3.0), Some(2.0)), Some(3.0));
        assert_eq!(higher(None, Some(2.0)), Some(2.0));
        assert_eq!(higher(Some(1.0), None), Some(1.0));
        assert_eq!(higher(None, None), None);
    }
}
