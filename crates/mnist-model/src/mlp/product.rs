//! The matrix products of the network's forward and backward passes.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// `c = a b`. The same shapes and strides give the same bits on a given
/// CPU: the product runs on the calling thread only.
pub(super) fn product(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
) {
    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
}
