//! The product of two schedules.

use super::LrSchedule;

/// `a.lr(epoch) * b.lr(epoch)`: e.g. a cosine schedule times a warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Product<A, B> {
    a: A,
    b: B,
}

impl<A: LrSchedule, B: LrSchedule> Product<A, B> {
    /// The product of `a` and `b`.
    pub fn new(a: A, b: B) -> Self {
        Product { a, b }
    }

    /// The first factor.
    pub fn first(&self) -> &A {
        &self.a
    }

    /// The second factor.
    pub fn second(&self) -> &B {
        &self.b
    }
}

impl<A: LrSchedule, B: LrSchedule> LrSchedule for Product<A, B> {
    fn lr(&self, epoch: usize) -> f64 {
        self.a.lr(epoch) * self.b.lr(epoch)
    }
}
