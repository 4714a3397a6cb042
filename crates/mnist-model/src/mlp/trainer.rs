//! [`MlpTrainer`]: SGD with momentum and weight decay for an [`Mlp`], on
//! every core, with the same bits for any number of threads.
//!
//! A step splits its batch into parts of [`PART_ROWS`] rows (the number of
//! parts depends on the batch size only). Each part runs its forward and
//! backward pass into its own buffers, summing (not averaging) the
//! gradients of its rows; the parts run on up to `threads` threads
//! ([`run_parts`]). The parts' gradients are then added in part order,
//! divided by the batch's rows, and applied by [`momentum_update`]. No
//! value ever depends on which thread computed it, so 1, 2 or 16 threads
//! give the same weights, bit for bit.

use std::ops::Range;

use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2, Zip};

use super::product::product;
use super::{Dense, Mlp, Work};
use crate::error::{Error, Result};
use crate::optim::{check_optimiser, check_step, check_velocity, momentum_update};
use crate::parts::{default_threads, run_parts};

/// Rows of a batch in one part of a step: the unit of work handed to a
/// thread, and of the fixed order in which gradients are added up.
pub(crate) const PART_ROWS: usize = 64;

/// SGD with momentum and L2 weight decay for an [`Mlp`], on every core
/// with the same bits for any number of threads.
///
/// Each step: gradient `g` of the mean loss over the batch (the parts'
/// summed gradients added in their order, divided by the rows), plus
/// `weight_decay * W` for the weights (not the biases); velocity
/// `v = momentum * v + g`; `W -= lr * v`. With `momentum` 0 and
/// `weight_decay` 0 it is plain SGD on the mean gradient.
#[derive(Debug)]
pub struct MlpTrainer {
    momentum: f32,
    weight_decay: f32,
    threads: usize,
    velocity: Vec<(Array2<f32>, Array1<f32>)>,
    /// The batch's gradient: the parts' added up, divided by the rows.
    grads: Vec<(Array2<f32>, Array1<f32>)>,
    works: Vec<PartWork>,
}

/// The buffers of one part: its forward pass, the gradient at its hidden
/// layer, and its gradients (sums over its rows).
#[derive(Debug)]
struct PartWork {
    forward: Work,
    dh: Array2<f32>,
    grads: Vec<(Array2<f32>, Array1<f32>)>,
    /// The loss summed over the part's rows.
    loss: f64,
}

impl MlpTrainer {
    /// A trainer for `model`'s shape, on every core.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when `momentum` is not in `[0, 1)` or
    /// `weight_decay` is negative or not finite.
    pub fn new(model: &Mlp, momentum: f32, weight_decay: f32) -> Result<Self> {
        check_optimiser(momentum, weight_decay)?;
        Ok(Self {
            momentum,
            weight_decay,
            threads: default_threads(),
            velocity: zeros_like(model),
            grads: zeros_like(model),
            works: Vec::new(),
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
    /// finite and positive, and [`Error::Diverged`] when the loss or a
    /// weight becomes non-finite (the model then holds the broken weights).
    pub fn step(
        &mut self,
        model: &mut Mlp,
        x: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
        lr: f32,
    ) -> Result<f64> {
        model.check_input(&x)?;
        check_step(&y, x.nrows(), model.classes(), lr)?;
        let n = x.nrows();
        let parts = n.div_ceil(PART_ROWS);
        while self.works.len() < parts {
            self.works.push(PartWork::new(model));
        }
        let works = &mut self.works[..parts];
        let net = &*model;
        run_parts(works, self.threads, |i, work| {
            let rows = part_rows(i, n);
            work.gradient(net, x.slice(s![rows.clone(), ..]), y.slice(s![rows, ..]));
        });
        // Everything below adds the parts in their order.
        let works = &self.works[..parts];
        let loss = works.iter().fold(0.0, |sum, w| sum + w.loss) / n.max(1) as f64;
        if !loss.is_finite() {
            return Err(Error::Diverged {
                loss,
                weights_finite: true,
            });
        }
        for (l, (gw, gb)) in self.grads.iter_mut().enumerate() {
            add_parts(
                gw.as_slice_mut(),
                works.iter().map(|w| w.grads[l].0.as_slice()),
                n,
            );
            add_parts(
                gb.as_slice_mut(),
                works.iter().map(|w| w.grads[l].1.as_slice()),
                n,
            );
        }
        momentum_update(
            model.layers.iter_mut().map(Dense::parts_mut).collect(),
            &self.grads,
            &mut self.velocity,
            (self.momentum, self.weight_decay, lr),
            loss,
        )?;
        Ok(loss)
    }

    /// The velocities, one `(weights, biases)` pair per layer (for
    /// checkpoints).
    pub fn velocity(&self) -> &[(Array2<f32>, Array1<f32>)] {
        &self.velocity
    }

    /// Restores velocities saved from [`velocity`](Self::velocity), so a
    /// resumed run continues exactly where it stopped.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when the shapes are not this trainer's,
    /// [`Error::NonFiniteWeight`] for a NaN or infinite value.
    pub fn set_velocity(&mut self, velocity: Vec<(Array2<f32>, Array1<f32>)>) -> Result<()> {
        check_velocity(&velocity, &self.velocity)?;
        self.velocity = velocity;
        Ok(())
    }
}

/// Zeros of the shapes of `model`'s `(weights, biases)`, layer by layer.
fn zeros_like(model: &Mlp) -> Vec<(Array2<f32>, Array1<f32>)> {
    model
        .layers
        .iter()
        .map(|l| (Array2::zeros(l.w.raw_dim()), Array1::zeros(l.b.len())))
        .collect()
}

/// The rows of part `i` of a batch of `n` rows.
fn part_rows(i: usize, n: usize) -> Range<usize> {
    i * PART_ROWS..((i + 1) * PART_ROWS).min(n)
}

/// `total = (parts[0] + parts[1] + ...) / n`, element by element, the
/// parts added in their order. Works in blocks that stay in the L1 cache.
fn add_parts<'a>(
    total: Option<&mut [f32]>,
    parts: impl Iterator<Item = Option<&'a [f32]>> + Clone,
    n: usize,
) {
    const BLOCK: usize = 2048;
    let Some(total) = total else {
        unreachable!("gradients are owned arrays in standard layout")
    };
    let n = n as f32;
    for (b, block) in total.chunks_mut(BLOCK).enumerate() {
        let range = b * BLOCK..b * BLOCK + block.len();
        let mut parts = parts.clone().map(|p| p.map(|p| &p[range.clone()]));
        match parts.next() {
            Some(Some(first)) => block.copy_from_slice(first),
            _ => unreachable!("a step has at least one part in standard layout"),
        }
        for part in parts.flatten() {
            for (t, &g) in block.iter_mut().zip(part) {
                *t += g;
            }
        }
        for t in block.iter_mut() {
            *t /= n;
        }
    }
}

impl PartWork {
    fn new(model: &Mlp) -> Self {
        Self {
            forward: Work::default(),
            dh: Array2::zeros((0, 0)),
            grads: zeros_like(model),
            loss: 0.0,
        }
    }

    /// Forward and backward pass over one part's rows `x` with one-hot
    /// targets `y`: the summed loss and gradients of its rows.
    fn gradient(&mut self, net: &Mlp, x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) {
        let rows = x.nrows();
        net.forward(x, &mut self.forward);
        let mut dz = self.forward.p.slice_mut(s![..rows, ..]);
        self.loss = net.loss_sum(dz.view(), y);
        // For both heads the gradient at the logits is p - y (summed over
        // the rows, not averaged).
        Zip::from(&mut dz).and(&y).for_each(|d, &y| *d -= y);
        let dz = self.forward.p.slice(s![..rows, ..]);
        match net.layers.as_slice() {
            [_, out] => {
                let h = self.forward.h.slice(s![..rows, ..]);
                let (gw2, gb2) = &mut self.grads[1];
                product(h.t(), dz, gw2.view_mut());
                column_sums(dz, gb2);
                if self.dh.dim() != h.dim() {
                    self.dh = Array2::zeros(h.dim());
                }
                let mut dh = self.dh.view_mut();
                product(dz, out.w.t(), dh.view_mut());
                let (gw1, gb1) = &mut self.grads[0];
                relu_backward(dh.view_mut(), h, gb1);
                // The first layer's input gradient is never needed.
                product(x.t(), self.dh.view(), gw1.view_mut());
            }
            [_] => {
                let (gw, gb) = &mut self.grads[0];
                product(x.t(), dz, gw.view_mut());
                column_sums(dz, gb);
            }
            _ => unreachable!("constructors allow one or two layers"),
        }
    }
}

/// `sums[j] = a[0, j] + a[1, j] + ...`, the rows added in their order.
fn column_sums(a: ArrayView2<'_, f32>, sums: &mut Array1<f32>) {
    sums.fill(0.0);
    for row in a.rows() {
        *sums += &row;
    }
}

/// The ReLU's backward pass in one sweep: zeroes `dh` where the unit was
/// off (`h <= 0`), and sums the masked rows into `sums` (the hidden
/// biases' gradient), the rows in their order.
fn relu_backward(mut dh: ArrayViewMut2<'_, f32>, h: ArrayView2<'_, f32>, sums: &mut Array1<f32>) {
    sums.fill(0.0);
    for (mut d, h) in dh.rows_mut().into_iter().zip(h.rows()) {
        Zip::from(&mut d)
            .and(&h)
            .and(&mut *sums)
            .for_each(|d, &h, s| {
                if h <= 0.0 {
                    *d = 0.0;
                }
                *s += *d;
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::Head;
    use crate::mlp::evaluate_mlp;
    use rand::Rng;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(3)
    }

    /// Four well separated classes in 6 features (the last a bias of 1).
    fn blobs(n: usize) -> (Array2<f32>, Array2<f32>, Vec<u8>) {
        let mut r = rng();
        let mut x = Array2::zeros((n, 6));
        let mut y = Array2::zeros((n, 4));
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let c = i % 4;
            for j in 0..5 {
                let noise: f32 = r.sample::<f32, _>(StandardNormal) * 0.3;
                x[[i, j]] = if j == c { 2.0 } else { 0.0 } + noise;
            }
            x[[i, 5]] = 1.0;
            y[[i, c]] = 1.0;
            labels.push(c as u8);
        }
        (x, y, labels)
    }

    /// The gradient of the mean loss by central differences in f64 terms,
    /// against the step's update with lr = 1, no momentum, no decay.
    #[test]
    fn gradient_matches_finite_differences() {
        for (hidden, head) in [
            (None, Head::Softmax),
            (Some(5), Head::Softmax),
            (Some(5), Head::Sigmoid),
        ] {
            let (x, y, _) = blobs(12);
            let model = Mlp::new(6, hidden, 4, head, false, &mut rng()).unwrap();
            let mut stepped = model.clone();
            let mut t = MlpTrainer::new(&model, 0.0, 0.0).unwrap();
            t.step(&mut stepped, x.view(), y.view(), 1.0).unwrap();
            let loss_at = |m: &Mlp| {
                let mut w = Work::default();
                let p = m.forward(x.view(), &mut w).to_owned();
                m.loss(p.view(), y.view())
            };
            for layer in 0..model.layers.len() {
                for (i, j) in [(0, 0), (1, 2), (5, 3)] {
                    let (i, j) = (
                        i % model.layers[layer].w.nrows(),
                        j % model.layers[layer].w.ncols(),
                    );
                    let analytic =
                        f64::from(model.layers[layer].w[[i, j]] - stepped.layers[layer].w[[i, j]]);
                    let eps = 1e-2f32;
                    let mut plus = model.clone();
                    plus.layers[layer].w[[i, j]] += eps;
                    let mut minus = model.clone();
                    minus.layers[layer].w[[i, j]] -= eps;
                    let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(eps));
                    assert!(
                        (analytic - numeric).abs() < 2e-3 + 2e-2 * numeric.abs(),
                        "{head} hidden {hidden:?} layer {layer} ({i},{j}): {analytic} vs {numeric}"
                    );
                }
            }
        }
    }

    #[test]
    fn learns_separable_classes_with_each_head_and_shape() {
        for (hidden, head) in [
            (None, Head::Softmax),
            (None, Head::Sigmoid),
            (Some(16), Head::Softmax),
        ] {
            let (x, y, labels) = blobs(400);
            let mut model = Mlp::new(6, hidden, 4, head, true, &mut rng()).unwrap();
            let mut t = MlpTrainer::new(&model, 0.9, 1e-4).unwrap();
            let first = t.step(&mut model, x.view(), y.view(), 0.1).unwrap();
            let mut last = first;
            for _ in 0..200 {
                last = t.step(&mut model, x.view(), y.view(), 0.1).unwrap();
            }
            assert!(last < first / 5.0, "{head} {hidden:?}: {first} -> {last}");
            let e = evaluate_mlp(&model, x.view(), &labels).unwrap();
            assert!(e.accuracy > 0.99, "{head} {hidden:?}: {}", e.accuracy);
            assert_eq!(model.predict(x.view()).unwrap()[..4], [0, 1, 2, 3]);
        }
    }

    #[test]
    fn rejects_bad_settings_and_shapes() {
        let model = Mlp::new(6, None, 4, Head::Softmax, true, &mut rng()).unwrap();
        assert!(MlpTrainer::new(&model, 1.0, 0.0).is_err());
        assert!(MlpTrainer::new(&model, 0.5, -1.0).is_err());
        let mut t = MlpTrainer::new(&model, 0.5, 0.0).unwrap();
        let mut m = model.clone();
        let x = Array2::<f32>::zeros((3, 5));
        let y = Array2::<f32>::zeros((3, 4));
        assert!(matches!(
            t.step(&mut m, x.view(), y.view(), 0.1),
            Err(Error::DimensionMismatch { .. })
        ));
        assert!(Mlp::new(6, Some(0), 4, Head::Softmax, true, &mut rng()).is_err());
    }

    #[test]
    fn same_seed_same_bits() {
        let (x, y, _) = blobs(64);
        let run = || {
            let mut m = Mlp::new(6, Some(8), 4, Head::Softmax, false, &mut rng()).unwrap();
            let mut t = MlpTrainer::new(&m, 0.9, 1e-3).unwrap();
            for _ in 0..5 {
                t.step(&mut m, x.view(), y.view(), 0.05).unwrap();
            }
            m.to_json_string()
        };
        assert_eq!(run(), run());
    }

    /// Weights and velocities as bits, layer by layer.
    fn bits(m: &Mlp, t: &MlpTrainer) -> Vec<u32> {
        let params = m.layers.iter().map(|l| (&l.w, &l.b));
        let velocity = t.velocity.iter().map(|(w, b)| (w, b));
        params
            .chain(velocity)
            .flat_map(|(w, b)| w.iter().chain(b).map(|v| v.to_bits()).collect::<Vec<_>>())
            .collect()
    }

    #[test]
    fn any_number_of_threads_gives_the_same_bits() {
        // Three full parts and a short one.
        let (x, y, _) = blobs(3 * PART_ROWS + 5);
        for (hidden, head) in [(Some(16), Head::Softmax), (None, Head::Sigmoid)] {
            let start = Mlp::new(6, hidden, 4, head, false, &mut rng()).unwrap();
            let trained: Vec<Vec<u32>> = [1, 2, 3, 16]
                .into_iter()
                .map(|threads| {
                    let mut m = start.clone();
                    let mut t = MlpTrainer::new(&m, 0.9, 1e-3)
                        .unwrap()
                        .with_threads(threads);
                    for _ in 0..4 {
                        t.step(&mut m, x.view(), y.view(), 0.05).unwrap();
                    }
                    bits(&m, &t)
                })
                .collect();
            let untrained = bits(&start, &MlpTrainer::new(&start, 0.9, 1e-3).unwrap());
            assert_ne!(trained[0], untrained, "the steps changed the weights");
            for other in &trained[1..] {
                assert!(
                    other == &trained[0],
                    "{head} {hidden:?}: threads changed the bits"
                );
            }
        }
    }

    /// Two steps over several parts against a plain f64 implementation of
    /// the same maths on the whole batch.
    #[test]
    fn steps_match_a_plain_reference() {
        let (x, y, _) = blobs(2 * PART_ROWS + 9);
        let (mu, wd, lr) = (0.9f32, 1e-3f32, 0.1f32);
        for head in [Head::Softmax, Head::Sigmoid] {
            let start = Mlp::new(6, Some(5), 4, head, false, &mut rng()).unwrap();
            let mut m = start.clone();
            let mut t = MlpTrainer::new(&m, mu, wd).unwrap().with_threads(2);
            // The reference: weights, biases and velocities in f64.
            let f = |a: &Array2<f32>| a.mapv(f64::from);
            let (mut w1, mut w2) = (f(&start.layers[0].w), f(&start.layers[1].w));
            let (mut b1, mut b2) = (
                start.layers[0].b.mapv(f64::from),
                start.layers[1].b.mapv(f64::from),
            );
            let (mut vw1, mut vw2) = (w1.mapv(|_| 0.0), w2.mapv(|_| 0.0));
            let (mut vb1, mut vb2) = (b1.mapv(|_| 0.0), b2.mapv(|_| 0.0));
            let (xs, ys) = (f(&x), f(&y));
            let n = x.nrows() as f64;
            for _ in 0..2 {
                t.step(&mut m, x.view(), y.view(), lr).unwrap();
                let h = (xs.dot(&w1) + &b1).mapv(|v| v.max(0.0));
                let mut p = h.dot(&w2) + &b2;
                for mut row in p.rows_mut() {
                    match head {
                        Head::Softmax => {
                            let max = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                            row.mapv_inplace(|v| (v - max).exp());
                            let sum = row.sum();
                            row.mapv_inplace(|v| v / sum);
                        }
                        Head::Sigmoid => row.mapv_inplace(|v| 1.0 / (1.0 + (-v).exp())),
                    }
                }
                let dz = (p - &ys) / n;
                let gw2 = h.t().dot(&dz);
                let gb2 = dz.sum_axis(ndarray::Axis(0));
                let mut dh = dz.dot(&w2.t());
                Zip::from(&mut dh).and(&h).for_each(|d, &h| {
                    if h <= 0.0 {
                        *d = 0.0;
                    }
                });
                let gw1 = xs.t().dot(&dh);
                let gb1 = dh.sum_axis(ndarray::Axis(0));
                let (mu, wd, lr) = (f64::from(mu), f64::from(wd), f64::from(lr));
                vw1 = &vw1 * mu + gw1 + &w1 * wd;
                vw2 = &vw2 * mu + gw2 + &w2 * wd;
                vb1 = &vb1 * mu + gb1;
                vb2 = &vb2 * mu + gb2;
                w1 = &w1 - &vw1 * lr;
                w2 = &w2 - &vw2 * lr;
                b1 = &b1 - &vb1 * lr;
                b2 = &b2 - &vb2 * lr;
            }
            let close = |what: &str, got: ArrayView2<'_, f32>, want: &Array2<f64>| {
                Zip::from(&got).and(want).for_each(|&g, &w| {
                    assert!((f64::from(g) - w).abs() < 1e-5, "{head} {what}: {g} vs {w}");
                });
            };
            close("w1", m.layers[0].w.view(), &w1);
            close("w2", m.layers[1].w.view(), &w2);
            close(
                "b1",
                m.layers[0].b.view().insert_axis(ndarray::Axis(0)),
                &b1.insert_axis(ndarray::Axis(0)),
            );
            close(
                "b2",
                m.layers[1].b.view().insert_axis(ndarray::Axis(0)),
                &b2.insert_axis(ndarray::Axis(0)),
            );
            close("velocity w1", t.velocity[0].0.view(), &vw1);
        }
    }
}
