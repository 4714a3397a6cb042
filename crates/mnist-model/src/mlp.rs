//! Beyond the post: a network with an optional hidden ReLU layer and a
//! sigmoid or softmax head, trained by SGD with momentum and weight decay.
//!
//! With no hidden layer and the softmax head this is multinomial logistic
//! regression; with a hidden layer, a two-layer perceptron. The post's own
//! model stays [`LinearModel`](crate::LinearModel) with its fused kernels;
//! this one is built on `ndarray`'s matrix products.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2, Axis, Zip};
use rand::Rng;
use rand_distr::StandardNormal;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::head::Head;
use crate::loss::PROB_CLIP;
use crate::metrics::{check_labels, ConfusionMatrix, Evaluation};
use crate::sigmoid::sigmoid;

/// One fully connected layer: `x W + b`, `W` of shape `(inputs, outputs)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    w: Array2<f32>,
    b: Array1<f32>,
}

impl Dense {
    /// A layer from its weights and biases.
    ///
    /// # Errors
    /// [`Error::ZeroSize`] for an empty dimension,
    /// [`Error::DimensionMismatch`] when the biases do not match the
    /// outputs, [`Error::NonFiniteWeight`] for a NaN or infinite value.
    pub fn new(w: Array2<f32>, b: Array1<f32>) -> Result<Self> {
        let (inputs, outputs) = w.dim();
        if inputs == 0 || outputs == 0 {
            return Err(Error::ZeroSize {
                what: "layer inputs and outputs",
            });
        }
        if b.len() != outputs {
            return Err(Error::DimensionMismatch {
                what: "layer biases",
                expected: outputs,
                found: b.len(),
            });
        }
        if let Some(((feature, class), &value)) = w.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteWeight {
                feature,
                class,
                value,
            });
        }
        if let Some((class, &value)) = b.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteWeight {
                feature: inputs,
                class,
                value,
            });
        }
        Ok(Self { w, b })
    }

    /// The weights, `(inputs, outputs)`.
    pub fn weights(&self) -> ArrayView2<'_, f32> {
        self.w.view()
    }

    /// The biases, one per output.
    pub fn biases(&self) -> &Array1<f32> {
        &self.b
    }

    fn outputs(&self) -> usize {
        self.w.ncols()
    }

    /// The weights and the biases, taken apart.
    pub(crate) fn into_parts(self) -> (Array2<f32>, Array1<f32>) {
        (self.w, self.b)
    }

    /// The weights and the biases, to update.
    pub(crate) fn parts_mut(&mut self) -> (&mut Array2<f32>, &mut Array1<f32>) {
        (&mut self.w, &mut self.b)
    }

    /// `out = x W + b`.
    fn forward_into(&self, x: ArrayView2<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
        general_mat_mul(1.0, &x, &self.w, 0.0, &mut out);
        out += &self.b;
    }
}

/// A network: an optional hidden ReLU layer, then an output layer and a
/// [`Head`].
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    layers: Vec<Dense>,
    head: Head,
}

impl Mlp {
    /// A network for `features` inputs and `classes` outputs, with a hidden
    /// ReLU layer of `hidden` units if given.
    ///
    /// The hidden layer starts from He-style `N(0, 2 / features)` weights
    /// and the output layer behind it from `N(0, 1 / hidden)`; biases start
    /// at 0. Without a hidden layer the output weights start at 0 (`zeros`)
    /// or from `N(0, 1)` as in the post. The same `rng` state gives the same
    /// weights, bit for bit.
    ///
    /// # Errors
    /// [`Error::ZeroSize`] when a size is 0.
    pub fn new<R: Rng + ?Sized>(
        features: usize,
        hidden: Option<usize>,
        classes: usize,
        head: Head,
        zeros: bool,
        rng: &mut R,
    ) -> Result<Self> {
        if features == 0 || classes == 0 || hidden == Some(0) {
            return Err(Error::ZeroSize {
                what: "features, hidden units and classes",
            });
        }
        let mut normal = |rows: usize, cols: usize, std: f32| {
            Array2::from_shape_simple_fn((rows, cols), || {
                let z: f32 = rng.sample(StandardNormal);
                z * std
            })
        };
        let layers = match hidden {
            Some(h) => vec![
                Dense::new(
                    normal(features, h, (2.0 / features as f32).sqrt()),
                    Array1::zeros(h),
                )?,
                Dense::new(
                    normal(h, classes, (1.0 / h as f32).sqrt()),
                    Array1::zeros(classes),
                )?,
            ],
            None if zeros => vec![Dense::new(
                Array2::zeros((features, classes)),
                Array1::zeros(classes),
            )?],
            None => vec![Dense::new(
                normal(features, classes, 1.0),
                Array1::zeros(classes),
            )?],
        };
        Ok(Self { layers, head })
    }

    /// A network from its layers, first to last.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for no layers or more than two,
    /// [`Error::DimensionMismatch`] when one layer's outputs are not the next
    /// one's inputs.
    pub fn from_layers(layers: Vec<Dense>, head: Head) -> Result<Self> {
        if layers.is_empty() || layers.len() > 2 {
            return Err(Error::InvalidParameter {
                name: "number of layers",
                value: layers.len().to_string(),
                reason: "a network has one layer, or two (a hidden layer and the output)",
            });
        }
        for pair in layers.windows(2) {
            if pair[0].outputs() != pair[1].w.nrows() {
                return Err(Error::DimensionMismatch {
                    what: "layer inputs (the previous layer's outputs)",
                    expected: pair[0].outputs(),
                    found: pair[1].w.nrows(),
                });
            }
        }
        Ok(Self { layers, head })
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// The head.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Inputs per sample.
    pub fn features(&self) -> usize {
        self.layers[0].w.nrows()
    }

    /// Outputs per sample.
    pub fn classes(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs()
    }

    /// Units of the hidden layer, if there is one.
    pub fn hidden(&self) -> Option<usize> {
        (self.layers.len() == 2).then(|| self.layers[0].outputs())
    }

    fn check_input(&self, x: &ArrayView2<'_, f32>) -> Result<()> {
        if x.ncols() != self.features() {
            return Err(Error::DimensionMismatch {
                what: "input features",
                expected: self.features(),
                found: x.ncols(),
            });
        }
        Ok(())
    }

    /// Class probabilities for the rows of `x`.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `x` does not have the model's
    /// features.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.check_input(&x)?;
        let mut work = Work::default();
        let p = self.forward(x, &mut work);
        Ok(p.to_owned())
    }

    /// The most probable class of each row (ties: the lowest index).
    ///
    /// # Errors
    /// As [`predict_proba`](Self::predict_proba).
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Vec<usize>> {
        Ok(argmax_rows(self.predict_proba(x)?.view()))
    }

    /// Forward pass into `work`; returns the probabilities, `rows x classes`.
    fn forward<'w>(&self, x: ArrayView2<'_, f32>, work: &'w mut Work) -> ArrayView2<'w, f32> {
        let rows = x.nrows();
        work.fit(rows, self.hidden().unwrap_or(0), self.classes());
        let z_out = match self.layers.as_slice() {
            [hidden, out] => {
                let mut h = work.h.slice_mut(s![..rows, ..]);
                hidden.forward_into(x, h.view_mut());
                h.mapv_inplace(|v| v.max(0.0));
                let mut z = work.p.slice_mut(s![..rows, ..]);
                out.forward_into(work.h.slice(s![..rows, ..]), z.view_mut());
                z
            }
            [out] => {
                let mut z = work.p.slice_mut(s![..rows, ..]);
                out.forward_into(x, z.view_mut());
                z
            }
            _ => unreachable!("constructors allow one or two layers"),
        };
        activate(self.head, z_out);
        work.p.slice(s![..rows, ..])
    }

    /// Loss of probabilities `p` against one-hot `y`: mean over the rows.
    fn loss(&self, p: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> f64 {
        let n = p.nrows().max(1) as f64;
        let mut total = 0.0f64;
        match self.head {
            Head::Sigmoid => Zip::from(&p).and(&y).for_each(|&p, &y| {
                let p = f64::from(p).clamp(PROB_CLIP, 1.0 - PROB_CLIP);
                let y = f64::from(y);
                total -= y * p.ln() + (1.0 - y) * (1.0 - p).ln();
            }),
            Head::Softmax => Zip::from(&p).and(&y).for_each(|&p, &y| {
                if y != 0.0 {
                    total -= f64::from(y) * f64::from(p).max(f64::from(f32::MIN_POSITIVE)).ln();
                }
            }),
        }
        total / n
    }
}

/// Applies the head to the logits in place.
pub(crate) fn activate(head: Head, mut z: ArrayViewMut2<'_, f32>) {
    match head {
        Head::Sigmoid => z.mapv_inplace(sigmoid),
        Head::Softmax => {
            for mut row in z.rows_mut() {
                let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                row.mapv_inplace(|v| (v - max).exp());
                let sum = row.sum();
                row.mapv_inplace(|v| v / sum);
            }
        }
    }
}

pub(crate) fn argmax_rows(p: ArrayView2<'_, f32>) -> Vec<usize> {
    p.rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv {
                        (i, v)
                    } else {
                        (bi, bv)
                    }
                })
                .0
        })
        .collect()
}

/// Buffers of a forward and backward pass, grown once and reused.
#[derive(Debug, Default)]
struct Work {
    /// Hidden activations, `rows x hidden`.
    h: Array2<f32>,
    /// Probabilities (first the logits), `rows x classes`.
    p: Array2<f32>,
    /// Gradient at the logits.
    dz: Array2<f32>,
    /// Gradient at the hidden layer.
    dh: Array2<f32>,
}

impl Work {
    fn fit(&mut self, rows: usize, hidden: usize, classes: usize) {
        if self.p.nrows() < rows || self.p.ncols() != classes || self.h.ncols() != hidden {
            self.h = Array2::zeros((rows, hidden));
            self.p = Array2::zeros((rows, classes));
            self.dz = Array2::zeros((rows, classes));
            self.dh = Array2::zeros((rows, hidden));
        }
    }
}

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
        Zip::from(&mut *w).and(vw).and(gw).for_each(|w, v, &g| {
            *v = mu * *v + g + wd * *w;
            *w -= lr * *v;
        });
        Zip::from(&mut *b).and(vb).and(gb).for_each(|b, v, &g| {
            *v = mu * *v + g;
            *b -= lr * *v;
        });
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

/// SGD with momentum and L2 weight decay for an [`Mlp`].
///
/// Each step: gradient `g` of the mean loss over the batch, plus
/// `weight_decay * W` for the weights (not the biases); velocity
/// `v = momentum * v + g`; `W -= lr * v`. With `momentum` 0 and
/// `weight_decay` 0 it is plain SGD on the mean gradient.
#[derive(Debug)]
pub struct MlpTrainer {
    momentum: f32,
    weight_decay: f32,
    velocity: Vec<(Array2<f32>, Array1<f32>)>,
    grads: Vec<(Array2<f32>, Array1<f32>)>,
    work: Work,
}

impl MlpTrainer {
    /// A trainer for `model`'s shape.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] when `momentum` is not in `[0, 1)` or
    /// `weight_decay` is negative or not finite.
    pub fn new(model: &Mlp, momentum: f32, weight_decay: f32) -> Result<Self> {
        check_optimiser(momentum, weight_decay)?;
        let zeros = || {
            model
                .layers
                .iter()
                .map(|l| (Array2::zeros(l.w.raw_dim()), Array1::zeros(l.b.len())))
                .collect::<Vec<_>>()
        };
        Ok(Self {
            momentum,
            weight_decay,
            velocity: zeros(),
            grads: zeros(),
            work: Work::default(),
        })
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
        let rows = x.nrows();
        let p = model.forward(x, &mut self.work);
        let loss = model.loss(p, y);
        if !loss.is_finite() {
            return Err(Error::Diverged {
                loss,
                weights_finite: true,
            });
        }
        // For both heads the gradient at the logits is (p - y), here of the
        // mean over the rows.
        let inv_n = 1.0 / rows as f32;
        let mut dz = self.work.dz.slice_mut(s![..rows, ..]);
        Zip::from(&mut dz)
            .and(&self.work.p.slice(s![..rows, ..]))
            .and(&y)
            .for_each(|d, &p, &y| *d = (p - y) * inv_n);
        let dz = self.work.dz.slice(s![..rows, ..]);
        match model.layers.as_slice() {
            [_, out] => {
                let h = self.work.h.slice(s![..rows, ..]);
                let (gw2, gb2) = &mut self.grads[1];
                general_mat_mul(1.0, &h.t(), &dz, 0.0, gw2);
                gb2.assign(&dz.sum_axis(Axis(0)));
                let mut dh = self.work.dh.slice_mut(s![..rows, ..]);
                general_mat_mul(1.0, &dz, &out.w.t(), 0.0, &mut dh);
                Zip::from(&mut dh).and(&h).for_each(|d, &h| {
                    if h <= 0.0 {
                        *d = 0.0;
                    }
                });
                let (gw1, gb1) = &mut self.grads[0];
                general_mat_mul(1.0, &x.t(), &dh, 0.0, gw1);
                gb1.assign(&dh.sum_axis(Axis(0)));
            }
            [_] => {
                let (gw, gb) = &mut self.grads[0];
                general_mat_mul(1.0, &x.t(), &dz, 0.0, gw);
                gb.assign(&dz.sum_axis(Axis(0)));
            }
            _ => unreachable!("constructors allow one or two layers"),
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

/// Loss, accuracy and confusion matrix of `model` on the rows of `x` with
/// true `labels`, in chunks.
///
/// # Errors
/// [`Error::DimensionMismatch`] for inputs of the wrong width or a label
/// count that is not one per row, [`Error::LabelOutOfRange`] for a label
/// that is not a class.
pub fn evaluate_mlp(model: &Mlp, x: ArrayView2<'_, f32>, labels: &[u8]) -> Result<Evaluation> {
    model.check_input(&x)?;
    let classes = model.classes();
    check_labels(labels, x.nrows(), classes)?;
    const CHUNK: usize = 1024;
    let mut work = Work::default();
    let mut predicted = Vec::with_capacity(labels.len());
    let mut loss_sum = 0.0;
    let mut y = Array2::<f32>::zeros((CHUNK, classes));
    for (start, xs) in (0..).step_by(CHUNK).zip(x.axis_chunks_iter(Axis(0), CHUNK)) {
        let rows = xs.nrows();
        let ls = &labels[start..start + rows];
        let mut yv = y.slice_mut(s![..rows, ..]);
        yv.fill(0.0);
        for (i, &l) in ls.iter().enumerate() {
            yv[[i, usize::from(l)]] = 1.0;
        }
        let p = model.forward(xs, &mut work);
        loss_sum += model.loss(p, y.slice(s![..rows, ..])) * rows as f64;
        predicted.extend(argmax_rows(p));
    }
    let confusion = ConfusionMatrix::from_predictions(classes, labels, &predicted)?;
    Ok(Evaluation {
        loss: loss_sum / labels.len().max(1) as f64,
        accuracy: confusion.accuracy(),
        confusion,
    })
}

/// The model-file version of networks.
pub const NETWORK_VERSION: u64 = 2;

impl Mlp {
    /// The network as a JSON model file (format version 2):
    /// `{"format":"mnist-model","version":2,"kind":"network","head":"softmax",
    /// "layers":[{"inputs":785,"outputs":10,"weights":[[...]],"biases":[...]}]}`.
    pub fn to_json_string(&self) -> String {
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "inputs": l.w.nrows(),
                    "outputs": l.w.ncols(),
                    "weights": l.w.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
                    "biases": l.b.to_vec(),
                })
            })
            .collect();
        serde_json::json!({
            "format": crate::MODEL_FORMAT,
            "version": NETWORK_VERSION,
            "kind": "network",
            "head": self.head.name(),
            "layers": layers,
        })
        .to_string()
    }

    /// Reads a network from the JSON of [`to_json_string`](Self::to_json_string).
    ///
    /// # Errors
    /// [`Error::ModelJson`] saying what is wrong.
    pub fn from_json_str(text: &str) -> Result<Self> {
        parse_network(text).map_err(|reason| Error::ModelJson { reason })
    }
}

fn parse_network(text: &str) -> std::result::Result<Mlp, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let get = |name: &str| {
        doc.get(name)
            .ok_or_else(|| format!("missing field \"{name}\""))
    };
    if get("format")?.as_str() != Some(crate::MODEL_FORMAT) {
        return Err(format!(
            "expected format \"{}\", found {}",
            crate::MODEL_FORMAT,
            get("format")?
        ));
    }
    if get("version")?.as_u64() != Some(NETWORK_VERSION) {
        return Err(format!(
            "expected version {NETWORK_VERSION}, found {}",
            get("version")?
        ));
    }
    let head = get("head")?;
    let head = head
        .as_str()
        .and_then(Head::from_name)
        .ok_or_else(|| format!("expected head \"sigmoid\" or \"softmax\", found {head}"))?;
    let layers = get("layers")?
        .as_array()
        .ok_or("expected \"layers\" to be an array")?;
    let mut parsed = Vec::with_capacity(layers.len().min(2));
    for (i, layer) in layers.iter().enumerate() {
        let what = |m: String| format!("layer {i}: {m}");
        let (w, b) = parse_layer(layer).map_err(what)?;
        parsed.push(Dense::new(w, b).map_err(|e| what(e.to_string()))?);
    }
    Mlp::from_layers(parsed, head).map_err(|e| e.to_string())
}

/// The weights and biases of a layer's JSON object: `inputs`, `outputs`,
/// `weights` (rows of `outputs` values) and `biases`, every value a finite
/// f32.
pub(crate) fn parse_layer(
    layer: &Value,
) -> std::result::Result<(Array2<f32>, Array1<f32>), String> {
    let size = |name: &str| {
        layer
            .get(name)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("expected \"{name}\" to be a positive integer"))
    };
    let (inputs, outputs) = (size("inputs")?, size("outputs")?);
    let rows = layer
        .get("weights")
        .and_then(Value::as_array)
        .ok_or("expected \"weights\" to be an array of rows")?;
    if rows.len() != inputs {
        return Err(format!(
            "expected {inputs} weight rows, found {}",
            rows.len()
        ));
    }
    // Filled as the values are read: memory is bounded by the file.
    let mut values = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let row = row
            .as_array()
            .ok_or_else(|| format!("weight row {r} is not an array"))?;
        if row.len() != outputs {
            return Err(format!(
                "weight row {r}: expected {outputs} values, found {}",
                row.len()
            ));
        }
        for v in row {
            values.push(finite(v).map_err(|m| format!("weight row {r}: {m}"))?);
        }
    }
    let biases = layer
        .get("biases")
        .and_then(Value::as_array)
        .ok_or("expected \"biases\" to be an array")?;
    if biases.len() != outputs {
        return Err(format!("expected {outputs} biases, found {}", biases.len()));
    }
    let b = biases
        .iter()
        .map(|v| finite(v).map_err(|m| format!("biases: {m}")))
        .collect::<std::result::Result<Vec<f32>, String>>()?;
    let w = Array2::from_shape_vec((inputs, outputs), values).map_err(|e| e.to_string())?;
    Ok((w, Array1::from(b)))
}

fn finite(v: &Value) -> std::result::Result<f32, String> {
    let x = v
        .as_f64()
        .ok_or_else(|| format!("expected a number, found {v}"))?;
    let w = x as f32;
    if w.is_finite() {
        Ok(w)
    } else {
        Err(format!("{v} is not a finite f32"))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn three_layers_are_refused_by_count() {
        let layer = |n: usize| Dense::new(Array2::zeros((n, n)), Array1::zeros(n));
        let layers = vec![layer(2).unwrap(), layer(2).unwrap(), layer(2).unwrap()];
        let err = Mlp::from_layers(layers, Head::Softmax)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid number of layers 3: a network has one layer, or two (a hidden layer \
                 and the output)"
            )
        );
    }

    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

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
    fn softmax_rows_sum_to_one_even_for_huge_logits() {
        let w = Array2::from_shape_vec((1, 3), vec![1000.0f32, -1000.0, 0.0]).unwrap();
        let m = Mlp::from_layers(
            vec![Dense::new(w, Array1::zeros(3)).unwrap()],
            Head::Softmax,
        )
        .unwrap();
        let p = m
            .predict_proba(ndarray::array![[1.0f32], [-1.0]].view())
            .unwrap();
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-6);
            assert!(row.iter().all(|v| v.is_finite()));
        }
        assert_eq!(m.predict(ndarray::array![[1.0f32]].view()).unwrap(), [0]);
    }

    #[test]
    fn json_round_trips_bit_for_bit_and_rejects_bad_files() {
        let model = Mlp::new(7, Some(3), 4, Head::Softmax, false, &mut rng()).unwrap();
        let text = model.to_json_string();
        assert_eq!(Mlp::from_json_str(&text).unwrap(), model);
        let bad = |edit: &dyn Fn(&mut Value)| {
            let mut v: Value = serde_json::from_str(&text).unwrap();
            edit(&mut v);
            Mlp::from_json_str(&v.to_string()).unwrap_err().to_string()
        };
        assert!(bad(&|v| v["version"] = 1.into()).contains("expected version 2, found 1"));
        assert!(bad(&|v| v["head"] = "relu".into()).contains("expected head"));
        assert!(bad(&|v| v["layers"][1]["inputs"] = 4.into())
            .contains("layer 1: expected 4 weight rows"));
        assert!(
            bad(&|v| v["layers"][0]["biases"] = serde_json::json!([0.0]))
                .contains("expected 3 biases")
        );
        assert!(
            bad(&|v| v["layers"][0]["weights"][0][0] = serde_json::json!(1e39))
                .contains("not a finite f32")
        );
        assert!(bad(&|v| v["layers"] = serde_json::json!([])).contains("layers"));
        assert!(Mlp::from_json_str(&text[..text.len() / 2]).is_err());
        // A header that claims a huge layer cannot make the loader allocate it.
        let huge = r#"{"format":"mnist-model","version":2,"head":"softmax","layers":[{"inputs":1,"outputs":99999999999,"weights":[[0]],"biases":[0]}]}"#;
        assert!(Mlp::from_json_str(huge)
            .unwrap_err()
            .to_string()
            .contains("expected 99999999999 values"));
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
}
