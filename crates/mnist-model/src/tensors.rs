//! Model files in the safetensors format, for other tools to read.
//!
//! Every kind of model is stored as its layers, first to last:
//!
//! | tensor | shape | what |
//! | --- | --- | --- |
//! | `layers.0.weight` | `[inputs, outputs]`, F32 | the first layer: `x W` |
//! | `layers.0.bias` | `[outputs]`, F32 | its biases (networks only) |
//! | `layers.1.weight`, `layers.1.bias` | as above | the output layer behind a hidden one |
//!
//! A convolutional network (`kind` `cnn`) has, before those dense layers,
//! `convs.0.weight` of shape `[filters, input channels, kernel, kernel]`
//! (the layout of ONNX and PyTorch) and `convs.0.bias` `[filters]`, then
//! `convs.1.…`: each a convolution of stride 1 without padding, a ReLU and
//! a 2 x 2 max-pooling (an odd side floored), on the image of `side` x
//! `side` pixels (metadata `side`) without the bias feature. The first
//! dense layer reads the last pooling's values in (row, column, channel)
//! order.
//!
//! The input `x` is the preprocessed image: `x / 255 - 0.5` for each pixel
//! (row by row), then a constant feature of 1. The post's linear model has
//! no bias tensor: its bias is the weight row of that constant feature.
//! Between two layers comes a ReLU; after the last, the head (`output`).
//!
//! The header's metadata (`__metadata__`, strings only) says how to use
//! them: `format` (`mnist-model`), `version` (that of the JSON model file of
//! the same model, 1, 2 or 3), `kind` (`linear`, `network` or `cnn`), `output`
//! (`sigmoid` or `softmax`), `normalization` (`x/255-0.5`), `bias_feature`
//! (`last`), `side` (a cnn's image side) and, when the model has any, `metadata`: the model's
//! [`Metadata`] as JSON text.

use std::collections::HashMap;

use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensors, View};

use crate::cnn::{Cnn, Conv, CNN_VERSION};
use crate::error::{Error, Result};
use crate::head::Head;
use crate::linear::LinearModel;
use crate::mlp::{Dense, Mlp, NETWORK_VERSION};
use crate::model::{Metadata, Model};
use crate::{MODEL_FORMAT, MODEL_VERSION};

/// How the features the models read are made from pixels, as written in a
/// safetensors file's `normalization` metadata.
pub const NORMALIZATION: &str = "x/255-0.5";

/// Where the constant feature of 1 goes, as written in `bias_feature`.
pub const BIAS_FEATURE: &str = "last";

/// The name of layer `i`'s tensor `what` (`weight` or `bias`).
pub fn tensor_name(layer: usize, what: &str) -> String {
    format!("layers.{layer}.{what}")
}

/// The name of convolution `i`'s tensor `what` (`weight` or `bias`).
pub fn conv_name(conv: usize, what: &str) -> String {
    format!("convs.{conv}.{what}")
}

/// One F32 tensor to write.
struct F32Tensor {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl F32Tensor {
    fn new<'a>(shape: Vec<usize>, values: impl Iterator<Item = &'a f32>) -> Self {
        Self {
            shape,
            bytes: values.flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

impl View for &F32Tensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::ModelTensors {
        reason: reason.into(),
    }
}

impl Model {
    /// The model as a safetensors file (see the module's table of tensor
    /// names), with `metadata` in the header.
    ///
    /// # Errors
    /// [`Error::NonFiniteWeight`] for a NaN or infinite weight,
    /// [`Error::ModelTensors`] if the safetensors writer fails.
    pub fn to_safetensors(&self, metadata: &Metadata) -> Result<Vec<u8>> {
        let mut tensors: Vec<(String, F32Tensor)> = Vec::new();
        let mut info = HashMap::new();
        info.insert("format".to_string(), MODEL_FORMAT.to_string());
        info.insert("normalization".to_string(), NORMALIZATION.to_string());
        info.insert("bias_feature".to_string(), BIAS_FEATURE.to_string());
        info.insert("output".to_string(), self.output_kind().to_string());
        match self {
            Model::Linear(m) => {
                let w = m.weights();
                if let Some(((feature, class), &value)) =
                    w.indexed_iter().find(|(_, v)| !v.is_finite())
                {
                    return Err(Error::NonFiniteWeight {
                        feature,
                        class,
                        value,
                    });
                }
                info.insert("version".to_string(), MODEL_VERSION.to_string());
                info.insert("kind".to_string(), "linear".to_string());
                tensors.push((
                    tensor_name(0, "weight"),
                    F32Tensor::new(w.shape().to_vec(), w.iter()),
                ));
            }
            Model::Network(m) => {
                info.insert("version".to_string(), NETWORK_VERSION.to_string());
                info.insert("kind".to_string(), "network".to_string());
                // `Dense` holds only finite values: checked when it was made.
                for (i, layer) in m.layers().iter().enumerate() {
                    let w = layer.weights();
                    tensors.push((
                        tensor_name(i, "weight"),
                        F32Tensor::new(w.shape().to_vec(), w.iter()),
                    ));
                    let b = layer.biases();
                    tensors.push((
                        tensor_name(i, "bias"),
                        F32Tensor::new(vec![b.len()], b.iter()),
                    ));
                }
            }
            Model::Cnn(m) => {
                info.insert("version".to_string(), CNN_VERSION.to_string());
                info.insert("kind".to_string(), "cnn".to_string());
                info.insert("side".to_string(), m.side().to_string());
                // `Conv` and `Dense` hold only finite values.
                for (i, conv) in m.convs().iter().enumerate() {
                    let (k, c_in, c_out) = (conv.kernel(), conv.inputs(), conv.channels());
                    let w = conv.weights();
                    // Ours: rows (ky, kx, input channel), columns filters;
                    // written as [filters, input channels, ky, kx].
                    let mut values = Vec::with_capacity(w.len());
                    for co in 0..c_out {
                        for ci in 0..c_in {
                            for ky in 0..k {
                                for kx in 0..k {
                                    values.push(w[[(ky * k + kx) * c_in + ci, co]]);
                                }
                            }
                        }
                    }
                    tensors.push((
                        conv_name(i, "weight"),
                        F32Tensor::new(vec![c_out, c_in, k, k], values.iter()),
                    ));
                    let b = conv.biases();
                    tensors.push((
                        conv_name(i, "bias"),
                        F32Tensor::new(vec![b.len()], b.iter()),
                    ));
                }
                for (i, layer) in m.dense().iter().enumerate() {
                    let w = layer.weights();
                    tensors.push((
                        tensor_name(i, "weight"),
                        F32Tensor::new(w.shape().to_vec(), w.iter()),
                    ));
                    let b = layer.biases();
                    tensors.push((
                        tensor_name(i, "bias"),
                        F32Tensor::new(vec![b.len()], b.iter()),
                    ));
                }
            }
        }
        if !metadata.is_empty() {
            let text =
                serde_json::to_string(metadata).map_err(|e| bad(format!("metadata: {e}")))?;
            info.insert("metadata".to_string(), text);
        }
        let mut bytes =
            safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(info))
                .map_err(|e| bad(e.to_string()))?;
        sort_header(&mut bytes)?;
        Ok(bytes)
    }

    /// Reads a model and its [`Metadata`] from the bytes that
    /// [`to_safetensors`](Self::to_safetensors) wrote.
    ///
    /// # Errors
    /// [`Error::ModelTensors`] saying what is wrong: not a safetensors file,
    /// metadata missing or of another format, a tensor missing, of another
    /// type or shape, or holding a value that is not finite.
    pub fn from_safetensors(bytes: &[u8]) -> Result<(Self, Metadata)> {
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let file = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let empty = HashMap::new();
        let info = header.metadata().as_ref().unwrap_or(&empty);
        let get = |key: &str| {
            info.get(key)
                .map(String::as_str)
                .ok_or_else(|| bad(format!("the header's metadata has no \"{key}\"")))
        };
        let format = get("format")?;
        if format != MODEL_FORMAT {
            return Err(bad(format!(
                "expected format \"{MODEL_FORMAT}\", found \"{format}\""
            )));
        }
        for (key, want) in [
            ("normalization", NORMALIZATION),
            ("bias_feature", BIAS_FEATURE),
        ] {
            let found = get(key)?;
            if found != want {
                return Err(bad(format!("expected {key} \"{want}\", found \"{found}\"")));
            }
        }
        let metadata = match info.get("metadata") {
            None => Metadata::new(),
            Some(text) => serde_json::from_str(text)
                .map_err(|e| bad(format!("metadata is not a JSON object: {e}")))?,
        };
        let matrix = |layer: usize| -> Result<Array2<f32>> {
            let (shape, values) = f32_tensor(&file, &tensor_name(layer, "weight"), 2)?;
            Array2::from_shape_vec((shape[0], shape[1]), values).map_err(|e| bad(e.to_string()))
        };
        let output = get("output")?;
        let model = match get("kind")? {
            "linear" => {
                let head = Head::from_name(output).ok_or_else(|| {
                    bad(format!(
                        "expected output \"sigmoid\" or \"softmax\", found \"{output}\""
                    ))
                })?;
                let w = matrix(0)?;
                Model::Linear(LinearModel::from_weights(w.view())?.with_head(head))
            }
            "network" => {
                let head = Head::from_name(output).ok_or_else(|| {
                    bad(format!(
                        "expected output \"sigmoid\" or \"softmax\", found \"{output}\""
                    ))
                })?;
                let mut layers = Vec::new();
                while file
                    .names()
                    .contains(&tensor_name(layers.len(), "weight").as_str())
                {
                    let i = layers.len();
                    if i == 2 {
                        return Err(bad(
                            "a network has one layer, or two (a hidden layer and the output)",
                        ));
                    }
                    let w = matrix(i)?;
                    let (_, b) = f32_tensor(&file, &tensor_name(i, "bias"), 1)?;
                    layers.push(Dense::new(w, Array1::from(b))?);
                }
                if layers.is_empty() {
                    return Err(bad(format!("no tensor \"{}\"", tensor_name(0, "weight"))));
                }
                Model::Network(Mlp::from_layers(layers, head)?)
            }
            "cnn" => {
                if output != "softmax" {
                    return Err(bad(format!(
                        "expected output \"softmax\" for a cnn, found \"{output}\""
                    )));
                }
                let side: usize = get("side")?
                    .parse()
                    .map_err(|e| bad(format!("side: {e}")))?;
                let mut convs = Vec::new();
                while file
                    .names()
                    .contains(&conv_name(convs.len(), "weight").as_str())
                {
                    let i = convs.len();
                    let (shape, values) = f32_tensor(&file, &conv_name(i, "weight"), 4)?;
                    let (c_out, c_in, k, kx) = (shape[0], shape[1], shape[2], shape[3]);
                    if k != kx {
                        return Err(bad(format!(
                            "tensor \"{}\": expected a square kernel, found {k} x {kx}",
                            conv_name(i, "weight")
                        )));
                    }
                    let w = Array2::from_shape_fn((k * k * c_in, c_out), |(r, co)| {
                        let (ky, kx, ci) = (r / (k * c_in), r / c_in % k, r % c_in);
                        values[((co * c_in + ci) * k + ky) * k + kx]
                    });
                    let (_, b) = f32_tensor(&file, &conv_name(i, "bias"), 1)?;
                    convs.push(Conv::new(k, c_in, w, Array1::from(b))?);
                }
                let mut dense = Vec::new();
                while file
                    .names()
                    .contains(&tensor_name(dense.len(), "weight").as_str())
                {
                    let i = dense.len();
                    let w = matrix(i)?;
                    let (_, b) = f32_tensor(&file, &tensor_name(i, "bias"), 1)?;
                    dense.push(Dense::new(w, Array1::from(b))?);
                }
                Model::Cnn(Cnn::from_layers(side, convs, dense)?)
            }
            other => {
                return Err(bad(format!(
                    "expected kind \"linear\", \"network\" or \"cnn\", found \"{other}\""
                )))
            }
        };
        Ok((model, metadata))
    }
}

/// Rewrites the JSON header of safetensors `bytes` with its keys sorted.
/// The writer takes the metadata as a `HashMap`, whose order changes from
/// run to run; sorted, the same model always gives the same bytes. The
/// sorted text has the same length (the same keys and values, compact), so
/// the offsets stay valid.
fn sort_header(bytes: &mut [u8]) -> Result<()> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let text = serde_json::to_string(&header).map_err(|e| bad(e.to_string()))?;
    // `serde_json::Value`'s maps are sorted by key.
    let sorted: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let sorted = sorted.to_string();
    let mut n = [0u8; 8];
    n.copy_from_slice(bytes.get(..8).ok_or_else(|| bad("no header"))?);
    let len = usize::try_from(u64::from_le_bytes(n)).map_err(|e| bad(e.to_string()))?;
    let region = bytes
        .get_mut(8..8 + len)
        .ok_or_else(|| bad("header past the end"))?;
    // The writer pads its header with spaces to a multiple of 8 bytes.
    if sorted.len() > region.len() {
        return Err(bad("the sorted header is longer than the written one"));
    }
    region.fill(b' ');
    region[..sorted.len()].copy_from_slice(sorted.as_bytes());
    Ok(())
}

/// The shape and values of the F32 tensor `name` of rank `rank`.
fn f32_tensor(file: &SafeTensors<'_>, name: &str, rank: usize) -> Result<(Vec<usize>, Vec<f32>)> {
    let view = file
        .tensor(name)
        .map_err(|_| bad(format!("no tensor \"{name}\"")))?;
    if view.dtype() != Dtype::F32 {
        return Err(bad(format!(
            "tensor \"{name}\": expected dtype F32, found {:?}",
            view.dtype()
        )));
    }
    let shape = view.shape().to_vec();
    if shape.len() != rank || shape.contains(&0) {
        return Err(bad(format!(
            "tensor \"{name}\": expected {rank} non-zero dimensions, found shape {shape:?}"
        )));
    }
    // The reader checked that the data's length is the shape's.
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!(
            "tensor \"{name}\": value {i} is {}, not a finite f32",
            values[i]
        )));
    }
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Init;
    use rand::SeedableRng;

    fn models() -> Vec<Model> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        vec![
            Model::Linear(LinearModel::new(7, 3, Init::default(), &mut rng).unwrap()),
            Model::Network(Mlp::new(7, None, 3, Head::Softmax, false, &mut rng).unwrap()),
            Model::Network(Mlp::new(7, Some(4), 3, Head::Sigmoid, false, &mut rng).unwrap()),
            Model::Cnn(Cnn::new(11, 3, &[2, 3], Some(4), 3, &mut rng).unwrap()),
        ]
    }

    #[test]
    fn a_cnn_is_written_in_the_onnx_layout_and_read_back() {
        let model = models().remove(3);
        let Model::Cnn(cnn) = &model else {
            unreachable!()
        };
        let bytes = model.to_safetensors(&Metadata::new()).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = file.names();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "convs.0.bias",
                "convs.0.weight",
                "convs.1.bias",
                "convs.1.weight",
                "layers.0.bias",
                "layers.0.weight",
                "layers.1.bias",
                "layers.1.weight"
            ]
        );
        // convs.1: 3 filters over 2 channels, 3 x 3.
        let view = file.tensor("convs.1.weight").unwrap();
        assert_eq!(view.shape(), [3, 2, 3, 3]);
        // Filter 2, input channel 1, row 0, column 2: our row (0 * 3 + 2) * 2 + 1.
        let (co, ci, ky, kx) = (2, 1, 0, 2);
        let at = ((co * 2 + ci) * 3 + ky) * 3 + kx;
        let value = f32::from_le_bytes(view.data()[4 * at..4 * at + 4].try_into().unwrap());
        assert_eq!(value.to_bits(), cnn.convs()[1].weights()[[5, 2]].to_bits());
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let info = header.metadata().clone().unwrap();
        assert_eq!(
            (info["kind"].as_str(), info["side"].as_str()),
            ("cnn", "11")
        );
        assert_eq!(Model::from_safetensors(&bytes).unwrap().0, model);
    }

    #[test]
    fn every_kind_round_trips_with_its_metadata() {
        let mut metadata = Metadata::new();
        metadata.insert("dataset".into(), serde_json::json!({"name": "toy"}));
        for model in models() {
            let bytes = model.to_safetensors(&metadata).unwrap();
            // The same model, the same bytes (the header's keys sorted).
            assert_eq!(bytes, model.to_safetensors(&metadata).unwrap());
            let (back, meta) = Model::from_safetensors(&bytes).unwrap();
            assert_eq!(back, model);
            assert_eq!(meta, metadata);
            let (back, meta) =
                Model::from_safetensors(&model.to_safetensors(&Metadata::new()).unwrap()).unwrap();
            assert_eq!((back, meta), (model, Metadata::new()));
        }
    }

    #[test]
    fn model_files_are_told_apart_by_name_or_content() {
        let dir = tempfile::tempdir().unwrap();
        let model = models().remove(2);
        let mut metadata = Metadata::new();
        metadata.insert("dataset".into(), "toy".into());
        let named = dir.path().join("m.safetensors");
        model.save_with(&named, &metadata).unwrap();
        assert_eq!(
            std::fs::read(&named).unwrap(),
            model.to_safetensors(&metadata).unwrap()
        );
        let renamed = dir.path().join("m.bin");
        std::fs::rename(&named, &renamed).unwrap();
        assert_eq!(
            Model::load_with_metadata(&renamed).unwrap(),
            (model.clone(), metadata)
        );
        // A JSON file under a safetensors name gets the safetensors error.
        let json = dir.path().join("j.safetensors");
        std::fs::write(&json, model.to_json_string().unwrap()).unwrap();
        let err = Model::load(&json).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "model file {}: not a safetensors file",
                json.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn writes_the_documented_names_and_metadata() {
        let models = models();
        let bytes = models[2].to_safetensors(&Metadata::new()).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = file.names();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "layers.0.bias",
                "layers.0.weight",
                "layers.1.bias",
                "layers.1.weight"
            ]
        );
        assert_eq!(file.tensor("layers.0.weight").unwrap().shape(), [7, 4]);
        assert_eq!(file.tensor("layers.1.bias").unwrap().shape(), [3]);
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let info = header.metadata().clone().unwrap();
        assert_eq!(info["kind"], "network");
        assert_eq!(info["output"], "sigmoid");
        assert_eq!(info["version"], "2");
        assert_eq!(info["normalization"], "x/255-0.5");
        let bytes = models[0].to_safetensors(&Metadata::new()).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(file.names(), ["layers.0.weight"]);
        // The values as the model holds them, little-endian.
        let Model::Linear(linear) = &models[0] else {
            unreachable!()
        };
        let first = f32::from_le_bytes(
            file.tensor("layers.0.weight").unwrap().data()[..4]
                .try_into()
                .unwrap(),
        );
        assert_eq!(first.to_bits(), linear.weights()[[0, 0]].to_bits());
    }

    fn reason(bytes: &[u8]) -> String {
        match Model::from_safetensors(bytes) {
            Err(Error::ModelTensors { reason }) => reason,
            other => panic!("expected ModelTensors, got {other:?}"),
        }
    }

    #[test]
    fn rejects_what_is_not_a_model() {
        assert!(reason(b"{\"format\":\"mnist-model\"}").starts_with("not a safetensors file"));
        assert!(reason(&[]).starts_with("not a safetensors file"));
        let bytes = models()[1].to_safetensors(&Metadata::new()).unwrap();
        assert!(reason(&bytes[..bytes.len() - 1]).starts_with("not a safetensors file"));
        // A safetensors file of someone else's.
        let t = F32Tensor::new(vec![2], [1.0f32, 2.0].iter());
        let other = safetensors::serialize([("w", &t)], None).unwrap();
        assert_eq!(reason(&other), "the header's metadata has no \"format\"");
        let with = |key: &str, value: &str| {
            let mut info: HashMap<String, String> = [
                ("format", "mnist-model"),
                ("normalization", "x/255-0.5"),
                ("bias_feature", "last"),
                ("kind", "network"),
                ("output", "softmax"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            info.insert(key.to_string(), value.to_string());
            let w = F32Tensor::new(vec![2, 1], [1.0f32, f32::NAN].iter());
            let b = F32Tensor::new(vec![1], [0.5f32].iter());
            safetensors::serialize([("layers.0.weight", &w), ("layers.0.bias", &b)], Some(info))
                .unwrap()
        };
        assert_eq!(
            reason(&with("normalization", "x/255")),
            "expected normalization \"x/255-0.5\", found \"x/255\""
        );
        assert_eq!(
            reason(&with("kind", "tree")),
            "expected kind \"linear\", \"network\" or \"cnn\", found \"tree\""
        );
        assert_eq!(
            reason(&with("output", "tanh")),
            "expected output \"sigmoid\" or \"softmax\", found \"tanh\""
        );
        assert_eq!(
            reason(&with("metadata", "[1]")).split(':').next(),
            Some("metadata is not a JSON object")
        );
        assert_eq!(
            reason(&with("kind", "network")),
            "tensor \"layers.0.weight\": value 1 is NaN, not a finite f32"
        );
    }
}
