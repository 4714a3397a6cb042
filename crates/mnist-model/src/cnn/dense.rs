//! The dense layer's passes over a part's rows, for the convolutional
//! network (the layer itself, [`Dense`], is the perceptron's).

use ndarray::{Array1, Array2, ArrayView2, Axis};

use crate::error::{Error, Result};
use crate::gemm::product;
use crate::mlp::Dense;

use super::fit;

impl Dense {
    /// The forward pass over a batch, one row an example: `out = x W + b`
    /// (no activation).
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when the rows of `x` are not the
    /// layer's inputs.
    pub fn forward(&self, x: ArrayView2<'_, f32>, out: &mut Array2<f32>) -> Result<()> {
        let w = self.weights();
        if x.ncols() != w.nrows() {
            return Err(Error::DimensionMismatch {
                what: "dense layer inputs",
                expected: w.nrows(),
                found: x.ncols(),
            });
        }
        fit(out, x.nrows(), w.ncols());
        product(x, w, out.view_mut());
        *out += self.biases();
        Ok(())
    }

    /// The backward pass after [`forward`](Self::forward) on `x`: from the
    /// gradient `dout` at the output, the weights' gradient `x^T dout`
    /// into `dw`, the biases' (the column sums of `dout`) into `db`, and
    /// the gradient at the input, `dout W^T`, into `dx` when given.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `x` or `dout` do not fit the layer
    /// or each other.
    pub fn backward(
        &self,
        x: ArrayView2<'_, f32>,
        dout: ArrayView2<'_, f32>,
        dw: &mut Array2<f32>,
        db: &mut Array1<f32>,
        dx: Option<&mut Array2<f32>>,
    ) -> Result<()> {
        let w = self.weights();
        if x.ncols() != w.nrows() {
            return Err(Error::DimensionMismatch {
                what: "dense layer inputs",
                expected: w.nrows(),
                found: x.ncols(),
            });
        }
        if dout.dim() != (x.nrows(), w.ncols()) {
            return Err(Error::DimensionMismatch {
                what: "dense layer output gradient rows",
                expected: x.nrows(),
                found: dout.nrows(),
            });
        }
        self.backward_given(x, dout, dw, db, dx.map(|dx| (dx, w.t())))
    }

    /// [`backward`](Self::backward) with the transposed weights given
    /// along with `dx` (`W^T`, in any layout: a standard one saves the
    /// product a copy; the same bits either way). The shapes are not
    /// checked here: the network passes its own buffers, and a mismatch
    /// would panic in the product.
    pub(crate) fn backward_given(
        &self,
        x: ArrayView2<'_, f32>,
        dout: ArrayView2<'_, f32>,
        dw: &mut Array2<f32>,
        db: &mut Array1<f32>,
        dx: Option<(&mut Array2<f32>, ArrayView2<'_, f32>)>,
    ) -> Result<()> {
        let w = self.weights();
        fit(dw, w.nrows(), w.ncols());
        product(x.t(), dout, dw.view_mut());
        *db = dout.sum_axis(Axis(0));
        if let Some((dx, wt)) = dx {
            fit(dx, x.nrows(), w.nrows());
            product(dout, wt, dx.view_mut());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cnn::conv::tests::random;

    #[test]
    fn forward_and_backward_match_loops_and_finite_differences() {
        let (n, i, o) = (3, 6, 4);
        let layer = Dense::new(random(i, o, 1), random(1, o, 2).row(0).to_owned()).unwrap();
        let x = random(n, i, 3);
        let r = random(n, o, 4);
        let mut out = Array2::zeros((0, 0));
        layer.forward(x.view(), &mut out).unwrap();
        for row in 0..n {
            for col in 0..o {
                let want: f64 = f64::from(layer.biases()[col])
                    + (0..i)
                        .map(|p| f64::from(x[[row, p]]) * f64::from(layer.weights()[[p, col]]))
                        .sum::<f64>();
                assert!((f64::from(out[[row, col]]) - want).abs() < 1e-5);
            }
        }
        let (mut dw, mut db, mut dx) = (
            Array2::zeros((0, 0)),
            Array1::zeros(0),
            Array2::zeros((0, 0)),
        );
        layer
            .backward(x.view(), r.view(), &mut dw, &mut db, Some(&mut dx))
            .unwrap();
        let loss = |layer: &Dense, x: &Array2<f32>| -> f64 {
            let mut out = Array2::zeros((0, 0));
            layer.forward(x.view(), &mut out).unwrap();
            out.iter()
                .zip(&r)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum()
        };
        let eps = 1e-2f32;
        let diff = |f: &dyn Fn(f32) -> f64| (f(eps) - f(-eps)) / (2.0 * f64::from(eps));
        for p in 0..i {
            for q in 0..o {
                let numeric = diff(&|e| {
                    let (mut w, b) = (layer.weights().to_owned(), layer.biases().clone());
                    w[[p, q]] += e;
                    loss(&Dense::new(w, b).unwrap(), &x)
                });
                assert!((numeric - f64::from(dw[[p, q]])).abs() < 1e-3, "dw");
            }
        }
        for q in 0..o {
            let numeric = diff(&|e| {
                let (w, mut b) = (layer.weights().to_owned(), layer.biases().clone());
                b[q] += e;
                loss(&Dense::new(w, b).unwrap(), &x)
            });
            assert!((numeric - f64::from(db[q])).abs() < 1e-3, "db");
        }
        for row in 0..n {
            for p in 0..i {
                let numeric = diff(&|e| {
                    let mut x = x.clone();
                    x[[row, p]] += e;
                    loss(&layer, &x)
                });
                assert!((numeric - f64::from(dx[[row, p]])).abs() < 1e-3, "dx");
            }
        }
        assert!(layer
            .backward(x.view(), r.t(), &mut dw, &mut db, None)
            .is_err());
    }
}
