//! Work split into numbered parts, run on up to a given number of threads.
//!
//! A training step that wants the same bits on any number of threads
//! splits its batch into parts whose number and bounds depend only on the
//! batch (never on the threads), lets each part compute into its own
//! buffers, and adds the parts' results up afterwards in part order.
//! [`run_parts`] is the middle of that: it runs `f(i, &mut works[i])` for
//! every part `i`, once.
//!
//! # Why it is safe and deterministic
//!
//! - No `unsafe` here: each part's buffer sits behind its own [`Mutex`], and a
//!   part is claimed by taking the next index from an atomic counter, so
//!   each index (and lock) goes to exactly one thread and the lock is
//!   never contended. Everything else `f` sees is shared (`Sync`) and read
//!   only, or (a step cut by features handing over its rows' residuals:
//!   `sgd::columns`) behind a lock that a part only tries, making what it
//!   would take there when it finds nothing, so that no result depends on
//!   which. On two threads the second is the pool's persistent helper
//!   (`pool::join`, which waits for it or takes the work back before
//!   returning); on more, a rayon pool of that many threads, kept for the
//!   process, whose `scope` returns only when every part is done. Either
//!   way the borrows end with the call, and a panic in a part reaches the
//!   caller.
//! - Which thread runs a part is decided at run time (the first free
//!   thread claims the next part: on a machine busy with other work, the
//!   calling thread does the parts a late thread has not started). That
//!   choice cannot change a bit: the result of part `i` is a function of
//!   `i`, its buffer and the shared inputs alone. Callers then combine the
//!   parts in index order, so the sum is the same for 1, 2 or 16 threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::pool;

/// The threads a step uses by default: every core.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs `f(i, &mut works[i])` for every part on up to `threads` threads
/// (the calling thread is one of them), each thread claiming the next
/// part not yet started. Which thread does a part never changes its
/// result.
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
    let parts: Vec<Mutex<&mut W>> = works.iter_mut().map(Mutex::new).collect();
    let next = AtomicUsize::new(0);
    let claim = || loop {
        // Each index is handed out once: the lock is never contended.
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(part) = parts.get(i) else {
            break;
        };
        let mut work = part.lock().unwrap_or_else(PoisonError::into_inner);
        f(i, &mut work);
    };
    if threads == 2 {
        // The pool's helper thread is kept alive between calls: no thread
        // is started for a step (that cost tens of microseconds a step,
        // and more on a busy machine).
        pool::join(claim, claim);
        return;
    }
    match pool_of(threads) {
        // The pool's threads stay between steps: scoped threads started
        // for every step cost more than a small step (`--preset softmax
        // --batch-size 2048 --epochs 10 --threads 4`, 2-core Zen 4: 0.361
        // to 0.372 s with scoped threads, 0.269 to 0.300 s with the pool).
        Some(pool) => pool.scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|_| claim());
            }
        }),
        None => std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(claim);
            }
            claim();
        }),
    }
}

/// A pool of `threads` threads, made on first use and kept for the
/// process; `None` if the threads cannot be started.
fn pool_of(threads: usize) -> Option<Arc<rayon::ThreadPool>> {
    static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, pool)) = pools.iter().find(|(n, _)| *n == threads) {
        return Some(Arc::clone(pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("mnist-model-{i}"))
        .build()
        .ok()?;
    let pool = Arc::new(pool);
    pools.push((threads, Arc::clone(&pool)));
    Some(pool)
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
