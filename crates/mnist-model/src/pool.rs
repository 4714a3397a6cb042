//! One helper thread, kept alive between calls, for work split in two.
//!
//! A training step splits its batch into two fixed halves. Spawning a thread
//! for each step costs tens of microseconds, a noticeable part of a step of a
//! few hundred; this helper thread instead waits for the next half by
//! spinning briefly, then sleeping. What each half computes never depends on
//! which thread runs it, so results are the same whether the helper is used,
//! busy (another caller has it) or missing (one CPU).

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long a waiting thread spins before it yields its core to others,
/// and how long before it sleeps: longer than the gap between two training
/// steps, far shorter than a run.
const SPIN: Duration = Duration::from_micros(50);
const YIELD: Duration = Duration::from_micros(300);

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Helper {
    /// The job handed over, taken by the helper.
    job: Mutex<Option<Job>>,
    /// Number of jobs posted and finished so far.
    posted: AtomicU64,
    finished: AtomicU64,
    /// The thread waiting for the current job, woken when it is finished.
    waiter: Mutex<Option<Thread>>,
    /// The helper thread itself, woken when a job is posted.
    thread: OnceLock<Thread>,
    /// Held by the one caller using the helper.
    in_use: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent even if a holder
    // panicked (jobs catch their own panics anyway).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spins, then yields, then sleeps, until `done()` holds; wakes on
/// `unpark`.
fn wait_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    let mut spins = 0u32;
    while !done() {
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) {
            std::hint::spin_loop();
            continue;
        }
        let waited = start.elapsed();
        if waited < SPIN {
            std::hint::spin_loop();
        } else if waited < YIELD {
            thread::yield_now();
        } else {
            thread::park_timeout(Duration::from_secs(1));
        }
    }
}

fn helper() -> Option<&'static Helper> {
    static HELPER: OnceLock<Option<&'static Helper>> = OnceLock::new();
    *HELPER.get_or_init(|| {
        if thread::available_parallelism().map_or(1, usize::from) < 2 {
            return None;
        }
        let h: &'static Helper = Box::leak(Box::new(Helper {
            job: Mutex::new(None),
            posted: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            waiter: Mutex::new(None),
            thread: OnceLock::new(),
            in_use: Mutex::new(()),
        }));
        let handle = thread::Builder::new()
            .name("mnist-model-helper".into())
            .spawn(move || work(h))
            .ok()?;
        h.thread.get_or_init(|| handle.thread().clone());
        Some(h)
    })
}

fn work(h: &'static Helper) {
    let mut seen = 0;
    loop {
        wait_until(|| h.posted.load(Ordering::Acquire) > seen);
        // A job the caller took back leaves its ticket without a job; the
        // next job may then be taken on that ticket. Either way `finished`
        // reaches a ticket only after the job posted with it has run.
        seen += 1;
        let job = lock(&h.job).take();
        if let Some(job) = job {
            job();
        }
        h.finished.store(seen, Ordering::Release);
        if let Some(t) = lock(&h.waiter).as_ref() {
            t.unpark();
        }
    }
}

/// Ends a job handed to the helper, even while unwinding: the job borrows
/// from the caller's stack. If the helper has not taken the job yet, it is
/// taken back (and run, unless unwinding); otherwise this waits until the
/// helper has finished it.
struct Reclaim<'h> {
    helper: &'h Helper,
    ticket: u64,
}

impl Reclaim<'_> {
    /// Whether the job was taken back, and run if `run`.
    fn take_back(&self, run: bool) -> bool {
        let job = lock(&self.helper.job).take();
        match job {
            Some(job) => {
                if run {
                    job();
                }
                true
            }
            None => false,
        }
    }

    fn wait(&self) {
        wait_until(|| self.helper.finished.load(Ordering::Acquire) >= self.ticket);
    }
}

impl Drop for Reclaim<'_> {
    fn drop(&mut self) {
        if !self.take_back(false) {
            self.wait();
        }
    }
}

/// Runs `a` on this thread and `b` on the helper thread, at the same time
/// when the helper is free; returns both results. When the helper is busy
/// with another caller, missing, or has not started `b` by the time `a` is
/// done (its core is taken by other work), `b` runs on this thread after
/// `a`. A panic in either is propagated after both have finished.
pub(crate) fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB + Send,
    RB: Send,
{
    let Some(h) = helper() else {
        return (a(), b());
    };
    let Ok(_in_use) = h.in_use.try_lock() else {
        // Busy with another caller (or a nested call): run here.
        return (a(), b());
    };
    let Some(worker) = h.thread.get() else {
        return (a(), b());
    };
    let mut rb: Option<thread::Result<RB>> = None;
    let slot = &mut rb;
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        *slot = Some(panic::catch_unwind(AssertUnwindSafe(b)));
    });
    // SAFETY: only the lifetime is changed. The job borrows `rb` and what
    // `b` captured, all of which outlive this function's frame; the
    // `Reclaim` guard below makes this function, on return or unwinding,
    // either take the job back from the slot (the helper never saw it) or
    // wait until the helper has finished running it, so no borrow is used
    // after this frame ends.
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
    *lock(&h.waiter) = Some(thread::current());
    *lock(&h.job) = Some(job);
    let ticket = h.posted.fetch_add(1, Ordering::AcqRel) + 1;
    worker.unpark();
    let reclaim = Reclaim { helper: h, ticket };
    let ra = a();
    if !reclaim.take_back(true) {
        reclaim.wait();
    }
    std::mem::forget(reclaim);
    match rb {
        Some(Ok(v)) => (ra, v),
        Some(Err(payload)) => panic::resume_unwind(payload),
        None => unreachable!("the job ran before it was finished or taken back"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_run_and_return() {
        let mut left = vec![0u64; 1000];
        let mut right = vec![0u64; 1000];
        for round in 0..200u64 {
            let (a, b) = join(
                || {
                    left.iter_mut().for_each(|v| *v += round);
                    left.iter().sum::<u64>()
                },
                || {
                    right.iter_mut().for_each(|v| *v += 2 * round);
                    right.iter().sum::<u64>()
                },
            );
            assert_eq!(b, 2 * a);
        }
    }

    #[test]
    fn concurrent_and_nested_callers_fall_back_to_one_thread() {
        let outer = thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|k| s.spawn(move || join(|| k, || join(|| k + 1, || k + 2))))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|e| panic::resume_unwind(e)))
                .collect::<Vec<_>>()
        });
        for (k, (a, (b, c))) in outer.into_iter().enumerate() {
            assert_eq!((a, b, c), (k, k + 1, k + 2));
        }
    }

    #[test]
    fn a_panic_on_the_helper_reaches_the_caller() {
        let r = panic::catch_unwind(|| join(|| 1, || -> i32 { panic!("boom") }));
        assert!(r.is_err());
        // The helper is still usable afterwards.
        assert_eq!(join(|| 1, || 2), (1, 2));
    }
}
