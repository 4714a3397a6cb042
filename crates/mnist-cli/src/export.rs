//! `mnist export`: a trained model in a format other tools read.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use mnist_model::Model;

use crate::output::write_atomic;
use crate::paths::Files;

/// Arguments of `mnist export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The model file written by `mnist train --save` (JSON or safetensors).
    #[arg(long, value_name = "MODEL")]
    pub model: PathBuf,
    /// The file to write; its extension chooses the format: `.onnx`,
    /// `.safetensors` or `.json` (the model file of `mnist train --save`).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// The formats `mnist export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExportFormat {
    Onnx,
    Safetensors,
    Json,
}

impl ExportFormat {
    fn of(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("onnx") => Ok(Self::Onnx),
            Some("safetensors") => Ok(Self::Safetensors),
            Some("json") => Ok(Self::Json),
            _ => bail!(
                "-o {}: the format is chosen by the extension: give a name ending in .onnx, .safetensors or .json",
                path.display()
            ),
        }
    }
}

/// Runs `mnist export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    let format = ExportFormat::of(&args.output)?;
    let mut files = Files::new();
    files.input("--model", &args.model)?;
    let output = files.output_file("-o", &args.output)?;
    let (model, metadata) = Model::load_with_metadata(&args.model)?;
    let bytes = match format {
        ExportFormat::Onnx => mnist_onnx::to_onnx(&model, &metadata)
            .map_err(|e| anyhow::anyhow!("--model {}: {e}", args.model.display()))?,
        ExportFormat::Safetensors => model.to_safetensors(&metadata)?,
        ExportFormat::Json => model.to_json_string_with(&metadata)?.into_bytes(),
    };
    write_atomic(&output, &bytes)?;
    say!(
        "wrote {} ({}; {} bytes)",
        args.output.display(),
        model.describe(),
        bytes.len()
    );
    Ok(())
}
