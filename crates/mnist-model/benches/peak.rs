//! The machine's ceiling for the training kernels: independent 16-lane
//! fused multiply-adds on one core, nothing else (no loads, no stores), so
//! that `BENCHMARKS.md` can state how far the kernels are from the hardware.
//! Reported as elements = single-precision FMAs (2 FLOP each). Only where the
//! CPU has AVX-512; elsewhere the bench prints why it skipped.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Independent dependency chains: more than an FMA's latency times the
/// number of FMA units, so the units never wait.
const CHAINS: usize = 12;
/// Rounds of `CHAINS` FMAs per iteration.
const ROUNDS: u64 = 100_000;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn fma_chains(rounds: u64) -> f32 {
    use std::arch::x86_64::{_mm512_add_ps, _mm512_fmadd_ps, _mm512_reduce_add_ps, _mm512_set1_ps};
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
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

fn bench(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            let mut group = c.benchmark_group("peak");
            group.throughput(Throughput::Elements(ROUNDS * CHAINS as u64 * 16));
            group.bench_function("fma_f32_avx512_one_core", |b| {
                // SAFETY: avx512f and fma were detected just above.
                b.iter(|| unsafe { fma_chains(std::hint::black_box(ROUNDS)) })
            });
            group.finish();
            return;
        }
    }
    let _ = c;
    eprintln!("peak: no AVX-512 with FMA on this CPU, skipped");
}

criterion_group!(benches, bench);
criterion_main!(benches);
