//! Opening datasets with messages that say what to do.

use std::path::Path;

use anyhow::Context as _;
use anyhow::{bail, Result};
use mnist_data::{Dataset, KnownDataset, Loader, Part, Preprocess, FASHION_MNIST, MNIST};
use mnist_model::{Metadata, Model};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::paths::real_location;

/// Opens one part of an MNIST-layout folder; a missing folder or file gets
/// a message that says how to fetch the data.
pub fn open_part(dir: &Path, part: Part) -> Result<Dataset> {
    if !dir.is_dir() {
        bail!(
            "data directory {} not found: pass the folder of the four IDX files, or run \
             `mnist fetch` to fetch MNIST into the data home",
            dir.display()
        );
    }
    let (images, labels) = part.paths(dir);
    for path in [&images, &labels] {
        if !path.exists() {
            let gz = path.with_extension("gz");
            let mut gz_name = path.as_os_str().to_owned();
            gz_name.push(".gz");
            let hint = if Path::new(&gz_name).exists() || gz.exists() {
                " (a .gz is there: the files must be decompressed; `mnist fetch` does it)"
            } else {
                ""
            };
            bail!(
                "{} not found{hint}: run `mnist fetch` to fetch the dataset",
                path.display()
            );
        }
    }
    Ok(Dataset::open(dir, part)?)
}

/// What a model file records of the data it was trained on, and what a
/// command finds in the data it is given: the dataset's name, its class
/// names and the fingerprints of its parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// `mnist` or `fashion-mnist` when recognised, else the folder's name.
    pub name: String,
    /// The name of each class, by label.
    pub class_names: Vec<String>,
    /// The training set's fingerprint (`mnist_data::Fingerprint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<String>,
    /// The test set's fingerprint.
    pub test: String,
}

impl DatasetInfo {
    /// The dataset in `dir`, from its test set (and its training set, when
    /// opened): a known dataset by its test set's fingerprint, otherwise
    /// named after the folder (its real name, so `.` works), with
    /// Fashion-MNIST's class names for a folder whose name says fashion.
    pub fn of(dir: &Path, test: &Dataset, train: Option<&Dataset>) -> Self {
        let fingerprint = test.fingerprint();
        let (name, names): (String, Vec<String>) = match mnist_data::identify(&fingerprint) {
            Some(known) => (known.name.to_string(), known_names(known, test.classes())),
            None => {
                let real = real_location(dir).unwrap_or_else(|_| dir.to_path_buf());
                let folder = real.file_name().map_or_else(
                    || "dataset".to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                let look = if folder.to_ascii_lowercase().contains("fashion") {
                    &FASHION_MNIST
                } else {
                    &MNIST
                };
                (folder, known_names(look, test.classes()))
            }
        };
        Self {
            name,
            class_names: names,
            train: train.map(|t| t.fingerprint().to_string()),
            test: fingerprint.to_string(),
        }
    }

    /// The model file's metadata that records this dataset.
    pub fn to_metadata(&self) -> Result<Metadata> {
        let mut metadata = Metadata::new();
        metadata.insert("dataset".into(), serde_json::to_value(self)?);
        Ok(metadata)
    }

    /// The dataset a model file's metadata records, if any.
    pub fn from_metadata(metadata: &Metadata) -> Option<Self> {
        serde_json::from_value(metadata.get("dataset")?.clone()).ok()
    }

    /// Whether the classes are the ten digits.
    pub fn digits(&self) -> bool {
        self.class_names
            .iter()
            .enumerate()
            .all(|(i, n)| *n == i.to_string())
    }

    /// Warns on standard error when `model` (from `path`) was trained on
    /// another dataset than this one.
    pub fn warn_if_not_from(&self, recorded: Option<&DatasetInfo>, path: &Path) {
        if let Some(recorded) = recorded {
            if recorded.test != self.test {
                eprintln!(
                    "warning: --model {} was trained on {} (test set {}), not on this {} \
                     (test set {}): its classes may not be these",
                    path.display(),
                    recorded.name,
                    recorded.test,
                    self.name,
                    self.test
                );
            }
        }
    }
}

/// `classes` names from `known`, the label itself past its ten.
fn known_names(known: &KnownDataset, classes: usize) -> Vec<String> {
    (0..classes)
        .map(|c| {
            known
                .class_names
                .get(c)
                .map_or_else(|| c.to_string(), |n| (*n).to_string())
        })
        .collect()
}

/// Checks that `model` (read from `model_path`) takes the features `pre`
/// makes of `data` (from `data_dir`) and predicts its classes.
pub fn check_model_fits(
    model: &Model,
    model_path: &Path,
    data: &Dataset,
    data_dir: &Path,
    pre: &Preprocess,
) -> Result<()> {
    let features = pre.features(data.pixels());
    if features != model.features() || data.classes() != model.classes() {
        bail!(
            "--model {}: the model takes {} features and {} classes, but {} gives {} and {}",
            model_path.display(),
            model.features(),
            model.classes(),
            data_dir.display(),
            features,
            data.classes()
        );
    }
    Ok(())
}

/// Features and labels of an evaluation set, prepared once.
pub struct EvalSet {
    pub x: Array2<f32>,
    pub labels: Vec<u8>,
}

impl EvalSet {
    /// The samples `indices` of `data`.
    pub fn new(data: &Dataset, pre: &Preprocess, indices: &[usize]) -> Result<Self> {
        let x =
            Loader::features_of(data, pre, indices).context("evaluation indices out of range")?;
        let labels = indices.iter().map(|&i| data.labels()[i]).collect();
        Ok(Self { x, labels })
    }

    /// All of `data`.
    pub fn all(data: &Dataset, pre: &Preprocess) -> Result<Self> {
        let indices: Vec<usize> = (0..data.len()).collect();
        Self::new(data, pre, &indices)
    }
}
