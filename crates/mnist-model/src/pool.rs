//! One helper thread, kept alive between calls, for work split in two.
//!
//! A training step on two threads splits its work in two. Spawning a thread
//! for each step costs tens of microseconds, a noticeable part of a step of a
//! few hundred; this helper thread instead waits for the next half by
//! spinning briefly, then sleeping. What each half computes never depends on
//! which thread runs it, so results are the same whether the helper is used,
//! busy (another caller has it) or missing (one CPU).
//!
//! Other work can fill the moments a thread would wait: inside [`with_idle`],
//! the helper between two jobs, and a caller of [`join`] waiting for the
//! helper, do small pieces of it.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, RwLock, TryLockError};
use std::thread::{self, Thread, ThreadId};
use std::time::{Duration, Instant};

/// How long a waiting thread spins before it yields its core to others,
/// and how long before it sleeps: longer than the gap between two training
/// steps, far shorter than a run.
const SPIN: Duration = Duration::from_micros(50);
const YIELD: Duration = Duration::from_micros(300);

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Work for idle moments: does one small piece and returns `true`, or
/// returns `false` when none is left.
type Idle = &'static (dyn Fn() -> bool + Sync);

type Panic = Box<dyn std::any::Any + Send + 'static>;

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
    /// Work for idle moments, set by [`with_idle`] for its duration, and
    /// the thread that set it (the only one besides the helper to do
    /// pieces); read locked while a piece runs.
    idle: RwLock<Option<(Idle, ThreadId)>>,
    /// A panic of a piece run on the helper, for [`with_idle`] to raise;
    /// no more pieces are done after one.
    idle_panic: Mutex<Option<Panic>>,
    idle_broken: AtomicBool,
    /// Counts the idle work set so far, so that the helper, once it has
    /// found none left, waits for a job or new idle work.
    idle_set: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent even if a holder
    // panicked (jobs catch their own panics anyway).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spins, then yields, then sleeps, until `done()` holds; wakes on
/// `unpark`.
fn wait_until(done: impl Fn() -> bool) {
    spin_then_wait(done, true);
}

/// Spins until `done()` holds, reading the clock every 64 turns only;
/// after [`SPIN`] yields the core, and after [`YIELD`] sleeps if `may_sleep`
/// (only a thread that will be unparked may).
fn spin_then_wait(done: impl Fn() -> bool, may_sleep: bool) {
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
        } else if waited < YIELD || !may_sleep {
            thread::yield_now();
        } else {
            thread::park_timeout(Duration::from_secs(1));
        }
    }
}

/// The process's helper, started on first use; `None` on one CPU.
fn helper() -> Option<&'static Helper> {
    static HELPER: OnceLock<Option<&'static Helper>> = OnceLock::new();
    *HELPER.get_or_init(|| {
        if thread::available_parallelism().map_or(1, usize::from) < 2 {
            return None;
        }
        spawn_helper()
    })
}

/// Starts a helper thread, waiting for jobs; `None` if it cannot start.
fn spawn_helper() -> Option<&'static Helper> {
    let h: &'static Helper = Box::leak(Box::new(Helper {
        job: Mutex::new(None),
        posted: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        waiter: Mutex::new(None),
        thread: OnceLock::new(),
        in_use: Mutex::new(()),
        idle: RwLock::new(None),
        idle_panic: Mutex::new(None),
        idle_broken: AtomicBool::new(false),
        idle_set: AtomicU64::new(0),
    }));
    let handle = thread::Builder::new()
        .name("mnist-model-helper".into())
        .spawn(move || work(h))
        .ok()?;
    h.thread.get_or_init(|| handle.thread().clone());
    Some(h)
}

thread_local! {
    static THIS_THREAD: ThreadId = thread::current().id();
}

/// Does a piece of the idle work, if any is set and left, and this is the
/// helper thread (`on_helper`) or the thread that set it. On the helper, a
/// panic of the piece is kept for [`with_idle`] (before the read lock is
/// released, so that `with_idle` finds it) and stops further pieces.
fn idle_piece(h: &Helper, on_helper: bool) -> bool {
    if h.idle_broken.load(Ordering::Relaxed) {
        return false;
    }
    let Ok(idle) = h.idle.try_read() else {
        return false;
    };
    let Some((piece, owner)) = *idle else {
        return false;
    };
    if !on_helper {
        return THIS_THREAD.with(|id| *id == owner) && piece();
    }
    // Unwind safe: after a panic the work is never called again.
    panic::catch_unwind(AssertUnwindSafe(piece)).unwrap_or_else(|payload| {
        h.idle_broken.store(true, Ordering::Relaxed);
        lock(&h.idle_panic).get_or_insert(payload);
        false
    })
}

fn work(h: &'static Helper) {
    let mut seen = 0;
    loop {
        // Between jobs: pieces of idle work while there are some, then a
        // wait for a job or new idle work.
        loop {
            let set = h.idle_set.load(Ordering::Acquire);
            while h.posted.load(Ordering::Acquire) <= seen && idle_piece(h, true) {}
            wait_until(|| {
                h.posted.load(Ordering::Acquire) > seen || h.idle_set.load(Ordering::Acquire) != set
            });
            if h.posted.load(Ordering::Acquire) > seen {
                break;
            }
        }
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
    match helper() {
        Some(h) => join_on(h, a, b),
        None => (a(), b()),
    }
}

/// [`join`] with the helper `h`.
fn join_on<A, B, RA, RB>(h: &Helper, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB + Send,
    RB: Send,
{
    let _in_use = match h.in_use.try_lock() {
        Ok(guard) => guard,
        // A panic propagated by an earlier call poisons the lock; the
        // helper is still fine.
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        // Busy with another caller (or a nested call): run here.
        Err(TryLockError::WouldBlock) => return (a(), b()),
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
        while h.finished.load(Ordering::Acquire) < ticket && idle_piece(h, false) {}
        reclaim.wait();
    }
    std::mem::forget(reclaim);
    match rb {
        Some(Ok(v)) => (ra, v),
        Some(Err(payload)) => panic::resume_unwind(payload),
        None => unreachable!("the job ran before it was finished or taken back"),
    }
}

/// Clears the idle work on leaving [`with_idle`], even while unwinding;
/// waits for a piece under way (it holds the read lock).
struct ClearIdle<'h>(&'h Helper);

impl Drop for ClearIdle<'_> {
    fn drop(&mut self) {
        *self.0.idle.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Runs `f`, and meanwhile calls `idle` whenever a thread would wait: the
/// helper thread between jobs, and this thread waiting for the helper in
/// [`join`]. `idle` does one small piece of
/// work (a few microseconds: a piece under way delays the next job or the
/// end of a join) and returns `true`, or returns `false` when none is left.
/// Pieces may run on either thread, even at the same time, and never after
/// this returns. A panic in a piece is raised here after `f`. When the
/// helper is missing, or already has idle work from another caller, `f`
/// just runs.
pub(crate) fn with_idle<R>(idle: &(dyn Fn() -> bool + Sync), f: impl FnOnce() -> R) -> R {
    match helper() {
        Some(h) => with_idle_on(h, idle, f),
        None => f(),
    }
}

/// [`with_idle`] with the helper `h`.
fn with_idle_on<R>(h: &Helper, idle: &(dyn Fn() -> bool + Sync), f: impl FnOnce() -> R) -> R {
    {
        let mut slot = h.idle.write().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            drop(slot);
            return f();
        }
        // SAFETY: only the lifetime is changed. `ClearIdle` below removes
        // the reference when this function returns or unwinds, taking the
        // write lock, which waits for any piece under way (each runs under
        // the read lock); so it is never used after `idle`'s borrow ends.
        let idle = unsafe { std::mem::transmute::<&(dyn Fn() -> bool + Sync), Idle>(idle) };
        *slot = Some((idle, thread::current().id()));
        h.idle_broken.store(false, Ordering::Relaxed);
        *lock(&h.idle_panic) = None;
        // Counted only once the lock is released: a helper that read the
        // new count while this thread still held the lock would find its
        // `try_read` refused, take that for "no idle work", and wait for a
        // count that never comes (a test hung so under qemu).
        drop(slot);
        h.idle_set.fetch_add(1, Ordering::Release);
    }
    if let Some(worker) = h.thread.get() {
        worker.unpark();
    }
    let clear = ClearIdle(h);
    let r = f();
    drop(clear);
    if let Some(payload) = lock(&h.idle_panic).take() {
        panic::resume_unwind(payload);
    }
    r
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::mpsc;

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

    /// The process's helper has one slot for idle work: tests that set it
    /// take turns (other tests' joins may still run beside them). The tests
    /// below use helpers of their own instead.
    pub(crate) static IDLE_TESTS: Mutex<()> = Mutex::new(());

    /// A helper of the calling test's own: no other test's joins or idle
    /// work reach it, so what runs where is up to the test.
    fn own_helper() -> &'static Helper {
        spawn_helper().expect("a helper thread starts")
    }

    /// Joins on `h` with `b` certainly run on the helper: `a` waits until
    /// `b` has started, which on this thread could only happen after `a`.
    /// (Were the helper never to take `b`, this would wait for ever.)
    fn join_on_helper<RB: Send>(h: &Helper, b: impl FnOnce() -> RB + Send) -> RB {
        let (started, wait) = mpsc::channel();
        let ((), rb) = join_on(
            h,
            || wait.recv().expect("b started"),
            move || {
                let _ = started.send(());
                b()
            },
        );
        rb
    }

    /// Counts of idle pieces done on the test's thread and elsewhere; each
    /// count is sent on its channel when it reaches 3 or 1.
    struct Pieces {
        owner: ThreadId,
        here: AtomicU64,
        elsewhere: AtomicU64,
        first_here: mpsc::Sender<()>,
        third_elsewhere: mpsc::Sender<()>,
        returned: AtomicBool,
        late: AtomicBool,
    }

    impl Pieces {
        /// Does one piece; there is always another.
        fn piece(&self) -> bool {
            if self.returned.load(Ordering::SeqCst) {
                self.late.store(true, Ordering::SeqCst);
            }
            // A receiver that is gone has all it waited for.
            if thread::current().id() == self.owner {
                if self.here.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = self.first_here.send(());
                }
            } else if self.elsewhere.fetch_add(1, Ordering::SeqCst) == 2 {
                let _ = self.third_elsewhere.send(());
            }
            true
        }
    }

    #[test]
    fn idle_work_fills_waits_and_stops_on_return() {
        let h = own_helper();
        let (first_here, here_rx) = mpsc::channel();
        let (third_elsewhere, elsewhere_rx) = mpsc::channel();
        let pieces = Pieces {
            owner: thread::current().id(),
            here: AtomicU64::new(0),
            elsewhere: AtomicU64::new(0),
            first_here,
            third_elsewhere,
            returned: AtomicBool::new(false),
            late: AtomicBool::new(false),
        };
        let idle = || pieces.piece();
        let (a, b) = with_idle_on(h, &idle, || {
            // The helper has no job: it takes pieces.
            elsewhere_rx.recv().expect("pieces on the helper");
            // This thread waits for a helper half that returns only once a
            // piece was done here: it takes pieces meanwhile.
            join_on_helper(h, move || {
                here_rx.recv().expect("a piece done here");
                (1, 2)
            })
        });
        pieces.returned.store(true, Ordering::SeqCst);
        assert_eq!((a, b), (1, 2));
        assert!(pieces.elsewhere.load(Ordering::SeqCst) >= 3);
        assert!(pieces.here.load(Ordering::SeqCst) >= 1);
        // The helper has been between jobs since the return, where it would
        // take a piece if it could.
        assert_eq!(join_on_helper(h, || 4), 4);
        assert_eq!(join_on_helper(h, || 5), 5);
        assert!(
            !pieces.late.load(Ordering::SeqCst),
            "a piece ran after the return"
        );
    }

    #[test]
    fn a_panic_in_idle_work_is_raised_after_the_work() {
        let h = own_helper();
        let (tried, tried_rx) = mpsc::channel();
        let idle = move || -> bool {
            let _ = tried.send(());
            panic!("piece")
        };
        let ran = AtomicBool::new(false);
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            with_idle_on(h, &idle, || {
                // Until the helper has taken a piece.
                tried_rx.recv().expect("the helper took a piece");
                ran.store(true, Ordering::SeqCst);
            })
        }));
        assert!(ran.load(Ordering::SeqCst), "the work itself ran");
        assert!(r.is_err(), "the piece's panic was raised");
        // Idle work works again afterwards; a nested call just runs.
        let count = AtomicU64::new(0);
        let idle = || count.fetch_add(1, Ordering::SeqCst) < 2;
        let v = with_idle_on(h, &idle, || with_idle_on(h, &|| false, || 7));
        assert_eq!(v, 7);
    }

    #[test]
    fn a_panic_on_the_helper_reaches_the_caller() {
        // On whichever thread it runs.
        let r = panic::catch_unwind(|| join(|| 1, || -> i32 { panic!("boom") }));
        assert!(r.is_err());
        // Certainly on the helper.
        let h = own_helper();
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            join_on_helper(h, || -> i32 { panic!("boom") })
        }));
        assert!(r.is_err());
        // The helper still takes halves afterwards.
        let me = thread::current().id();
        assert_ne!(join_on_helper(h, || thread::current().id()), me);
    }
}
