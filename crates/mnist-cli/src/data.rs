//! Opening datasets with messages that say what to do.

use std::path::Path;

use anyhow::{bail, Result};
use mnist_data::{Dataset, Part, Preprocess};
use mnist_model::Model;

/// Opens one part of an MNIST-layout folder; a missing folder or file gets
/// a message that says how to fetch the data.
pub fn open_part(dir: &Path, part: Part) -> Result<Dataset> {
    if !dir.is_dir() {
        bail!(
            "data directory {} not found: run `cargo xtask fetch-data` (or pass --data-dir)",
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
                " (a .gz is there: the files must be decompressed; `cargo xtask fetch-data` does it)"
            } else {
                ""
            };
            bail!(
                "{} not found{hint}: run `cargo xtask fetch-data` to fetch the dataset",
                path.display()
            );
        }
    }
    Ok(Dataset::open(dir, part)?)
}

const FASHION: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Names of the classes: Fashion-MNIST's for a folder whose name says
/// fashion, the digits otherwise.
pub fn class_names(dir: &Path, classes: usize) -> Vec<String> {
    let fashion = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.to_ascii_lowercase().contains("fashion"));
    (0..classes)
        .map(|c| match FASHION.get(c) {
            Some(name) if fashion => (*name).to_string(),
            _ => c.to_string(),
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
