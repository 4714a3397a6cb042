//! The library's trainer and the `mnist` command are one engine: the same
//! settings give the same numbers, bit for bit.

use std::process::Command;

use mnist_data::{Dataset, Part};
use mnist_e2e::{mnist_binary, real_mnist_dir, stderr};
use mnist_train::{Preset, Silent, TrainConfig, Trainer};
use serde_json::Value;

#[test]
#[ignore = "trains on the MNIST data: `cargo xtask ci` runs it"]
fn the_mlp_preset_trains_the_same_from_the_library_and_the_command() {
    let dir = real_mnist_dir();
    let train = Dataset::open(&dir, Part::Train).unwrap();
    let test = Dataset::open(&dir, Part::Test).unwrap();
    // Two epochs: one cosine cycle over them, as `--epochs 2` gives.
    let config = TrainConfig {
        epochs: 2,
        cosine_period: 2,
        seed: 3,
        ..TrainConfig::from(Preset::Mlp)
    };
    let fitted = Trainer::new(config, &train, &test)
        .unwrap()
        .fit(None, &mut Silent)
        .unwrap();

    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("r.json");
    let o = Command::new(mnist_binary().unwrap())
        .args([
            "train", "--preset", "mlp", "--epochs", "2", "--seed", "3", "-q",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["test"]["accuracy"].as_f64(), Some(fitted.test.accuracy));
    assert_eq!(r["test"]["loss"].as_f64(), Some(fitted.test.loss));
    let losses: Vec<f64> = r["iterations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[1].as_f64().unwrap())
        .collect();
    let library: Vec<f64> = fitted.iterations.iter().map(|&(_, l)| l).collect();
    assert_eq!(losses, library);
}
