//! Models for MNIST and their training steps. The blog post this project
//! grew from trains a one-layer sigmoid classifier, `p = sigmoid(X W)` with
//! `W` of shape `(785, 10)`, by plain SGD on the clipped binary
//! cross-entropy, with a cosine warm-restart learning rate times a warm-up
//! factor ([`LinearModel`], [`Sgd`]); the same layer with a softmax
//! [`Head`] and SGD with momentum and weight decay is softmax regression,
//! on the same kernels. [`Mlp`] adds a hidden ReLU layer, [`Cnn`]
//! convolutions.
//!
//! This crate knows math on [`ndarray`] arrays, not files of images: inputs
//! are `(rows, features)` matrices already scaled (`x / 255 - 0.5` plus a
//! bias column of ones for MNIST) and targets are one-hot rows.
//!
//! The two products of training (`X W` and `X^T (p - y)`) run in kernels
//! specialised to few outputs, with AVX-512, AVX2 or NEON chosen at run
//! time (or forced by [`KERNEL_ENV`]). The same seed and data give the same
//! weights bit for bit, whatever the thread scheduling and whatever the CPU:
//! every path fuses its multiply-adds and sums in the same order.
//!
//! # Examples
//!
//! ```
//! use mnist_model::{evaluate, post_schedule, Init, LinearModel, LrSchedule, Sgd, StepScratch};
//! use ndarray::Array2;
//! use rand::SeedableRng;
//!
//! // Two classes told apart by the sign of the first feature; the second
//! // feature is the constant bias.
//! let x = Array2::from_shape_fn((64, 2), |(r, c)| if c == 1 { 1.0 } else if r % 2 == 0 { 0.4 } else { -0.4 });
//! let labels: Vec<u8> = (0..64).map(|r| (r % 2) as u8).collect();
//! let y = Array2::from_shape_fn((64, 2), |(r, c)| if usize::from(labels[r]) == c { 1.0 } else { 0.0 });
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
//! let mut model = LinearModel::new(2, 2, Init::default(), &mut rng)?;
//! let (mut sgd, schedule, mut scratch) = (Sgd::new(64)?, post_schedule(), StepScratch::new());
//! for epoch in 0..30 {
//!     let lr = schedule.lr(epoch) as f32 * 100.0;
//!     sgd.step(&mut model, x.view(), y.view(), lr, &mut scratch)?;
//! }
//! let result = evaluate(&model, x.view(), &labels)?;
//! assert_eq!(result.accuracy, 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod aligned;
mod background;
mod cnn;
mod error;
mod gemm;
mod head;
mod io;
mod kernel;
mod linear;
mod loss;
mod metrics;
mod mlp;
mod model;
mod optim;
mod parts;
mod pool;
mod rows;
mod schedule;
mod sgd;
mod sigmoid;
mod tensors;

pub use crate::{
    background::{with_background, Background},
    cnn::{
        evaluate_cnn, Cnn, CnnTrainer, Conv, ConvCache, MaxPool, PoolCache, Relu, CNN_VERSION, PART,
    },
    error::{Error, Result},
    head::Head,
    io::{MODEL_FORMAT, MODEL_VERSION},
    linear::{Init, LinearModel},
    loss::{bce_loss, PROB_CLIP},
    metrics::{
        evaluate, evaluate_rows, ClassMetrics, ConfusionMatrix, Evaluation, MacroAverage,
        PendingEvaluation,
    },
    mlp::{evaluate_mlp, Dense, Mlp, MlpTrainer, NETWORK_VERSION},
    model::{Metadata, Model},
    rows::{RowSource, RowsKey},
    schedule::{post_schedule, Constant, CosineWarmRestarts, LrSchedule, Product, Warmup},
    sgd::{gradient, Sgd, StepScratch},
    tensors::{conv_name, tensor_name, BIAS_FEATURE, NORMALIZATION},
};

/// The environment variable that forces a kernel path: `avx512`, `avx2`,
/// `neon` or `portable`. Unset or empty, the fastest path this CPU supports
/// runs. Every path gives the same bits; forcing one is for measuring and
/// checking them.
pub const KERNEL_ENV: &str = kernel::ENV;

/// The kernel path of this process, checked: the one [`KERNEL_ENV`] names,
/// or the fastest this CPU supports. Returns the name [`kernel_path`]
/// reports. Programs call it before any work, to report a bad
/// [`KERNEL_ENV`] as an error rather than a panic.
///
/// # Errors
///
/// [`Error::Kernel`] when [`KERNEL_ENV`] names no kernel path, or one this
/// CPU cannot run (`avx512` on a CPU without AVX-512, `neon` on x86-64).
pub fn select_kernel() -> Result<&'static str> {
    kernel::selected().map(|p| p.name())
}

/// Which kernel runs: `"avx512f+fma"`, `"avx2+fma"`, `"neon"` or
/// `"portable"`. All four give identical results, bit for bit: every
/// multiply-add is fused (one rounding), in the same order, and the lanes
/// are summed by the same tree.
///
/// # Panics
///
/// When [`KERNEL_ENV`] is invalid (see [`select_kernel`]); so do the
/// functions that train or evaluate.
pub fn kernel_path() -> &'static str {
    kernel::path().name()
}

/// Every kernel path this CPU can take, fastest first (the one that runs
/// unless [`KERNEL_ENV`] says otherwise) and `"portable"`, which any CPU
/// can take, last.
pub fn kernel_paths() -> Vec<&'static str> {
    kernel::Path::ALL
        .into_iter()
        .filter(|path| path.missing().is_none())
        .map(kernel::Path::name)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_path_taken_is_listed_and_portable_last() {
        let paths = super::kernel_paths();
        if let Ok(path) = super::select_kernel() {
            assert!(paths.contains(&path), "{path} not in {paths:?}");
        }
        assert_eq!(paths.last(), Some(&"portable"));
        #[cfg(target_arch = "aarch64")]
        assert_eq!(paths.first(), Some(&"neon"));
    }
}
