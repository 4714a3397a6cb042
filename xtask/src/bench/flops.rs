//! The work of a run: its floating-point operations, to tell GFLOP/s and
//! the fraction of the machine's FMA peak.

use serde_json::Value;

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
