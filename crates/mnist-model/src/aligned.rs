//! Buffers of `f32` that start on a cache line.
//!
//! The linear kernels load the packed weights 64 bytes at a time (16 lanes
//! of AVX-512, or two loads of AVX2) at multiples of 16 values from the
//! buffer's start; the forward pass loads five such vectors for every 15
//! multiply-adds. The allocator aligns a `Vec<f32>` to 16 bytes only, so
//! each of those loads could straddle two cache lines (the weights of a
//! model started 48 bytes into a line in a run of the post's training).
//! The weights live in these buffers instead: 20 interleaved runs of
//! `mnist train --seed 0`, three series, were 2 to 3% faster (2-core Zen
//! 4, AVX-512), with the same bits. Twenty epochs of `--preset softmax`
//! went the other way, 2 to 3% slower in two series of 12 (faster in 2
//! of 12 each); the post's run is the one kept fast.
//!
//! Other buffers stay in `Vec`s, where aligning them measured slower too,
//! in interleaved runs on the same machine, for reasons not found: the
//! blocks of rows and the gradients (3 to 4% on the post's run, against
//! the weights alone aligned; rows placed 0 bytes into a line were 8%
//! slower than rows placed 16, 32 or 48 bytes in), and the velocity (1 to
//! 2% on the softmax runs).

use std::ops::{Deref, DerefMut};

use aligned_vec::{AVec, ConstAlign};

/// A cache line, and the width of an AVX-512 vector, in bytes.
const LINE: usize = 64;

/// A growable buffer of `f32` whose first value is on a 64-byte boundary.
#[derive(Clone, PartialEq)]
pub(crate) struct Floats(AVec<f32, ConstAlign<LINE>>);

impl Floats {
    /// `len` zeros.
    pub(crate) fn zeros(len: usize) -> Self {
        let mut floats = Self::default();
        floats.resize(len, 0.0);
        floats
    }

    /// Makes the length `len`, filling new places with `value`.
    pub(crate) fn resize(&mut self, len: usize, value: f32) {
        self.0.resize(len, value);
    }
}

impl Default for Floats {
    fn default() -> Self {
        Floats(AVec::new(LINE))
    }
}

impl Deref for Floats {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Floats {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl std::fmt::Debug for Floats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_on_a_cache_line_whatever_their_length() {
        for len in [1, 15, 16, 17, 785, 8000, 100_000] {
            let mut floats = Floats::zeros(len);
            assert_eq!(floats.len(), len);
            assert!(floats.iter().all(|&v| v == 0.0));
            assert_eq!(floats.as_ptr() as usize % LINE, 0, "length {len}");
            assert_eq!(floats.clone().as_ptr() as usize % LINE, 0, "clone of {len}");
            floats.resize(len * 3 + 1, 1.0);
            assert_eq!(floats.as_ptr() as usize % LINE, 0, "grown from {len}");
            assert_eq!(floats[len * 3], 1.0);
        }
    }
}
