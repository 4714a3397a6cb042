//! Work split into numbered parts, run on up to a given number of threads.
//!
//! A training step that wants the same bits on any number of threads
//! splits its batch into parts whose number and bounds depend only on the
//! batch (never on the threads), lets each part compute into its own
//! buffers, and adds the parts' results up afterwards in part order.
//! [`run_parts`] is the middle of that: it runs `f(i, &mut works[i])` for
//! every part `i`.
//!
//! # Why it is safe and deterministic
//!
//! - No `unsafe`: the parts' buffers are handed out by
//!   [`slice::chunks_mut`], so each thread holds `&mut` to a disjoint run
//!   of them, and everything else `f` sees is shared (`Sync`) and read
//!   only. [`std::thread::scope`] joins every thread before returning, so
//!   the borrows end with the call and a panic in a part is propagated to
//!   the caller.
//! - The result of part `i` is a function of `i`, its buffer and the shared
//!   inputs alone: which thread runs it, and when, cannot change a bit of
//!   it. Callers then combine the parts in index order on one thread, so
//!   the sum is the same for 1, 2 or 16 threads.

/// The threads a step uses by default: every core.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs `f(i, &mut works[i])` for every part on up to `threads` threads,
/// each taking a run of consecutive parts (the calling thread takes the
/// first run). Which thread does a part never changes its result.
pub(crate) fn run_parts<W: Send>(
    works: &mut [W],
    threads: usize,
    f: impl Fn(usize, &mut W) + Sync,
) {
    let threads = threads.clamp(1, works.len().max(1));
    if threads == 1 {
        for (i, work) in works.iter_mut().enumerate() {
            f(i, work);
        }
        return;
    }
    let per = works.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let f = &f;
        let mut chunks = works.chunks_mut(per).enumerate();
        let first = chunks.next();
        for (t, chunk) in chunks {
            scope.spawn(move || {
                for (j, work) in chunk.iter_mut().enumerate() {
                    f(t * per + j, work);
                }
            });
        }
        if let Some((_, chunk)) = first {
            for (j, work) in chunk.iter_mut().enumerate() {
                f(j, work);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_runs_once_with_its_own_index() {
        for parts in [0, 1, 2, 5, 16] {
            for threads in [0, 1, 2, 3, 16] {
                let mut works = vec![(usize::MAX, 0u32); parts];
                run_parts(&mut works, threads, |i, w| {
                    w.0 = i;
                    w.1 += 1;
                });
                for (i, w) in works.iter().enumerate() {
                    assert_eq!(*w, (i, 1), "{parts} parts, {threads} threads");
                }
            }
        }
    }
}
