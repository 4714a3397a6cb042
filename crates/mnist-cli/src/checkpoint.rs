//! Checkpoints: what `--checkpoint-dir` writes after every epoch and
//! `--resume` continues from.
//!
//! A checkpoint holds the settings, the number of epochs completed, the
//! weights and the history so far. It needs no random-number state: the
//! order of epoch `e` is drawn from the seed and `e` alone, and the initial
//! weights matter only before the first epoch. So a resumed run repeats
//! exactly the steps the uninterrupted run would have taken, and ends with
//! the same model, bit for bit.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mnist_model::Model;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::output::write_atomic;
use crate::report::EpochRecord;
use crate::train::TrainArgs;

/// The checkpoint format's name.
const FORMAT: &str = "mnist-checkpoint";
/// The checkpoint format's version.
const VERSION: u64 = 1;
/// The file inside the checkpoint directory.
const FILE: &str = "checkpoint.json";

/// The state of a run after a whole number of epochs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    format: String,
    version: u64,
    /// The run's settings.
    pub config: TrainArgs,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Per-epoch records so far.
    pub epochs: Vec<EpochRecord>,
    /// `[iteration, loss]` for every batch so far.
    pub iterations: Vec<(usize, f64)>,
    /// The model file's content (see `mnist_model`).
    model: serde_json::Value,
    /// The optimiser's momentum, per layer `(weights, biases)`, for networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    velocity: Option<VelocityRows>,
}

/// [`Velocity`] as JSON: per layer, the weights' rows and the biases.
type VelocityRows = Vec<(Vec<Vec<f32>>, Vec<f32>)>;

/// The momentum of a network's optimiser, per layer.
pub type Velocity = Vec<(Array2<f32>, Array1<f32>)>;

impl Checkpoint {
    /// A checkpoint of `model` after `epochs.len()` epochs.
    pub fn new(
        config: &TrainArgs,
        model: &Model,
        velocity: Option<&[(Array2<f32>, Array1<f32>)]>,
        epochs: &[EpochRecord],
        iterations: &[(usize, f64)],
    ) -> Result<Self> {
        let model = serde_json::from_str(&model.to_json_string()?)?;
        let velocity = velocity.map(|layers| {
            layers
                .iter()
                .map(|(w, b)| {
                    (
                        w.rows().into_iter().map(|r| r.to_vec()).collect(),
                        b.to_vec(),
                    )
                })
                .collect()
        });
        Ok(Self {
            velocity,
            format: FORMAT.into(),
            version: VERSION,
            config: config.clone(),
            epochs_done: epochs.len(),
            epochs: epochs.to_vec(),
            iterations: iterations.to_vec(),
            model,
        })
    }

    /// The checkpoint file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Writes the checkpoint into `dir`, replacing the previous one
    /// atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).context("serialising the checkpoint")?;
        write_atomic(&Self::path(dir), &json)
            .with_context(|| format!("--checkpoint-dir {}", dir.display()))
    }

    /// Reads and checks the checkpoint in `dir`.
    pub fn load(dir: &Path) -> Result<(Self, Model, Option<Velocity>)> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("--resume {}: cannot read {}", dir.display(), path.display())
        })?;
        let bad = |what: String| anyhow::anyhow!("--resume {}: {what}", path.display());
        let ck: Checkpoint =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a checkpoint: {e}")))?;
        if ck.format != FORMAT || ck.version != VERSION {
            return Err(bad(format!(
                "expected format {FORMAT:?} version {VERSION}, found {:?} version {}",
                ck.format, ck.version
            )));
        }
        if ck.epochs.len() != ck.epochs_done || ck.epochs_done > ck.config.epochs {
            return Err(bad(format!(
                "inconsistent: {} epochs done, {} recorded, {} planned",
                ck.epochs_done,
                ck.epochs.len(),
                ck.config.epochs
            )));
        }
        let model =
            Model::from_json_str(&ck.model.to_string()).map_err(|e| bad(format!("model: {e}")))?;
        let velocity = match &ck.velocity {
            None => None,
            Some(layers) => Some(
                layers
                    .iter()
                    .map(|(rows, b)| {
                        let cols = rows.first().map_or(0, Vec::len);
                        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
                        let w = Array2::from_shape_vec((rows.len(), cols), flat)
                            .map_err(|e| bad(format!("velocity: {e}")))?;
                        Ok((w, Array1::from(b.clone())))
                    })
                    .collect::<Result<Velocity>>()?,
            ),
        };
        Ok((ck, model, velocity))
    }
}

/// Checks that `dir` can hold checkpoints: it exists or can be created, and
/// is writable.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("--checkpoint-dir {}: not a directory", dir.display());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--checkpoint-dir {}: cannot create it", dir.display()))?;
    crate::output::check_writable("--checkpoint-dir", &Checkpoint::path(dir))
}
