//! Exports the models of [`mnist_model`] as ONNX graphs that any ONNX
//! runtime can run on raw pixels.
//!
//! The graph takes `pixels`, `float32 [N, 1, side, side]` with values from 0
//! to 255 (`side` is 28 for MNIST), does the model's own preprocessing
//! (`x / 255 - 0.5`; the constant bias feature of 1 becomes an added row of
//! weights), and returns `outputs`, `float32 [N, classes]`: the sigmoids of
//! the post's model, or the network's head (sigmoid or softmax). A
//! convolutional network's convolutions become `Conv`, `Relu` and a 2 x 2
//! `MaxPool` each, followed by a `Transpose` to the (row, column, channel)
//! order its dense layers read. The nodes
//! are those of the default ONNX domain at opset 13; the protobuf messages
//! are the `onnx-protobuf` crate's, generated from the official
//! `onnx.proto`.
//!
//! # Examples
//!
//! ```
//! use mnist_model::{Init, LinearModel, Metadata, Model};
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
//! let model = Model::Linear(LinearModel::new(785, 10, Init::Zeros, &mut rng)?);
//! let bytes = mnist_onnx::to_onnx(&model, &Metadata::new())?;
//! assert!(!bytes.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use mnist_model::{Head, Metadata, Model};
use onnx_protobuf::{
    tensor_proto::DataType, tensor_shape_proto, type_proto, GraphProto, Message, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};

/// The ONNX opset the graphs use (that of the default domain).
pub const OPSET: i64 = 13;

/// The ONNX IR version of the files: 7, the one that goes with opset 13.
pub const IR_VERSION: i64 = 7;

/// The graph's input.
pub const INPUT: &str = "pixels";

/// The graph's output.
pub const OUTPUT: &str = "outputs";

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model does not read a square image plus the bias feature.
    #[error(
        "the model takes {features} features, which is not a square image of pixels plus the bias feature (785 for 28 x 28)"
    )]
    NotAnImageModel {
        /// The model's features.
        features: usize,
    },

    /// A size does not fit the ONNX file's 64-bit dimensions.
    #[error("size {0} does not fit an ONNX dimension")]
    TooLarge(usize),

    /// The model's metadata could not be written as JSON.
    #[error("metadata: {0}")]
    Metadata(serde_json::Error),

    /// The protobuf encoder failed.
    #[error("cannot encode the ONNX model: {0}")]
    Encode(protobuf::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

fn dim(n: usize) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::TooLarge(n))
}

/// A float tensor of `dims` holding `values`, named `name`.
fn float_tensor(name: &str, dims: &[usize], values: Vec<f32>) -> Result<TensorProto> {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.data_type = DataType::FLOAT as i32;
    t.dims = dims.iter().map(|&d| dim(d)).collect::<Result<_>>()?;
    t.float_data = values;
    Ok(t)
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.to_string();
    n.name = output.to_string();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![output.to_string()];
    n
}

/// A `float32` tensor value of the given dimensions (`None`: the batch,
/// named `N`).
fn float_value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    shape.dim = dims
        .iter()
        .map(|d| {
            let mut dimension = tensor_shape_proto::Dimension::new();
            dimension.value = Some(match d {
                Some(n) => tensor_shape_proto::dimension::Value::DimValue(*n),
                None => tensor_shape_proto::dimension::Value::DimParam("N".to_string()),
            });
            dimension
        })
        .collect();
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = DataType::FLOAT as i32;
    tensor.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(tensor));
    let mut v = ValueInfoProto::new();
    v.name = name.to_string();
    v.type_ = Some(ty).into();
    v
}

fn entry(key: &str, value: String) -> StringStringEntryProto {
    let mut e = StringStringEntryProto::new();
    e.key = key.to_string();
    e.value = value;
    e
}

/// One dense layer as ONNX wants it: `x W + b`, `W` of `(inputs, outputs)`.
struct Layer {
    inputs: usize,
    outputs: usize,
    weights: Vec<f32>,
    biases: Vec<f32>,
}

/// The model's layers, first to last, with the first one's bias-feature
/// row (its last) folded into its biases; and its head.
fn layers(model: &Model) -> (Vec<Layer>, Head) {
    let split_bias_row = |w: ndarray::ArrayView2<'_, f32>, b: Option<&[f32]>| {
        let (rows, outputs) = w.dim();
        let pixels = rows - 1;
        let weights: Vec<f32> = w
            .rows()
            .into_iter()
            .take(pixels)
            .flatten()
            .copied()
            .collect();
        let biases = w
            .row(pixels)
            .iter()
            .enumerate()
            .map(|(j, &v)| b.map_or(v, |b| v + b[j]))
            .collect();
        Layer {
            inputs: pixels,
            outputs,
            weights,
            biases,
        }
    };
    match model {
        Model::Linear(m) => (vec![split_bias_row(m.weights().view(), None)], m.head()),
        Model::Cnn(m) => {
            let layers = m
                .dense()
                .iter()
                .map(|l| {
                    let (inputs, outputs) = l.weights().dim();
                    Layer {
                        inputs,
                        outputs,
                        weights: l.weights().iter().copied().collect(),
                        biases: l.biases().to_vec(),
                    }
                })
                .collect();
            (layers, Head::Softmax)
        }
        Model::Network(m) => {
            let layers = m
                .layers()
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let b = l.biases().to_vec();
                    if i == 0 {
                        split_bias_row(l.weights(), Some(&b))
                    } else {
                        let (inputs, outputs) = l.weights().dim();
                        Layer {
                            inputs,
                            outputs,
                            weights: l.weights().iter().copied().collect(),
                            biases: b,
                        }
                    }
                })
                .collect();
            (layers, m.head())
        }
    }
}

fn ints(name: &str, values: &[i64]) -> onnx_protobuf::AttributeProto {
    let mut a = onnx_protobuf::AttributeProto::new();
    a.name = name.to_string();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::INTS.into();
    a.ints = values.to_vec();
    a
}

/// The convolutions of `cnn` (Conv, Relu, 2 x 2 MaxPool each) on `input`
/// (`[N, 1, side, side]`), ending in `nhwc`: the last pooling's values in
/// the (row, column, channel) order of the first dense layer's inputs.
/// Returns their number per image.
fn convolutions(graph: &mut GraphProto, cnn: &mnist_model::Cnn, input: &str) -> Result<usize> {
    let mut current = input.to_string();
    let (mut side, mut channels) = (cnn.side(), 1);
    for (i, conv) in cnn.convs().iter().enumerate() {
        let (k, c_in, c_out) = (conv.kernel(), conv.inputs(), conv.channels());
        let w = conv.weights();
        // Ours: rows (ky, kx, input channel), columns filters; ONNX:
        // [filters, input channels, ky, kx].
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
        let (wn, bn) = (format!("convs.{i}.weight"), format!("convs.{i}.bias"));
        graph
            .initializer
            .push(float_tensor(&wn, &[c_out, c_in, k, k], values)?);
        graph
            .initializer
            .push(float_tensor(&bn, &[c_out], conv.biases().to_vec())?);
        let (z, relu, pool) = (
            format!("convs.{i}.conv"),
            format!("convs.{i}.relu"),
            format!("convs.{i}.pool"),
        );
        let mut c = node("Conv", &[&current, &wn, &bn], &z);
        c.attribute.push(ints("kernel_shape", &[dim(k)?, dim(k)?]));
        graph.node.push(c);
        graph.node.push(node("Relu", &[&z], &relu));
        let mut p = node("MaxPool", &[&relu], &pool);
        p.attribute.push(ints("kernel_shape", &[2, 2]));
        p.attribute.push(ints("strides", &[2, 2]));
        graph.node.push(p);
        current = pool;
        // The pooling floors an odd side.
        let convolved = side - k + 1;
        side = convolved / 2;
        channels = c_out;
    }
    let mut t = node("Transpose", &[&current], "nhwc");
    t.attribute.push(ints("perm", &[0, 2, 3, 1]));
    graph.node.push(t);
    Ok(side * side * channels)
}

/// The ONNX model of `model`, as the bytes of a `.onnx` file. The entries
/// of `metadata` go into the file's metadata properties as JSON text, with
/// `kind` (`linear` or `network`), `output` (`sigmoid` or `softmax`) and
/// `normalization` (`x/255-0.5`).
///
/// # Errors
/// [`Error::NotAnImageModel`] for a model whose features are not a square
/// image's pixels plus one; [`Error::Metadata`] or [`Error::Encode`] if
/// writing fails.
pub fn to_onnx(model: &Model, metadata: &Metadata) -> Result<Vec<u8>> {
    let features = model.features();
    let pixels = features.saturating_sub(1);
    let side = (pixels as f64).sqrt().round() as usize;
    if pixels == 0 || side * side != pixels {
        return Err(Error::NotAnImageModel { features });
    }
    let (layers, head) = layers(model);

    let mut graph = GraphProto::new();
    graph.name = "mnist".to_string();
    graph
        .initializer
        .push(float_tensor("scale", &[], vec![255.0])?);
    graph
        .initializer
        .push(float_tensor("centre", &[], vec![0.5])?);
    graph.node.push(node("Div", &[INPUT, "scale"], "scaled"));
    graph.node.push(node("Sub", &["scaled", "centre"], "image"));
    // The dense layers' input, one row an image.
    let flat_len = match model {
        Model::Cnn(cnn) => convolutions(&mut graph, cnn, "image")?,
        _ => pixels,
    };
    let source = match model {
        Model::Cnn(_) => "nhwc",
        _ => "image",
    };
    graph.initializer.push({
        let mut shape = TensorProto::new();
        shape.name = "flat_shape".to_string();
        shape.data_type = DataType::INT64 as i32;
        shape.dims = vec![2];
        shape.int64_data = vec![-1, dim(flat_len)?];
        shape
    });
    graph
        .node
        .push(node("Reshape", &[source, "flat_shape"], "features"));
    let mut current = "features".to_string();
    let last = layers.len() - 1;
    for (i, layer) in layers.into_iter().enumerate() {
        let (w, b) = (format!("layers.{i}.weight"), format!("layers.{i}.bias"));
        graph.initializer.push(float_tensor(
            &w,
            &[layer.inputs, layer.outputs],
            layer.weights,
        )?);
        graph
            .initializer
            .push(float_tensor(&b, &[layer.outputs], layer.biases)?);
        let product = format!("layers.{i}.product");
        let logits = format!("layers.{i}.logits");
        graph.node.push(node("MatMul", &[&current, &w], &product));
        graph.node.push(node("Add", &[&product, &b], &logits));
        current = logits;
        if i < last {
            let relu = format!("layers.{i}.relu");
            graph.node.push(node("Relu", &[&current], &relu));
            current = relu;
        }
    }
    let mut head_node = match head {
        Head::Sigmoid => node("Sigmoid", &[&current], OUTPUT),
        Head::Softmax => node("Softmax", &[&current], OUTPUT),
    };
    if head == Head::Softmax {
        let mut axis = onnx_protobuf::AttributeProto::new();
        axis.name = "axis".to_string();
        axis.type_ = onnx_protobuf::attribute_proto::AttributeType::INT.into();
        axis.i = -1;
        head_node.attribute.push(axis);
    }
    graph.node.push(head_node);
    let side = Some(dim(side)?);
    graph
        .input
        .push(float_value(INPUT, &[None, Some(1), side, side]));
    graph
        .output
        .push(float_value(OUTPUT, &[None, Some(dim(model.classes())?)]));

    let mut onnx = ModelProto::new();
    onnx.ir_version = IR_VERSION;
    onnx.opset_import.push({
        let mut opset = OperatorSetIdProto::new();
        opset.version = OPSET;
        opset
    });
    onnx.producer_name = "mnist-rs".to_string();
    onnx.producer_version = env!("CARGO_PKG_VERSION").to_string();
    onnx.doc_string = format!(
        "{}: {}",
        model.describe(),
        "pixels 0..255 in, outputs per class"
    );
    onnx.graph = Some(graph).into();
    let kind = match model {
        Model::Linear(_) => "linear",
        Model::Network(_) => "network",
        Model::Cnn(_) => "cnn",
    };
    onnx.metadata_props.push(entry("kind", kind.to_string()));
    onnx.metadata_props
        .push(entry("output", model.output_kind().to_string()));
    onnx.metadata_props.push(entry(
        "normalization",
        mnist_model::NORMALIZATION.to_string(),
    ));
    for (key, value) in metadata {
        let text = serde_json::to_string(value).map_err(Error::Metadata)?;
        onnx.metadata_props.push(entry(key, text));
    }
    onnx.write_to_bytes().map_err(Error::Encode)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mnist_model::{Dense, Init, LinearModel, Mlp};
    use ndarray::{Array1, Array2};
    use rand::SeedableRng;

    fn decode(model: &Model) -> ModelProto {
        ModelProto::parse_from_bytes(&to_onnx(model, &Metadata::new()).unwrap()).unwrap()
    }

    fn ops(m: &ModelProto) -> Vec<&str> {
        m.graph.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    #[test]
    fn the_linear_model_folds_its_bias_row_into_an_add() {
        // 4 pixels (2 x 2) and the bias feature; weights w[f][c] = 10 f + c.
        let w = Array2::from_shape_fn((5, 3), |(f, c)| (10 * f + c) as f32);
        let model = Model::Linear(LinearModel::from_weights(w.view()).unwrap());
        let m = decode(&model);
        assert_eq!((m.ir_version, m.opset_import[0].version), (7, 13));
        assert_eq!(
            ops(&m),
            ["Div", "Sub", "Reshape", "MatMul", "Add", "Sigmoid"]
        );
        let init = |name: &str| m.graph.initializer.iter().find(|t| t.name == name).unwrap();
        assert_eq!(init("flat_shape").int64_data, [-1, 4]);
        assert_eq!(init("layers.0.weight").dims, [4, 3]);
        assert_eq!(
            init("layers.0.weight").float_data,
            (0..4)
                .flat_map(|f| (0..3).map(move |c| (10 * f + c) as f32))
                .collect::<Vec<_>>()
        );
        assert_eq!(init("layers.0.bias").float_data, [40.0, 41.0, 42.0]);
        let input = &m.graph.input[0];
        let Some(type_proto::Value::TensorType(t)) = &input.type_.value else {
            panic!("not a tensor input")
        };
        let dims: Vec<_> = t.shape.dim.iter().map(|d| d.value.clone()).collect();
        use tensor_shape_proto::dimension::Value::{DimParam, DimValue};
        assert_eq!(
            dims,
            [
                Some(DimParam("N".into())),
                Some(DimValue(1)),
                Some(DimValue(2)),
                Some(DimValue(2))
            ]
        );
        assert_eq!(m.graph.output[0].name, OUTPUT);
    }

    #[test]
    fn a_network_adds_its_biases_and_a_relu_between_layers() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let hidden = Dense::new(
            Array2::from_elem((5, 2), 1.0),
            Array1::from(vec![0.25, -0.5]),
        )
        .unwrap();
        let out = Dense::new(Array2::from_elem((2, 3), 2.0), Array1::from(vec![1.0; 3])).unwrap();
        let model = Model::Network(Mlp::from_layers(vec![hidden, out], Head::Softmax).unwrap());
        let m = decode(&model);
        assert_eq!(
            ops(&m),
            ["Div", "Sub", "Reshape", "MatMul", "Add", "Relu", "MatMul", "Add", "Softmax"]
        );
        let init = |name: &str| m.graph.initializer.iter().find(|t| t.name == name).unwrap();
        // The bias-feature row (1.0) plus the layer's own biases.
        assert_eq!(init("layers.0.bias").float_data, [1.25, 0.5]);
        assert_eq!(init("layers.0.weight").dims, [4, 2]);
        assert_eq!(init("layers.1.weight").dims, [2, 3]);
        assert_eq!(m.graph.node.last().unwrap().attribute[0].i, -1);
        let props: Vec<_> = m
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert!(props.contains(&("output", "softmax")), "{props:?}");
        let sigmoid = Model::Network(Mlp::new(5, None, 3, Head::Sigmoid, true, &mut rng).unwrap());
        assert_eq!(
            ops(&decode(&sigmoid)),
            ["Div", "Sub", "Reshape", "MatMul", "Add", "Sigmoid"]
        );
    }

    #[test]
    fn a_cnn_convolves_pools_and_reorders_before_its_dense_layers() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let cnn = mnist_model::Cnn::new(12, 3, &[2, 3], Some(4), 10, &mut rng).unwrap();
        let m = decode(&Model::Cnn(cnn.clone()));
        assert_eq!(
            ops(&m),
            [
                "Div",
                "Sub",
                "Conv",
                "Relu",
                "MaxPool",
                "Conv",
                "Relu",
                "MaxPool",
                "Transpose",
                "Reshape",
                "MatMul",
                "Add",
                "Relu",
                "MatMul",
                "Add",
                "Softmax"
            ]
        );
        let init = |name: &str| m.graph.initializer.iter().find(|t| t.name == name).unwrap();
        // 12 -> conv 3 -> 10 -> pool -> 5 -> conv 3 -> 3 -> pool -> 1: 1 x 1 x 3.
        assert_eq!(init("flat_shape").int64_data, [-1, 3]);
        assert_eq!(init("convs.1.weight").dims, [3, 2, 3, 3]);
        // Filter 2, input channel 1, row 0, column 2: our row (0 * 3 + 2) * 2 + 1.
        let (co, ci, ky, kx) = (2, 1, 0, 2);
        let at = ((co * 2 + ci) * 3 + ky) * 3 + kx;
        assert_eq!(
            init("convs.1.weight").float_data[at].to_bits(),
            cnn.convs()[1].weights()[[5, 2]].to_bits()
        );
        let transpose = m
            .graph
            .node
            .iter()
            .find(|n| n.op_type == "Transpose")
            .unwrap();
        assert_eq!(transpose.attribute[0].ints, [0, 2, 3, 1]);
    }

    #[test]
    fn a_model_not_made_for_square_images_is_refused() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let model = Model::Linear(LinearModel::new(27, 10, Init::Zeros, &mut rng).unwrap());
        let err = to_onnx(&model, &Metadata::new()).unwrap_err().to_string();
        assert_eq!(
            err,
            "the model takes 27 features, which is not a square image of pixels plus the bias feature (785 for 28 x 28)"
        );
    }
}
