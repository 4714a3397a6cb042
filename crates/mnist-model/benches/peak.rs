//! The machine's ceiling for the training kernels: independent fused
//! multiply-adds on one core, nothing else (no loads, no stores), so that
//! `BENCHMARKS.md` can state how far the kernels are from the hardware.
//! Reported as elements = single-precision FMAs (2 FLOP each), for each
//! kernel path's instructions this CPU has: 16-lane AVX-512, 8-lane AVX2
//! and 4-lane NEON (a CPU whose AVX-512 halves its FMA throughput, or has
//! fewer 512-bit FMA units, shows it here).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Rounds of independent FMAs per iteration.
const ROUNDS: u64 = 100_000;

/// One FMA chain a register; more chains than an FMA's latency times the
/// number of FMA units, so the units never wait. (AVX2 has 16 registers,
/// AVX-512 and NEON 32, and NEON cores have up to four FMA units.)
#[cfg(target_arch = "x86_64")]
const X86_CHAINS: usize = 12;
#[cfg(target_arch = "aarch64")]
const NEON_CHAINS: usize = 24;

/// # Safety
/// The CPU must support avx512f.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn avx512_chains(rounds: u64) -> f32 {
    use std::arch::x86_64::{_mm512_add_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps, _mm512_set1_ps};
    let mut acc = [_mm512_set1_ps(1.0); X86_CHAINS];
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..rounds {
        for v in &mut acc {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    let mut sum = acc[0];
    for v in &acc[1..] {
        sum = _mm512_add_ps(sum, *v);
    }
    _mm512_reduce_add_ps(sum)
}

/// # Safety
/// The CPU must support avx2 and fma.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_chains(rounds: u64) -> f32 {
    use std::arch::x86_64::{_mm256_add_ps, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_storeu_ps};
    let mut acc = [_mm256_set1_ps(1.0); X86_CHAINS];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..rounds {
        for v in &mut acc {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let mut sum = acc[0];
    for v in &acc[1..] {
        sum = _mm256_add_ps(sum, *v);
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 floats; an unaligned store.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}

/// # Safety
/// The CPU must support neon.
#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
unsafe fn neon_chains(rounds: u64) -> f32 {
    use std::arch::aarch64::{vaddq_f32, vaddvq_f32, vdupq_n_f32, vfmaq_f32};
    let mut acc = [vdupq_n_f32(1.0); NEON_CHAINS];
    let (a, b) = (vdupq_n_f32(0.999_999), vdupq_n_f32(1e-7));
    for _ in 0..rounds {
        for v in &mut acc {
            *v = vfmaq_f32(b, *v, a);
        }
    }
    let mut sum = acc[0];
    for v in &acc[1..] {
        sum = vaddq_f32(sum, *v);
    }
    vaddvq_f32(sum)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("peak");
    let mut measured = false;
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            group.throughput(Throughput::Elements(ROUNDS * X86_CHAINS as u64 * 16));
            group.bench_function("fma_f32_avx512_one_core", |b| {
                // SAFETY: avx512f and fma were detected just above.
                b.iter(|| unsafe { avx512_chains(std::hint::black_box(ROUNDS)) })
            });
            measured = true;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            group.throughput(Throughput::Elements(ROUNDS * X86_CHAINS as u64 * 8));
            group.bench_function("fma_f32_avx2_one_core", |b| {
                // SAFETY: avx2 and fma were detected just above.
                b.iter(|| unsafe { avx2_chains(std::hint::black_box(ROUNDS)) })
            });
            measured = true;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            group.throughput(Throughput::Elements(ROUNDS * NEON_CHAINS as u64 * 4));
            group.bench_function("fma_f32_neon_one_core", |b| {
                // SAFETY: neon was detected just above.
                b.iter(|| unsafe { neon_chains(std::hint::black_box(ROUNDS)) })
            });
            measured = true;
        }
    }
    group.finish();
    if !measured {
        eprintln!("peak: no SIMD fused multiply-add on this CPU, skipped");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
