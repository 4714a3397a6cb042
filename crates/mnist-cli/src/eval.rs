//! `mnist eval`: the final report for a saved model.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use mnist_data::{Part, Preprocess};
use mnist_model::Model;
use serde::Serialize;

use crate::data::EvalSet;
use crate::data::{check_model_fits, open_part, DatasetInfo};
use crate::data_home;
use crate::output::write_atomic;
use crate::paths::Files;
use crate::report::TestReport;
use crate::train::write_report;

/// Arguments of `mnist eval`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct EvalArgs {
    /// The model file written by `mnist train --save` (JSON), or its
    /// safetensors export.
    #[arg(long, value_name = "MODEL.json")]
    pub model: PathBuf,
    /// Folder with the four decompressed IDX files [default: mnist/ in the
    /// data home: $MNIST_DATA, the workspace's data/, the user data folder].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Write the report here (JSON).
    #[arg(long, value_name = "REPORT.json")]
    pub report: Option<PathBuf>,
    /// Write the model's outputs for every test image here (JSON:
    /// `output_kind`, `classes`, `outputs` with one row of outputs per image,
    /// `predicted` and `labels`).
    #[arg(long, value_name = "OUTPUTS.json")]
    pub outputs: Option<PathBuf>,
}

/// What `--outputs` writes.
#[derive(Debug, Serialize)]
struct Outputs<'a> {
    output_kind: &'static str,
    classes: &'a [String],
    outputs: Vec<Vec<f32>>,
    predicted: Vec<usize>,
    labels: &'a [u8],
}

#[derive(Debug, Serialize)]
struct EvalReport<'a> {
    command: &'static str,
    config: &'a EvalArgs,
    test: TestReport,
    timing: EvalTiming,
}

#[derive(Debug, Serialize)]
struct EvalTiming {
    load_seconds: f64,
    test_seconds: f64,
}

/// Runs `mnist eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    let data_dir = &data_home::resolve(args.data_dir.as_deref(), "mnist")?;
    let mut files = Files::new();
    files.input("--model", &args.model)?;
    files.dataset(data_dir, &[Part::Test])?;
    let report_file = match &args.report {
        Some(path) => Some(files.output_file("--report", path)?),
        None => None,
    };
    let outputs_file = match &args.outputs {
        Some(path) => Some(files.output_file("--outputs", path)?),
        None => None,
    };
    let t_load = Instant::now();
    // The model's errors name the file.
    let (model, metadata) = Model::load_with_metadata(&args.model)?;
    let test = open_part(data_dir, Part::Test)?;
    let info = DatasetInfo::of(data_dir, &test, None);
    info.warn_if_not_from(DatasetInfo::from_metadata(&metadata).as_ref(), &args.model);
    let pre = Preprocess::default();
    check_model_fits(&model, &args.model, &test, data_dir, &pre)?;
    let set = EvalSet::all(&test, &pre)?;
    let load_seconds = t_load.elapsed().as_secs_f64();
    let t_test = Instant::now();
    let eval = model.evaluate(set.x.view(), &set.labels)?;
    let report = TestReport::new(&eval.confusion, eval.loss, &info.class_names);
    let test_seconds = t_test.elapsed().as_secs_f64();
    say!(
        "test accuracy {:.4}  loss {:.5}  ({} samples)",
        report.accuracy,
        report.loss,
        report.samples
    );
    say_raw!("{}", report.render());
    if let Some(real) = &outputs_file {
        let proba = model.predict_proba(set.x.view())?;
        let predicted = model.predict(set.x.view())?;
        let outputs = Outputs {
            output_kind: model.output_kind(),
            classes: &info.class_names,
            outputs: proba.rows().into_iter().map(|r| r.to_vec()).collect(),
            predicted,
            labels: &set.labels,
        };
        write_atomic(real, serde_json::to_string(&outputs)?.as_bytes())?;
    }
    if let (Some(path), Some(real)) = (&args.report, &report_file) {
        write_report(
            path,
            real,
            &EvalReport {
                command: "eval",
                config: &EvalArgs {
                    data_dir: Some(data_dir.clone()),
                    ..args.clone()
                },
                test: report,
                timing: EvalTiming {
                    load_seconds,
                    test_seconds,
                },
            },
        )?;
    }
    Ok(())
}
