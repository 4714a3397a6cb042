//! Any model this crate trains, behind one type: what a model file holds.

use std::path::Path;

use ndarray::{Array2, ArrayView2};
use serde_json::Value;

use crate::cnn::{evaluate_cnn, Cnn, CNN_VERSION};
use crate::error::{Error, Result};
use crate::io::write_atomically;
use crate::linear::LinearModel;
use crate::metrics::{evaluate, Evaluation};
use crate::mlp::{evaluate_mlp, Mlp, NETWORK_VERSION};
use crate::MODEL_VERSION;

/// Facts kept beside a model's weights in its file, under `"metadata"`: for
/// example the dataset it was trained on. This crate stores them and gives
/// them back without looking inside; a file without them reads as empty.
pub type Metadata = serde_json::Map<String, Value>;

/// A trained model of either kind; the model file's version says which.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// The post's sigmoid linear model (model file version 1).
    Linear(LinearModel),
    /// A network: softmax or sigmoid head, optional hidden layer (version 2).
    Network(Mlp),
    /// A convolutional network with a softmax head (version 3).
    Cnn(Cnn),
}

/// The `"metadata"` object of a model file's text, or an empty one.
fn metadata_of(text: &str) -> Metadata {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut doc)) => match doc.remove("metadata") {
            Some(Value::Object(metadata)) => metadata,
            _ => Metadata::new(),
        },
        _ => Metadata::new(),
    }
}

/// Whether a model file is in the safetensors format: by its name, or by
/// its first bytes (a little-endian header length that fits in the file,
/// then the header's `{`), which a JSON file cannot have.
fn is_safetensors(path: &Path, bytes: &[u8]) -> bool {
    if path.extension().is_some_and(|e| e == "safetensors") {
        return true;
    }
    match (bytes.get(..8), bytes.get(8)) {
        (Some(len), Some(b'{')) => {
            let mut n = [0u8; 8];
            n.copy_from_slice(len);
            u64::from_le_bytes(n) <= (bytes.len() - 8) as u64
        }
        _ => false,
    }
}

impl Model {
    /// Reads a model file of either version: the JSON this crate writes,
    /// or the safetensors of [`to_safetensors`](Self::to_safetensors)
    /// (told apart by the name's `.safetensors` or by the first bytes).
    ///
    /// # Errors
    /// [`Error::Io`] if `path` cannot be read, [`Error::ModelFile`] naming
    /// `path` and what is wrong with its contents.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with_metadata(path).map(|(model, _)| model)
    }

    /// Reads a model file of either version, with its [`Metadata`].
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_with_metadata(path: &Path) -> Result<(Self, Metadata)> {
        let bytes = std::fs::read(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let file_error = |reason: String| Error::ModelFile {
            path: path.to_path_buf(),
            reason,
        };
        if is_safetensors(path, &bytes) {
            return Self::from_safetensors(&bytes).map_err(|e| match e {
                Error::ModelTensors { reason } => file_error(reason),
                other => other,
            });
        }
        let text =
            std::str::from_utf8(&bytes).map_err(|e| file_error(format!("not UTF-8 text: {e}")))?;
        let model = Self::from_json_str(text).map_err(|e| match e {
            Error::ModelJson { reason } => file_error(reason),
            other => other,
        })?;
        Ok((model, metadata_of(text)))
    }

    /// Reads a model from JSON text of either version.
    ///
    /// # Errors
    /// [`Error::ModelJson`] saying what is wrong.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let json_error = |reason: String| Error::ModelJson { reason };
        let doc: Value =
            serde_json::from_str(text).map_err(|e| json_error(format!("not valid JSON: {e}")))?;
        // What else a user may hand over by mistake: the reports and
        // checkpoints of `mnist` have a `command` or `format` of their own.
        if doc.get("format").is_none() && doc.get("command").is_some() {
            return Err(json_error(
                "this is a report (of `mnist train --report` or `eval --report`), not a model: \
                 give the file that --save wrote"
                    .to_string(),
            ));
        }
        if doc.get("format").and_then(Value::as_str) == Some("mnist-checkpoint") {
            return Err(json_error(
                "this is a checkpoint, not a model: resume it with `mnist train --resume DIR`, \
                 or give the file that --save wrote"
                    .to_string(),
            ));
        }
        match doc.get("version").and_then(Value::as_u64) {
            Some(MODEL_VERSION) => LinearModel::from_json_str(text).map(Model::Linear),
            Some(NETWORK_VERSION) => Mlp::from_json_str(text).map(Model::Network),
            Some(CNN_VERSION) => Cnn::from_json_str(text).map(Model::Cnn),
            _ => Err(json_error(format!(
                "expected version {MODEL_VERSION}, {NETWORK_VERSION} or {CNN_VERSION}, found {}",
                doc.get("version")
                    .map_or_else(|| "none".to_string(), Value::to_string)
            ))),
        }
    }

    /// The model file's text.
    ///
    /// # Errors
    /// [`Error::NonFiniteWeight`] for a linear model with a NaN or infinite
    /// weight.
    pub fn to_json_string(&self) -> Result<String> {
        match self {
            Model::Linear(m) => m.to_json_string(),
            Model::Network(m) => Ok(m.to_json_string()),
            Model::Cnn(m) => Ok(m.to_json_string()),
        }
    }

    /// The model file's text with `metadata` (left out when empty).
    ///
    /// # Errors
    /// As [`to_json_string`](Self::to_json_string).
    ///
    /// # Examples
    ///
    /// ```
    /// use mnist_model::{Init, LinearModel, Metadata, Model};
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    /// let model = Model::Linear(LinearModel::new(5, 2, Init::Zeros, &mut rng)?);
    /// let mut metadata = Metadata::new();
    /// metadata.insert("dataset".into(), "toy".into());
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("m.json");
    /// model.save_with(&path, &metadata)?;
    /// assert_eq!(Model::load_with_metadata(&path)?, (model, metadata));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_json_string_with(&self, metadata: &Metadata) -> Result<String> {
        let text = self.to_json_string()?;
        if metadata.is_empty() {
            return Ok(text);
        }
        // Both writers make one JSON object; the metadata goes first in it,
        // and the weights' text stays as the writer made it.
        let rest = text.strip_prefix('{').ok_or_else(|| Error::ModelJson {
            reason: "the model's JSON is not an object".to_string(),
        })?;
        let metadata = serde_json::to_string(metadata).map_err(|e| Error::ModelJson {
            reason: format!("metadata: {e}"),
        })?;
        Ok(format!("{{\"metadata\":{metadata},{rest}"))
    }

    /// Writes the model file atomically (temporary file, then rename).
    ///
    /// # Errors
    /// [`Error::Io`] naming `path`, or as [`to_json_string`](Self::to_json_string).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_with(path, &Metadata::new())
    }

    /// [`save`](Self::save) with `metadata` in the file; a name that ends in
    /// `.safetensors` gets that format (see [`to_file_bytes`](Self::to_file_bytes)).
    ///
    /// # Errors
    /// As [`save`](Self::save).
    pub fn save_with(&self, path: &Path, metadata: &Metadata) -> Result<()> {
        let bytes = self.to_file_bytes(path, metadata)?;
        write_atomically(path, &bytes).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })
    }

    /// The bytes of a model file at `path`: safetensors when its name ends
    /// in `.safetensors`, the JSON model file otherwise.
    ///
    /// # Errors
    /// As [`to_json_string`](Self::to_json_string) and
    /// [`to_safetensors`](Self::to_safetensors).
    pub fn to_file_bytes(&self, path: &Path, metadata: &Metadata) -> Result<Vec<u8>> {
        if path.extension().is_some_and(|e| e == "safetensors") {
            self.to_safetensors(metadata)
        } else {
            Ok(self.to_json_string_with(metadata)?.into_bytes())
        }
    }

    /// Inputs per sample.
    pub fn features(&self) -> usize {
        match self {
            Model::Linear(m) => m.features(),
            Model::Network(m) => m.features(),
            Model::Cnn(m) => m.features(),
        }
    }

    /// Outputs per sample.
    pub fn classes(&self) -> usize {
        match self {
            Model::Linear(m) => m.classes(),
            Model::Network(m) => m.classes(),
            Model::Cnn(m) => m.classes(),
        }
    }

    /// Class probabilities (sigmoid outputs or softmax) for the rows of `x`.
    ///
    /// # Errors
    /// [`Error::DimensionMismatch`] when `x` does not have the model's
    /// features.
    pub fn predict_proba(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        match self {
            Model::Linear(m) => m.predict_proba(x),
            Model::Network(m) => m.predict_proba(x),
            Model::Cnn(m) => m.predict_proba(x),
        }
    }

    /// The most probable class of each row (ties: the lowest index).
    ///
    /// # Errors
    /// As [`predict_proba`](Self::predict_proba).
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Vec<usize>> {
        match self {
            Model::Linear(m) => m.predict(x),
            Model::Network(m) => m.predict(x),
            Model::Cnn(m) => m.predict(x),
        }
    }

    /// What [`predict_proba`](Self::predict_proba) returns: `"sigmoid"`
    /// (independent per class) or `"softmax"` (summing to 1).
    pub fn output_kind(&self) -> &'static str {
        match self {
            Model::Linear(m) => m.head().name(),
            Model::Network(m) => m.head().name(),
            Model::Cnn(_) => "softmax",
        }
    }

    /// Loss, accuracy and confusion matrix on the rows of `x`.
    ///
    /// # Errors
    /// As [`evaluate`] and [`evaluate_mlp`].
    pub fn evaluate(&self, x: ArrayView2<'_, f32>, labels: &[u8]) -> Result<Evaluation> {
        match self {
            Model::Linear(m) => evaluate(m, x, labels),
            Model::Network(m) => evaluate_mlp(m, x, labels),
            Model::Cnn(m) => evaluate_cnn(m, x, labels),
        }
    }

    /// A short description, e.g. `linear 785 x 10, sigmoid` or
    /// `network 785 -> 256 -> 10, softmax`.
    pub fn describe(&self) -> String {
        match self {
            Model::Linear(m) => format!("linear {} x {}, {}", m.features(), m.classes(), m.head()),
            Model::Network(m) => match m.hidden() {
                Some(h) => format!(
                    "network {} -> {h} (ReLU) -> {}, {}",
                    m.features(),
                    m.classes(),
                    m.head()
                ),
                None => format!("network {} -> {}, {}", m.features(), m.classes(), m.head()),
            },
            Model::Cnn(m) => {
                let mut parts = vec![format!("{0} x {0}", m.side())];
                for conv in m.convs() {
                    parts.push(format!(
                        "conv {0}x{0} {1} (ReLU, max-pool 2)",
                        conv.kernel(),
                        conv.channels()
                    ));
                }
                for layer in &m.dense()[..m.dense().len() - 1] {
                    parts.push(format!("{} (ReLU)", layer.weights().ncols()));
                }
                parts.push(format!("{}, softmax", m.classes()));
                format!("cnn {}", parts.join(" -> "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Head, Init};
    use rand::SeedableRng;

    #[test]
    fn loads_both_versions_and_names_the_file() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let dir = tempfile::tempdir().unwrap();
        let linear = Model::Linear(LinearModel::new(5, 3, Init::default(), &mut rng).unwrap());
        let net = Model::Network(Mlp::new(5, Some(4), 3, Head::Softmax, false, &mut rng).unwrap());
        for (name, model) in [("l.json", &linear), ("n.json", &net)] {
            let path = dir.path().join(name);
            model.save(&path).unwrap();
            assert_eq!(&Model::load(&path).unwrap(), model);
        }
        assert_eq!(net.describe(), "network 5 -> 4 (ReLU) -> 3, softmax");
        assert_eq!(linear.describe(), "linear 5 x 3, sigmoid");
        let path = dir.path().join("v9.json");
        std::fs::write(&path, r#"{"format":"mnist-model","version":9}"#).unwrap();
        let err = Model::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("v9.json: expected version 1, 2 or 3, found 9"),
            "{err}"
        );
    }
}
