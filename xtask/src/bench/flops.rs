//! The work of a run: its floating-point operations, to tell GFLOP/s and
//! the fraction of the machine's FMA peak.

use serde_json::Value;

use super::options::Preset;
use crate::peak;

/// What one of this build's runs computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// The kernel path the report names.
    pub kernel: String,
    /// FLOPs of the two products over the run (see [`peak::linear_flops`]).
    pub flops: f64,
}

/// The kernel path and the FLOPs of a run, from its report; `None` when
/// the report lacks them or trained another model.
pub fn report_work(text: &str, epochs: usize) -> Option<Work> {
    let report: Value = serde_json::from_str(text).ok()?;
    let field = |key: &str| report.get(key);
    let flops = peak::linear_flops(
        field("model")?.as_str()?,
        field("train_samples")?.as_u64()?,
        field("val_samples")?.as_u64()?,
        epochs,
    )?;
    Some(Work {
        kernel: field("kernel")?.as_str()?.to_string(),
        flops,
    })
}

/// One matrix product of a layer, per sample: `rows x inner` times `inner x
/// cols`, that is `rows * inner * cols` multiply-adds. A dense layer is one
/// row (`inner` inputs, `cols` outputs); a convolution is its im2col GEMM,
/// a row per output position and `5 * 5 * channels in` columns of patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    /// Rows per sample (output positions).
    pub rows: u64,
    /// Inner dimension (inputs of a unit).
    pub inner: u64,
    /// Columns (units, filters).
    pub cols: u64,
}

impl Product {
    const fn new(rows: u64, inner: u64, cols: u64) -> Self {
        Self { rows, inner, cols }
    }

    /// Multiply-adds per sample.
    pub fn macs(self) -> u64 {
        self.rows * self.inner * self.cols
    }
}

/// The products of a preset's network, input first.
///
/// - post and softmax: `785 x 10` (784 pixels and the bias feature);
/// - mlp: `785 x 256`, `256 x 10`;
/// - cnn: conv 5x5 1 -> 16 on 28 x 28 is `576 x 25 x 16` (24 x 24
///   positions), pool to 12 x 12, conv 5x5 16 -> 32 is `64 x 400 x 32`
///   (8 x 8 positions), pool to 4 x 4 x 32 = 512, then `512 x 128` and
///   `128 x 10`.
///
/// Biases, activations, pooling, the softmax and the update are left out:
/// they are linear in the parameters or activations, not products.
pub fn network(preset: Preset) -> Vec<Product> {
    match preset {
        Preset::Post | Preset::Softmax => vec![Product::new(1, 785, 10)],
        Preset::Mlp => vec![Product::new(1, 785, 256), Product::new(1, 256, 10)],
        Preset::Cnn => vec![
            Product::new(24 * 24, 5 * 5, 16),
            Product::new(8 * 8, 5 * 5 * 16, 32),
            Product::new(1, 4 * 4 * 32, 128),
            Product::new(1, 128, 10),
        ],
    }
}

/// FLOPs of one training sample's products: for each product `P = rows x
/// inner x cols`, `2 P` for the forward pass, `2 P` for the weight
/// gradient, and `2 P` for the gradient of its input, which training needs
/// for every product but the first (the pixels need none):
///
/// `train = sum_l 2 P_l (2 + [l > 1])`
pub fn train_flops_per_sample(products: &[Product]) -> u64 {
    products
        .iter()
        .enumerate()
        .map(|(l, p)| 2 * p.macs() * if l == 0 { 2 } else { 3 })
        .sum()
}

/// FLOPs of one evaluated sample: the forward pass, `eval = sum_l 2 P_l`.
pub fn eval_flops_per_sample(products: &[Product]) -> u64 {
    products.iter().map(|p| 2 * p.macs()).sum()
}

/// FLOPs of a run of `epochs` epochs of `train` training samples, with an
/// evaluation of `val` samples after each epoch (the test set, as the
/// trainer and the PyTorch peers do):
///
/// `epochs * (train * train_flops_per_sample + val * eval_flops_per_sample)`
///
/// For the post's `785 x 10` that is `2 F C (2 train + val) epochs`, the
/// count of [`peak::linear_flops`]. The same count serves the PyTorch peers:
/// same network, same samples.
pub fn run_flops(preset: Preset, train: u64, val: u64, epochs: usize) -> f64 {
    let products = network(preset);
    let per_epoch = train as f64 * train_flops_per_sample(&products) as f64
        + val as f64 * eval_flops_per_sample(&products) as f64;
    per_epoch * epochs as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_counts_785_x_10() {
        let p = network(Preset::Softmax);
        // Forward 2 * 7850 and weight gradient 2 * 7850; no input gradient.
        assert_eq!(train_flops_per_sample(&p), 31_400);
        assert_eq!(eval_flops_per_sample(&p), 15_700);
        // 60000 * 31400 + 10000 * 15700 = 2.041e9 an epoch.
        assert_eq!(run_flops(Preset::Softmax, 60_000, 10_000, 1), 2.041e9);
        assert_eq!(run_flops(Preset::Softmax, 60_000, 10_000, 60), 122.46e9);
        // The post's model is the same product, counted the same way.
        assert_eq!(
            peak::linear_flops("linear 785 x 10, sigmoid", 60_000, 10_000, 10),
            Some(run_flops(Preset::Post, 60_000, 10_000, 10))
        );
    }

    #[test]
    fn mlp_counts_785_x_256_x_10() {
        let p = network(Preset::Mlp);
        // 785 * 256 = 200960 and 256 * 10 = 2560 multiply-adds:
        // 2 * (200960 * 2 + 2560 * 3) = 819200, forward 2 * 203520.
        assert_eq!(train_flops_per_sample(&p), 819_200);
        assert_eq!(eval_flops_per_sample(&p), 407_040);
        // 60000 * 819200 + 10000 * 407040 = 53.2224e9 an epoch.
        assert_eq!(run_flops(Preset::Mlp, 60_000, 10_000, 1), 53.2224e9);
    }

    #[test]
    fn cnn_counts_its_im2col_products() {
        let p = network(Preset::Cnn);
        let macs: Vec<u64> = p.iter().map(|p| p.macs()).collect();
        assert_eq!(macs, [230_400, 819_200, 65_536, 1_280]);
        // Forward 2 * 1116416, weight gradients the same, input gradients
        // 2 * (819200 + 65536 + 1280).
        assert_eq!(eval_flops_per_sample(&p), 2_232_832);
        assert_eq!(train_flops_per_sample(&p), 2 * 2_232_832 + 1_772_032);
        assert_eq!(
            run_flops(Preset::Cnn, 60_000, 10_000, 12),
            12.0 * (60_000.0 * 6_237_696.0 + 10_000.0 * 2_232_832.0)
        );
    }
}
