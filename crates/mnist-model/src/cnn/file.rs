//! The network's JSON model file (format version 3).

use ndarray::ArrayView2;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::mlp::Dense;

use super::{Cnn, Conv, CNN_VERSION};

impl Cnn {
    /// The network as a JSON model file (format version 3):
    /// `{"format":"mnist-model","version":3,"kind":"cnn","head":"softmax",
    /// "side":28,"convs":[{"kernel":5,"channels_in":1,"inputs":25,"outputs":16,"weights":[[...]],"biases":[...]}],
    /// "layers":[{"inputs":512,"outputs":128,"weights":[[...]],"biases":[...]}]}`.
    pub fn to_json_string(&self) -> String {
        let rows =
            |w: ArrayView2<'_, f32>| w.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>();
        let convs: Vec<Value> = self
            .convs
            .iter()
            .map(|c| {
                serde_json::json!({
                    "kernel": c.kernel,
                    "channels_in": c.inputs,
                    "inputs": c.w.nrows(),
                    "outputs": c.channels(),
                    "weights": rows(c.w.view()),
                    "biases": c.b.to_vec(),
                })
            })
            .collect();
        let layers: Vec<Value> = self
            .dense
            .iter()
            .map(|d| {
                serde_json::json!({
                    "inputs": d.weights().nrows(),
                    "outputs": d.weights().ncols(),
                    "weights": rows(d.weights()),
                    "biases": d.biases().to_vec(),
                })
            })
            .collect();
        serde_json::json!({
            "format": crate::MODEL_FORMAT,
            "version": CNN_VERSION,
            "kind": "cnn",
            "head": "softmax",
            "side": self.side,
            "convs": convs,
            "layers": layers,
        })
        .to_string()
    }

    /// Reads a network from the JSON of [`to_json_string`](Self::to_json_string).
    ///
    /// # Errors
    /// [`Error::ModelJson`] saying what is wrong.
    pub fn from_json_str(text: &str) -> Result<Self> {
        parse_cnn(text).map_err(|reason| Error::ModelJson { reason })
    }
}

fn parse_cnn(text: &str) -> std::result::Result<Cnn, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let get = |name: &str| {
        doc.get(name)
            .ok_or_else(|| format!("missing field \"{name}\""))
    };
    if get("version")?.as_u64() != Some(CNN_VERSION) {
        return Err(format!(
            "expected version {CNN_VERSION}, found {}",
            get("version")?
        ));
    }
    let side = positive(get("side")?, "side")?;
    let mut convs = Vec::new();
    for (i, conv) in get("convs")?
        .as_array()
        .ok_or("expected \"convs\" to be an array")?
        .iter()
        .enumerate()
    {
        let what = |m: String| format!("convolution {i}: {m}");
        let field = |name: &str| {
            conv.get(name)
                .ok_or_else(|| what(format!("missing \"{name}\"")))
        };
        let kernel = positive(field("kernel")?, "kernel").map_err(what)?;
        let inputs = positive(field("channels_in")?, "channels_in").map_err(what)?;
        let (w, b) = crate::mlp::parse_layer(conv).map_err(what)?;
        convs.push(Conv::new(kernel, inputs, w, b).map_err(|e| what(e.to_string()))?);
    }
    let mut dense = Vec::new();
    for (i, layer) in get("layers")?
        .as_array()
        .ok_or("expected \"layers\" to be an array")?
        .iter()
        .enumerate()
    {
        let what = |m: String| format!("layer {i}: {m}");
        let (w, b) = crate::mlp::parse_layer(layer).map_err(what)?;
        dense.push(Dense::new(w, b).map_err(|e| what(e.to_string()))?);
    }
    Cnn::from_layers(side, convs, dense).map_err(|e| e.to_string())
}

fn positive(v: &Value, name: &str) -> std::result::Result<usize, String> {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("expected \"{name}\" to be a positive integer, found {v}"))
}
