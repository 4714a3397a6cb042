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
use crate::train::{TrainArgs, FROM_CHECKPOINT};

/// The checkpoint format's name.
const FORMAT: &str = "mnist-checkpoint";
/// The checkpoint format's version.
const VERSION: u64 = 1;
/// The file inside the checkpoint directory.
pub const FILE: &str = "checkpoint.json";

/// The state of a run after a whole number of epochs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    format: String,
    version: u64,
    /// The run's settings, with the data folder's real location.
    pub config: TrainArgs,
    /// The training set's fingerprint (`mnist_data::Fingerprint`); absent
    /// from checkpoints written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dataset: Option<String>,
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

pub use mnist_train::Velocity;

impl Checkpoint {
    /// A checkpoint of `model` after `epochs.len()` epochs.
    pub fn new(
        config: &TrainArgs,
        dataset: &str,
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
            dataset: Some(dataset.to_string()),
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

    /// Writes the checkpoint into `real`, where `dir` (as given to
    /// `--checkpoint-dir`) really is, replacing the previous one atomically.
    /// The folder is made with the first checkpoint, so a run stopped before
    /// one leaves no empty folder.
    pub fn save(&self, dir: &Path, real: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).context("serialising the checkpoint")?;
        if !real.is_dir() {
            std::fs::create_dir(real)
                .with_context(|| format!("--checkpoint-dir {}: cannot create it", dir.display()))?;
        }
        write_atomic(&Self::path(real), &json)
            .with_context(|| format!("--checkpoint-dir {}", dir.display()))
    }

    /// The settings of a run resumed from this checkpoint (read from `dir`)
    /// by the command line `given` (`matches` tells which flags it gave):
    /// the checkpoint's settings and outputs, with the command line's
    /// `--data-dir`, outputs, `--log-every` and `--quiet` where given.
    ///
    /// # Errors
    ///
    /// A setting given that differs from the checkpoint's, naming the flag
    /// and both values; `--epochs` may be larger, but not below the epochs
    /// done.
    pub fn settings(
        &self,
        given: &TrainArgs,
        matches: &clap::ArgMatches,
        dir: &Path,
    ) -> Result<TrainArgs> {
        let explicit =
            |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        let recorded = serde_json::to_value(&self.config)?;
        let asked = serde_json::to_value(given)?;
        for id in FROM_CHECKPOINT.into_iter().filter(|id| explicit(id)) {
            let flag = format!("--{}", id.replace('_', "-"));
            if id == "epochs" {
                if given.epochs < self.epochs_done {
                    bail!(
                        "{flag} {}: the checkpoint in {} has {} epochs done already",
                        given.epochs,
                        dir.display(),
                        self.epochs_done
                    );
                }
                continue;
            }
            if recorded.get(id) != asked.get(id) {
                bail!(
                    "{flag} {}: the checkpoint in {} was made with {flag} {}",
                    shown(asked.get(id)),
                    dir.display(),
                    shown(recorded.get(id))
                );
            }
        }
        let mut args = self.config.clone();
        if explicit("epochs") {
            args.epochs = given.epochs;
        }
        if explicit("data_dir") {
            args.data_dir.clone_from(&given.data_dir);
        }
        if explicit("save") {
            args.save.clone_from(&given.save);
        }
        if explicit("report") {
            args.report.clone_from(&given.report);
        }
        if explicit("log_every") {
            args.log_every = given.log_every;
        }
        args.quiet = given.quiet;
        args.checkpoint_dir = Some(
            given
                .checkpoint_dir
                .clone()
                .unwrap_or_else(|| dir.to_path_buf()),
        );
        args.overwrite_checkpoint = given.overwrite_checkpoint;
        args.resume.clone_from(&given.resume);
        Ok(args)
    }

    /// Checks that the data found in `data_dir` (its training set's
    /// `fingerprint`) is the dataset this checkpoint was trained on.
    pub fn check_dataset(&self, fingerprint: &str, data_dir: &Path) -> Result<()> {
        match &self.dataset {
            Some(recorded) if recorded != fingerprint => bail!(
                "--data-dir {}: not the dataset this run was trained on (its training set's \
                 fingerprint is {fingerprint}, the checkpoint's {recorded}); point --data-dir \
                 at the run's data, or start a new run",
                data_dir.display()
            ),
            _ => Ok(()),
        }
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

/// A setting's value as a user would type it.
fn shown(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => "(none)".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    /// The losses a checkpoint keeps come back with the same bits, so a
    /// resumed report equals an uninterrupted one (`serde_json`'s default
    /// parser is off by one unit in the last place for some numbers).
    #[test]
    fn losses_round_trip_bit_for_bit() -> Result<(), serde_json::Error> {
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let losses: Vec<(usize, f64)> = (0..20_000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Losses of the size training prints: 0.01 to 100.
                (
                    i,
                    10f64.powf((x >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0),
                )
            })
            .collect();
        let back: Vec<(usize, f64)> = serde_json::from_slice(&serde_json::to_vec(&losses)?)?;
        let bits = |v: &[(usize, f64)]| v.iter().map(|(_, l)| l.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&losses));
        Ok(())
    }
}
