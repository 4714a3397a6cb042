//! The rectifier, `max(0, z)`, in place.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

use crate::error::{Error, Result};

/// The rectifier, `max(0, z)`, applied in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relu;

impl Relu {
    /// The forward pass: every value `v` of `z` becomes `max(0, v)`.
    pub fn forward(&self, z: ArrayViewMut2<'_, f32>) {
        Zip::from(z).for_each(|v| *v = v.max(0.0));
    }

    /// The backward pass: `dz`, the gradient at the output `out` of
    /// [`forward`](Self::forward), becomes the gradient at its input (0
    /// where the output is 0).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `dz` and `out` differ in shape.
    pub fn backward(&self, out: ArrayView2<'_, f32>, dz: ArrayViewMut2<'_, f32>) -> Result<()> {
        if out.dim() != dz.dim() {
            return Err(Error::DimensionMismatch {
                what: "rectifier gradient values",
                expected: out.len(),
                found: dz.len(),
            });
        }
        // A select, not a branch: the signs are as good as random.
        Zip::from(dz)
            .and(out)
            .for_each(|d, &o| *d = if o > 0.0 { *d } else { 0.0 });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cnn::conv::tests::random;

    #[test]
    fn forward_and_backward_match_the_definition_and_finite_differences() {
        let z = random(5, 7, 1);
        let r = random(5, 7, 2);
        let mut out = z.clone();
        Relu.forward(out.view_mut());
        let mut dz = r.clone();
        Relu.backward(out.view(), dz.view_mut()).unwrap();
        let eps = 1e-3f32;
        for ((&z, &o), (&r, &d)) in z.iter().zip(&out).zip(r.iter().zip(&dz)) {
            assert_eq!(o, if z > 0.0 { z } else { 0.0 });
            let f = |v: f32| f64::from(v.max(0.0)) * f64::from(r);
            let numeric = (f(z + eps) - f(z - eps)) / (2.0 * f64::from(eps));
            assert!((numeric - f64::from(d)).abs() < 1e-3, "{numeric} {d}");
        }
        assert!(Relu
            .backward(out.view(), dz.slice_mut(ndarray::s![1.., ..]))
            .is_err());
    }
}
