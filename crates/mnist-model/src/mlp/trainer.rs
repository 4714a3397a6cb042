//! [`MlpTrainer`]: SGD with momentum and weight decay for an [`Mlp`], on
//! every core, with the same bits for any number of threads.
//!
//! A step splits its batch into parts of [`PART_ROWS`] rows (the number of
//! parts depends on the batch size only). Each part runs its forward and
//! backward pass into its own buffers, summing (not averaging) the
//! gradients of its rows; the parts run on up to `threads` threads
//! ([`run_parts`]). Then each weight's gradient is the parts' gradients
//! added in part order and divided by the batch's rows (multiplied by
//! `1 / rows`), and the weight takes the update of `momentum_update`;
//! this second sweep runs on the threads too, split into fixed runs of
//! weights. No value ever depends on which thread computed it, so 1, 2
//! or 16 threads give the same weights, bit for bit.

use std::ops::Range;

use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2, Zip};

use super::{Mlp, Work};
use crate::error::{Error, Result};
use crate::gemm::product;
use crate::kernel;
use crate::optim::{
    check_optimiser, check_step, check_velocity, update_bias, update_weight, Rates,
};
use crate::parts::{default_threads, run_parts};
use crate::rows::RowSource;

/// Rows of a batch in one part of a step: the unit of work handed to a
/// thread, and of the fixed order in which gradients are added up.
///
/// 64 rows make the `--preset mlp` batch of 128 two parts, one for each
/// core of a two-core machine. Minimum step times (batch 128,
/// 785x256x10, 600 steps each, three interleaved runs, AMD EPYC under
/// another agent's builds): 1 thread 1082 to 1089 us with parts of 64,
/// 1136 to 1157 us with parts of 32 (twice the parts' gradients to add,
/// and smaller products); 2 threads 832 to 950 us against 810 to 1049 us,
/// within the noise of the other builds.
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
    works: Vec<PartWork>,
}

/// The inputs of a step: a matrix of rows, or rows made by each part.
enum Input<'a> {
    Matrix(ArrayView2<'a, f32>),
    Rows(&'a (dyn RowSource + 'a)),
}

/// The buffers of one part: its rows (when it makes them), its forward
/// pass, the gradient at its hidden layer, and its gradients (sums over
/// its rows).
#[derive(Debug)]
struct PartWork {
    x: Vec<f32>,
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
        self.step_on(model, Input::Matrix(x), y, lr)
    }

    /// [`step`](Self::step) on the `y.nrows()` rows that `fill` makes
    /// (rows `0..`, each of the model's features): each part makes its
    /// own rows, on its thread, just before it uses them. The same values,
    /// bit for bit, as [`step`](Self::step) on those rows.
    ///
    /// # Errors
    /// As [`step`](Self::step).
    pub fn step_rows(
        &mut self,
        model: &mut Mlp,
        fill: &dyn RowSource,
        y: ArrayView2<'_, f32>,
        lr: f32,
    ) -> Result<f64> {
        self.step_on(model, Input::Rows(fill), y, lr)
    }

    fn step_on(
        &mut self,
        model: &mut Mlp,
        x: Input<'_>,
        y: ArrayView2<'_, f32>,
        lr: f32,
    ) -> Result<f64> {
        let n = match &x {
            Input::Matrix(x) => x.nrows(),
            Input::Rows(_) => y.nrows(),
        };
        check_step(&y, n, model.classes(), lr)?;
        let parts = n.div_ceil(PART_ROWS);
        while self.works.len() < parts {
            self.works.push(PartWork::new(model));
        }
        let works = &mut self.works[..parts];
        let net = &*model;
        let features = net.features();
        run_parts(works, self.threads, |i, work| {
            let rows = part_rows(i, n);
            let y = y.slice(s![rows.clone(), ..]);
            match &x {
                Input::Matrix(x) => work.gradient(net, x.slice(s![rows, ..]), y),
                Input::Rows(fill) => {
                    let mut xs = std::mem::take(&mut work.x);
                    xs.resize(rows.len() * features, 0.0);
                    fill.fill(rows.start, &mut xs, features);
                    let view = ArrayView2::from_shape((rows.len(), features), &xs[..])
                        .unwrap_or_else(|_| unreachable!("the buffer holds rows x features"));
                    work.gradient(net, view, y);
                    work.x = xs;
                }
            }
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
        // The update, on the threads too: runs of weights, each taking its
        // gradient from the parts (in their order) and its update.
        let mut runs = Vec::new();
        for (l, (layer, (vw, vb))) in model.layers.iter_mut().zip(&mut self.velocity).enumerate() {
            let (w, b) = layer.parts_mut();
            let both = [(flat(w), flat(vw), false), (flat(b), flat(vb), true)];
            for (values, velocity, bias) in both {
                let chunks = values.chunks_mut(RUN).zip(velocity.chunks_mut(RUN));
                runs.extend(chunks.enumerate().map(|(c, (values, velocity))| Run {
                    values,
                    velocity,
                    layer: l,
                    bias,
                    start: c * RUN,
                    finite: true,
                }));
            }
        }
        let rates = (self.momentum, self.weight_decay, lr);
        // An empty batch has no gradient (and must not make one of 0 / 0).
        let scale = if n == 0 { 0.0 } else { 1.0 / n as f32 };
        run_parts(&mut runs, self.threads, |_, run| {
            run.update(works, scale, rates)
        });
        if runs.iter().any(|run| !run.finite) {
            return Err(Error::Diverged {
                loss,
                weights_finite: false,
            });
        }
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

/// Weights (or biases) in one run of the update.
const RUN: usize = 16 * 1024;

/// Weights (or biases) of one layer, updated by one thread: `values` and
/// `velocity` from element `start` of the layer's weights (or biases).
#[derive(Debug)]
struct Run<'a> {
    values: &'a mut [f32],
    velocity: &'a mut [f32],
    layer: usize,
    bias: bool,
    start: usize,
    /// Whether every value is finite after the update.
    finite: bool,
}

impl Run<'_> {
    /// Each value's gradient `(parts[0] + parts[1] + ...) * scale`, the
    /// parts in their order, then its momentum update; a block at a time
    /// so that the sums stay in the L1 cache.
    fn update(&mut self, works: &[PartWork], scale: f32, rates: Rates) {
        kernel::compiled_for(
            kernel::path(),
            #[inline(always)]
            || self.update_here(works, scale, rates),
        )
    }

    /// [`update`](Self::update), compiled for the caller's instruction set.
    #[inline(always)]
    fn update_here<'w>(&mut self, works: &'w [PartWork], scale: f32, rates: Rates) {
        const BLOCK: usize = 1024;
        let mut sum = [0.0f32; BLOCK];
        let (values, velocity) = (&mut *self.values, &mut *self.velocity);
        let (layer, bias) = (self.layer, self.bias);
        let grads = move |work: &'w PartWork, at: usize, len: usize| -> &'w [f32] {
            let (w, b) = &work.grads[layer];
            let all = if bias { b.as_slice() } else { w.as_slice() };
            all.map_or(&[][..], |all| &all[at..at + len])
        };
        let mut finite = true;
        for (i, (values, velocity)) in values
            .chunks_mut(BLOCK)
            .zip(velocity.chunks_mut(BLOCK))
            .enumerate()
        {
            let (at, len) = (self.start + i * BLOCK, values.len());
            let g = &mut sum[..len];
            g.fill(0.0);
            for work in works {
                for (s, &p) in g.iter_mut().zip(grads(work, at, len)) {
                    *s += p;
                }
            }
            let rows = values.iter_mut().zip(velocity.iter_mut()).zip(g.iter());
            if self.bias {
                for ((b, v), &g) in rows {
                    update_bias(b, v, g * scale, rates);
                }
            } else {
                for ((w, v), &g) in rows {
                    update_weight(w, v, g * scale, rates);
                }
            }
            finite &= values.iter().fold(true, |ok, v| ok & v.is_finite());
        }
        self.finite = finite;
    }
}

/// The values of `a` in order, made contiguous first if they are not.
fn flat<D: ndarray::Dimension>(a: &mut ndarray::Array<f32, D>) -> &mut [f32] {
    if !a.is_standard_layout() {
        *a = a.as_standard_layout().into_owned();
    }
    a.as_slice_mut().unwrap_or_default()
}

impl PartWork {
    fn new(model: &Mlp) -> Self {
        Self {
            x: Vec::new(),
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
        kernel::compiled_for(
            kernel::path(),
            #[inline(always)]
            || Zip::from(&mut dz).and(&y).for_each(|d, &y| *d -= y),
        );
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
    kernel::compiled_for(
        kernel::path(),
        #[inline(always)]
        || {
            sums.fill(0.0);
            for row in a.rows() {
                *sums += &row;
            }
        },
    )
}

/// The ReLU's backward pass in one sweep: zeroes `dh` where the unit was
/// off (`h <= 0`), and sums the masked rows into `sums` (the hidden
/// biases' gradient), the rows in their order.
fn relu_backward(mut dh: ArrayViewMut2<'_, f32>, h: ArrayView2<'_, f32>, sums: &mut Array1<f32>) {
    sums.fill(0.0);
    let (Some(dh), Some(h), Some(sums)) = (dh.as_slice_mut(), h.as_slice(), sums.as_slice_mut())
    else {
        unreachable!("the hidden layer's buffers are contiguous")
    };
    let units = sums.len();
    kernel::compiled_for(
        kernel::path(),
        #[inline(always)]
        || {
            for (d, h) in dh.chunks_exact_mut(units).zip(h.chunks_exact(units)) {
                for ((d, &h), s) in d.iter_mut().zip(h).zip(sums.iter_mut()) {
                    let masked = if h <= 0.0 { 0.0 } else { *d };
                    *d = masked;
                    *s += masked;
                }
            }
        },
    )
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
        // 64 hidden units take the AVX-512 kernel where there is one.
        let shapes = [
            (Some(16), Head::Softmax),
            (Some(64), Head::Softmax),
            (None, Head::Sigmoid),
        ];
        for (hidden, head) in shapes {
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

    /// Rows made by the parts (`step_rows`) give the bits of the same
    /// rows as a matrix (`step`), on one thread and on several.
    #[test]
    fn rows_made_by_the_parts_give_the_matrix_bits() {
        let (x, y, _) = blobs(2 * PART_ROWS + 5);
        let fill = |first: usize, out: &mut [f32], stride: usize| {
            for (r, row) in out.chunks_exact_mut(stride).enumerate() {
                row.copy_from_slice(&x.row(first + r).to_vec());
            }
        };
        for hidden in [Some(16), None] {
            let start = Mlp::new(6, hidden, 4, Head::Softmax, false, &mut rng()).unwrap();
            let mut want = start.clone();
            let mut t = MlpTrainer::new(&want, 0.9, 1e-3).unwrap();
            for _ in 0..3 {
                t.step(&mut want, x.view(), y.view(), 0.05).unwrap();
            }
            for threads in [1, 2, 3] {
                let mut m = start.clone();
                let mut tr = MlpTrainer::new(&m, 0.9, 1e-3)
                    .unwrap()
                    .with_threads(threads);
                for _ in 0..3 {
                    tr.step_rows(&mut m, &fill, y.view(), 0.05).unwrap();
                }
                assert!(
                    bits(&m, &tr) == bits(&want, &t),
                    "{hidden:?}, {threads} threads"
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
        for (head, hidden) in [(Head::Softmax, 5), (Head::Sigmoid, 5), (Head::Softmax, 64)] {
            let start = Mlp::new(6, Some(hidden), 4, head, false, &mut rng()).unwrap();
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
