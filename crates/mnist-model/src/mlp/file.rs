//! The JSON model file of a network: writing it, and reading it back with
//! every value checked.

use ndarray::{Array1, Array2};
use serde_json::Value;

use super::{Dense, Mlp};
use crate::error::{Error, Result};
use crate::head::Head;

/// The model-file version of networks.
pub const NETWORK_VERSION: u64 = 2;

impl Mlp {
    /// The network as a JSON model file (format version 2):
    /// `{"format":"mnist-model","version":2,"kind":"network","head":"softmax",
    /// "layers":[{"inputs":785,"outputs":10,"weights":[[...]],"biases":[...]}]}`.
    pub fn to_json_string(&self) -> String {
        let layers: Vec<Value> = self
            .layers()
            .iter()
            .map(|l| {
                serde_json::json!({
                    "inputs": l.weights().nrows(),
                    "outputs": l.weights().ncols(),
                    "weights": l.weights().rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
                    "biases": l.biases().to_vec(),
                })
            })
            .collect();
        serde_json::json!({
            "format": crate::MODEL_FORMAT,
            "version": NETWORK_VERSION,
            "kind": "network",
            "head": self.head().name(),
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
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn json_round_trips_bit_for_bit_and_rejects_bad_files() {
        let model = Mlp::new(
            7,
            Some(3),
            4,
            Head::Softmax,
            false,
            &mut ChaCha8Rng::seed_from_u64(3),
        )
        .unwrap();
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
}
