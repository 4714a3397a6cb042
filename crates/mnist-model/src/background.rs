//! Work done in the moments the threads of a training step would wait.

use crate::pool;

/// Work in small pieces, done by threads that would otherwise wait (see
/// [`with_background`]). A piece under way is never interrupted, so pieces
/// should be short: a few microseconds.
///
/// [`PendingEvaluation`](crate::PendingEvaluation) is such work: the
/// evaluation of the model after one epoch, done during the next.
///
/// # Examples
///
/// ```
/// use mnist_model::Background;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// /// Counts up to a limit, one piece at a time.
/// struct Count(AtomicUsize, usize);
///
/// impl Background for Count {
///     fn piece(&self) -> bool {
///         self.0.fetch_add(1, Ordering::Relaxed) < self.1
///     }
/// }
///
/// let work = Count(AtomicUsize::new(0), 2);
/// assert!(work.piece() && work.piece() && !work.piece());
/// ```
pub trait Background: Sync {
    /// Does one piece of the work and returns `true`, or returns `false`
    /// when none is left. May be called from several threads at once.
    fn piece(&self) -> bool;
}

/// Runs `f`, and meanwhile does pieces of `work` in the moments the
/// crate's threads would wait: the helper thread of the training steps
/// while it has no half of a batch to compute (as this thread does the
/// weight update, takes the next batch or shuffles), and this thread while
/// it waits in a step for the helper's half. Nothing `f` computes depends on
/// it. Pieces are never done after this returns; a panic in one is raised
/// here, after `f`. On one CPU, or when other background work is already
/// under way, `f` just runs.
///
/// # Examples
///
/// ```
/// use mnist_model::{with_background, Background};
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// struct Count(AtomicUsize, usize);
///
/// impl Background for Count {
///     fn piece(&self) -> bool {
///         self.0.fetch_add(1, Ordering::Relaxed) < self.1
///     }
/// }
///
/// let work = Count(AtomicUsize::new(0), 1_000);
/// let sum = with_background(&work, || (1..=100u32).sum::<u32>());
/// assert_eq!(sum, 5050);
/// // However many pieces were done meanwhile, the rest are still there.
/// while work.piece() {}
/// ```
pub fn with_background<B, R>(work: &B, f: impl FnOnce() -> R) -> R
where
    B: Background + ?Sized,
{
    pool::with_idle(&|| work.piece(), f)
}
