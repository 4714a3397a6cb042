//! What the runs print about themselves: the peers' output and the
//! trainer's `--report`.

use anyhow::Context as _;
use serde_json::Value;

/// What a run printed about itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Printed {
    /// Seconds reading the data.
    pub load_s: f64,
    /// Seconds training (with the per-epoch evaluation, for all three).
    pub train_s: f64,
    /// Final test accuracy, if printed.
    pub accuracy: Option<f64>,
}

/// The number after the last whitespace-separated occurrence of `key` (one
/// or more words) in `text`, e.g. `last_value("a 1 b 2 a 3", "a") == Some(3.0)`.
pub fn last_value(text: &str, key: &str) -> Option<f64> {
    let key: Vec<&str> = key.split_whitespace().collect();
    let tokens: Vec<&str> = text.split_whitespace().collect();
    tokens
        .windows(key.len() + 1)
        .filter(|w| w.get(..key.len()) == Some(&key[..]))
        .filter_map(|w| w.last().and_then(|v| v.parse::<f64>().ok()))
        .rfind(|v| v.is_finite())
}

pub(super) fn required(text: &str, key: &str, who: &str) -> anyhow::Result<f64> {
    last_value(text, key).with_context(|| format!("{who} printed no `{key} <seconds>`"))
}

/// Parses the output of `numpy_fast.py`: `train_s`, `data_load_s` and
/// `final_val_acc`.
///
/// # Errors
///
/// A timing line is missing.
pub fn parse_numpy(stdout: &str) -> anyhow::Result<Printed> {
    Ok(Printed {
        load_s: required(stdout, "data_load_s", "numpy_fast.py")?,
        train_s: required(stdout, "train_s", "numpy_fast.py")?,
        accuracy: last_value(stdout, "final_val_acc"),
    })
}

/// Parses the output of `candle-linear`: `load_s`, `train_s` and the last
/// `val acc`.
///
/// # Errors
///
/// A timing line is missing.
pub fn parse_candle(stdout: &str) -> anyhow::Result<Printed> {
    Ok(Printed {
        load_s: required(stdout, "load_s", "candle-linear")?,
        train_s: required(stdout, "train_s", "candle-linear")?,
        accuracy: last_value(stdout, "val acc"),
    })
}

/// Parses a `mnist train --report` file: timings, test accuracy and the
/// number of training samples.
///
/// # Errors
///
/// Not JSON, or a field is missing.
pub fn parse_report(text: &str) -> anyhow::Result<(Printed, u64)> {
    let report: Value = serde_json::from_str(text).context("report is not JSON")?;
    let number = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(Value::as_f64)
            .with_context(|| format!("report has no number at {pointer}"))
    };
    let samples = report
        .pointer("/train_samples")
        .and_then(Value::as_u64)
        .context("report has no number at /train_samples")?;
    Ok((
        Printed {
            load_s: number("/timing/load_seconds")?,
            train_s: number("/timing/train_seconds")?,
            accuracy: report.pointer("/test/accuracy").and_then(Value::as_f64),
        },
        samples,
    ))
}

/// What a PyTorch peer (`torch_presets.py`, `torch_cnn.py`) printed: its
/// one JSON line.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchLine {
    /// Timings and accuracy (`load_s` is 0 when the line has none, as
    /// `torch_cnn.py`'s).
    pub printed: Printed,
    /// Epochs it says it trained.
    pub epochs: Option<u64>,
    /// Threads torch used (`torch.get_num_threads()`).
    pub threads: Option<u64>,
    /// torch's version.
    pub version: Option<String>,
}

/// Parses the last line of `stdout` that is a JSON object with the numbers
/// `train_s` and `accuracy` (and optionally `load_s`, `epochs`, `threads`
/// and `torch`).
///
/// # Errors
///
/// No such line.
pub fn parse_torch(stdout: &str) -> anyhow::Result<TorchLine> {
    let line = stdout
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(|v| {
            ["train_s", "accuracy"]
                .iter()
                .all(|k| v.get(k).and_then(Value::as_f64).is_some_and(f64::is_finite))
        })
        .context("the torch peer printed no JSON line with the numbers `train_s` and `accuracy`")?;
    let number = |key: &str| line.get(key).and_then(Value::as_f64);
    Ok(TorchLine {
        printed: Printed {
            load_s: number("load_s").unwrap_or(0.0),
            train_s: number("train_s").unwrap_or(f64::NAN),
            accuracy: number("accuracy"),
        },
        epochs: line.get("epochs").and_then(Value::as_u64),
        threads: line.get("threads").and_then(Value::as_u64),
        version: line.get("torch").and_then(Value::as_str).map(String::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMPY: &str = "\
data_load_s 0.412  train (60000, 785) test (10000, 785) dtype float32
epoch 0 lr 0.001 train_loss(mean) 3.21000 val_acc 0.6012 epoch_s 0.130
epoch 9 lr 0.0001 train_loss(mean) 1.70000 val_acc 0.7811 epoch_s 0.120
final_val_acc 0.7811 best_val_acc 0.7811 best_epoch 9
train_s 1.234 (sgd 1.100, eval 0.134) data_load_s 0.412
";

    const CANDLE: &str = "\
epoch 0 lr 0.00100 last batch loss 3.210 val acc 0.6012
epoch 9 lr 0.00010 last batch loss 1.700 val acc 0.7790
load_s 0.388 train_s 1.050
";

    #[test]
    fn parses_numpy_output() -> anyhow::Result<()> {
        let printed = parse_numpy(NUMPY)?;
        assert_eq!(printed.load_s, 0.412);
        assert_eq!(printed.train_s, 1.234);
        assert_eq!(printed.accuracy, Some(0.7811));
        Ok(())
    }

    #[test]
    fn parses_candle_output() -> anyhow::Result<()> {
        let printed = parse_candle(CANDLE)?;
        assert_eq!(printed.load_s, 0.388);
        assert_eq!(printed.train_s, 1.05);
        assert_eq!(printed.accuracy, Some(0.779));
        Ok(())
    }

    #[test]
    fn missing_timings_are_errors() {
        let err = parse_candle("epoch 0 val acc 0.5\n").map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("candle-linear printed no `load_s <seconds>`".into())
        );
        assert!(parse_numpy("train_s nan data_load_s 1\n").is_err());
        assert!(parse_numpy("").is_err());
    }

    #[test]
    fn last_value_takes_the_last_number_after_the_key() {
        assert_eq!(last_value("a 1 b 2 a 3", "a"), Some(3.0));
        assert_eq!(
            last_value("val acc 0.5\nval acc 0.75", "val acc"),
            Some(0.75)
        );
        assert_eq!(last_value("val acc x", "val acc"), None);
        assert_eq!(last_value("acc 0.5", "val acc"), None);
        assert_eq!(last_value("a", "a"), None);
    }

    #[test]
    fn parses_trainer_report() -> anyhow::Result<()> {
        let text = r#"{"train_samples": 60000, "test": {"accuracy": 0.7858},
            "timing": {"load_seconds": 0.016, "train_seconds": 1.05, "test_seconds": 0.007}}"#;
        let (printed, samples) = parse_report(text)?;
        assert_eq!(samples, 60000);
        assert_eq!(printed.train_s, 1.05);
        assert_eq!(printed.accuracy, Some(0.7858));
        assert!(parse_report("{}").is_err());
        assert!(parse_report("not json").is_err());
        Ok(())
    }

    #[test]
    fn parses_the_torch_peers_json_line() -> anyhow::Result<()> {
        let presets = r#"{"preset": "mlp", "epochs": 20, "accuracy": 0.9818, "load_s": 0.512, "train_s": 17.56, "threads": 2, "torch": "2.15.0+cpu"}"#;
        let line = parse_torch(&format!("some warning\n{presets}\n"))?;
        assert_eq!(
            line,
            TorchLine {
                printed: Printed {
                    load_s: 0.512,
                    train_s: 17.56,
                    accuracy: Some(0.9818)
                },
                epochs: Some(20),
                threads: Some(2),
                version: Some("2.15.0+cpu".into()),
            }
        );
        let cnn = r#"{"model": "cnn", "epochs": 2, "batch": 64, "accuracy": 0.9883, "train_s": 23.1, "accuracies": [0.98, 0.9883], "threads": 2, "torch": "2.15.0"}"#;
        let line = parse_torch(cnn)?;
        assert_eq!(line.printed.load_s, 0.0);
        assert_eq!(line.printed.train_s, 23.1);
        assert_eq!(line.printed.accuracy, Some(0.9883));
        assert_eq!(line.epochs, Some(2));
        for bad in [
            "",
            "accuracy 0.9 train_s 1.0",
            r#"{"accuracy": 0.9}"#,
            r#"{"accuracy": 0.9, "train_s": "fast"}"#,
            r#"[0.9, 1.0]"#,
        ] {
            let err = parse_torch(bad).map(|_| ()).map_err(|e| e.to_string());
            assert_eq!(
                err,
                Err(
                    "the torch peer printed no JSON line with the numbers `train_s` and `accuracy`"
                        .into()
                ),
                "{bad}"
            );
        }
        Ok(())
    }
}
