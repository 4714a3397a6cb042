//! SGD with momentum for the convolutional network, on every core with
//! the same bits for any number of threads.

use ndarray::{s, Array1, Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::optim::check_step;
use crate::parts::{default_threads, run_parts};

use super::{part_rows, Cnn, PartWork, PART};

/// SGD with momentum and L2 weight decay for a [`Cnn`], on all cores with
/// the same bits for any number of threads.
///
/// Each step: the gradient `g` of the mean loss over the batch (the sum of
/// the parts' gradients, added in their order), plus `weight_decay * W`
/// for the weights (not the biases); `v = momentum * v + g`; `W -= lr * v`.
#[derive(Debug)]
pub struct CnnTrainer {
    momentum: f32,
    weight_decay: f32,
    threads: usize,
    velocity: Vec<(Array2<f32>, Array1<f32>)>,
    works: Vec<PartWork>,
    /// The dense layers' weights transposed, made once a step.
    transposed: Vec<Array2<f32>>,
}

impl CnnTrainer {
    /// A trainer for `model`'s shape on every core.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when `momentum` is not in `[0, 1)` or
    /// `weight_decay` is negative or not finite.
    pub fn new(model: &Cnn, momentum: f32, weight_decay: f32) -> Result<Self> {
        crate::optim::check_optimiser(momentum, weight_decay)?;
        Ok(Self {
            momentum,
            weight_decay,
            threads: default_threads(),
            velocity: model
                .parameters()
                .iter()
                .map(|(w, b)| (Array2::zeros(w.raw_dim()), Array1::zeros(b.len())))
                .collect(),
            works: Vec::new(),
            transposed: Vec::new(),
        })
    }

    /// Uses `threads` threads (at least 1) instead of every core; the
    /// results do not change.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// One step on the batch `x` with one-hot targets `y`; returns the
    /// batch's mean loss before the update.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] for inputs or targets of the wrong
    /// shape, [`Error::InvalidParameter`] for a learning rate that is not
    /// finite and positive, [`Error::Diverged`] when the loss or a weight
    /// becomes non-finite.
    pub fn step(
        &mut self,
        model: &mut Cnn,
        x: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
        lr: f32,
    ) -> Result<f64> {
        model.check_input(&x)?;
        check_step(&y, x.nrows(), model.classes(), lr)?;
        let n = x.nrows();
        let parts = n.div_ceil(PART);
        self.works
            .resize_with(self.works.len().max(parts), PartWork::default);
        let scale = 1.0 / n as f32;
        let net = &*model;
        net.transpose_dense(&mut self.transposed);
        let transposed = &self.transposed[..];
        run_parts(&mut self.works[..parts], self.threads, |i, work| {
            let rows = part_rows(i, n);
            let xs = x.slice(s![rows.clone(), ..]);
            work.status = net
                .forward(xs, work)
                .and_then(|()| net.backward(xs, y.slice(s![rows, ..]), scale, work, transposed));
        });
        for work in &mut self.works[..parts] {
            std::mem::replace(&mut work.status, Ok(()))?;
        }
        // The parts added up in their order.
        let (first, rest) = self.works[..parts].split_at_mut(1);
        let total = &mut first[0];
        let mut loss = total.loss;
        for work in rest.iter() {
            loss += work.loss;
            for ((gw, gb), (w, b)) in total.grads.iter_mut().zip(&work.grads) {
                *gw += w;
                *gb += b;
            }
        }
        let loss = loss / n as f64;
        if !loss.is_finite() {
            return Err(Error::Diverged {
                loss,
                weights_finite: true,
            });
        }
        crate::optim::momentum_update(
            model.parameters_mut(),
            &total.grads,
            &mut self.velocity,
            (self.momentum, self.weight_decay, lr),
            loss,
        )?;
        Ok(loss)
    }

    /// The velocities, one `(weights, biases)` pair per layer, convolutions
    /// first (for checkpoints).
    pub fn velocity(&self) -> &[(Array2<f32>, Array1<f32>)] {
        &self.velocity
    }

    /// Restores velocities saved from [`velocity`](Self::velocity).
    ///
    /// # Errors
    /// As `MlpTrainer::set_velocity`.
    pub fn set_velocity(&mut self, velocity: Vec<(Array2<f32>, Array1<f32>)>) -> Result<()> {
        crate::optim::check_velocity(&velocity, &self.velocity)?;
        self.velocity = velocity;
        Ok(())
    }
}
