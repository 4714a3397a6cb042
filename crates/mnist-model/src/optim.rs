//! The optimiser shared by the MLP and the CNN: checks of its settings and
//! of a step's inputs, and one SGD update with momentum and weight decay.

use ndarray::{Array1, Array2, ArrayView2, Zip};

use crate::error::{Error, Result};

/// Checks the settings of SGD with momentum and weight decay.
pub(crate) fn check_optimiser(momentum: f32, weight_decay: f32) -> Result<()> {
    if !(0.0..1.0).contains(&momentum) {
        return Err(Error::InvalidParameter {
            name: "momentum",
            value: momentum.to_string(),
            reason: "must be in [0, 1)",
        });
    }
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(Error::InvalidParameter {
            name: "weight decay",
            value: weight_decay.to_string(),
            reason: "must be finite and non-negative",
        });
    }
    Ok(())
}

/// Checks a step's one-hot targets (`rows x classes`) and learning rate.
///
/// # Errors
/// [`Error::DimensionMismatch`] or [`Error::InvalidParameter`].
pub(crate) fn check_step(
    y: &ArrayView2<'_, f32>,
    rows: usize,
    classes: usize,
    lr: f32,
) -> Result<()> {
    if y.dim() != (rows, classes) {
        return Err(Error::DimensionMismatch {
            what: "one-hot targets (rows x classes)",
            expected: rows * classes,
            found: y.len(),
        });
    }
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Error::InvalidParameter {
            name: "learning rate",
            value: lr.to_string(),
            reason: "must be finite and positive",
        });
    }
    Ok(())
}

/// One update of SGD with momentum and weight decay on each layer's
/// `(weights, biases)`: `v = momentum * v + g (+ weight_decay * W for the
/// weights)`, then `W -= lr * v`.
///
/// # Errors
/// [`Error::Diverged`] (with the step's `loss`) when a value is no longer
/// finite.
pub(crate) fn momentum_update(
    params: Vec<(&mut Array2<f32>, &mut Array1<f32>)>,
    grads: &[(Array2<f32>, Array1<f32>)],
    velocity: &mut [(Array2<f32>, Array1<f32>)],
    (momentum, weight_decay, lr): (f32, f32, f32),
    loss: f64,
) -> Result<()> {
    let (mu, wd) = (momentum, weight_decay);
    let mut finite = true;
    for (((w, b), (gw, gb)), (vw, vb)) in params.into_iter().zip(grads).zip(velocity) {
        Zip::from(&mut *w)
            .and(vw)
            .and(gw)
            .for_each(|w, v, &g| update_weight(w, v, g, (mu, wd, lr)));
        Zip::from(&mut *b)
            .and(vb)
            .and(gb)
            .for_each(|b, v, &g| update_bias(b, v, g, (mu, wd, lr)));
        finite &= w.sum().is_finite() && b.sum().is_finite();
    }
    if finite {
        Ok(())
    } else {
        Err(Error::Diverged {
            loss,
            weights_finite: false,
        })
    }
}

/// Checks velocities read back for a trainer whose own are `current`.
pub(crate) fn check_velocity(
    velocity: &[(Array2<f32>, Array1<f32>)],
    current: &[(Array2<f32>, Array1<f32>)],
) -> Result<()> {
    if velocity.len() != current.len() {
        return Err(Error::DimensionMismatch {
            what: "velocity layers",
            expected: current.len(),
            found: velocity.len(),
        });
    }
    for ((w, b), (ow, ob)) in velocity.iter().zip(current) {
        if w.dim() != ow.dim() || b.len() != ob.len() {
            return Err(Error::DimensionMismatch {
                what: "velocity values of a layer",
                expected: ow.len() + ob.len(),
                found: w.len() + b.len(),
            });
        }
        if let Some(((feature, class), &value)) = w.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteWeight {
                feature,
                class,
                value,
            });
        }
        if let Some(&value) = b.iter().find(|v| !v.is_finite()) {
            return Err(Error::NonFiniteWeight {
                feature: w.nrows(),
                class: 0,
                value,
            });
        }
    }
    Ok(())
}

/// The settings of one momentum update: `(momentum, weight_decay, lr)`.
pub(crate) type Rates = (f32, f32, f32);

/// One weight's update in [`momentum_update`]: `v = momentum * v + g +
/// weight_decay * w`, then `w -= lr * v`.
#[inline(always)]
pub(crate) fn update_weight(w: &mut f32, v: &mut f32, g: f32, (mu, wd, lr): Rates) {
    *v = mu * *v + g + wd * *w;
    *w -= lr * *v;
}

/// One bias's update in [`momentum_update`] (biases do not decay):
/// `v = momentum * v + g`, then `b -= lr * v`.
#[inline(always)]
pub(crate) fn update_bias(b: &mut f32, v: &mut f32, g: f32, (mu, _, lr): Rates) {
    *v = mu * *v + g;
    *b -= lr * *v;
}
