//! `mnist predict`: a saved model's verdict on picture files and test-set
//! images.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use mnist_data::{Part, Preprocess};
use mnist_model::Model;
use ndarray::Array2;
use serde::Serialize;

use crate::data::{open_part, DatasetInfo};
use crate::data_home;
use crate::digitize::{digitize, SIDE};

/// Arguments of `mnist predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The model file written by `mnist train --save` (JSON), or its
    /// safetensors export.
    #[arg(long, value_name = "MODEL.json")]
    pub model: PathBuf,
    /// PNG or JPEG pictures of one digit each, of up to 8192 x 8192 pixels
    /// (or as many in another shape): dark on light or light on dark.
    #[arg(value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Predict test-set image N too, and show its true label (repeatable).
    #[arg(long = "index", value_name = "N")]
    pub indices: Vec<usize>,
    /// Print one JSON document instead of the text.
    #[arg(long)]
    pub json: bool,
    /// Folder with the four decompressed IDX files, for --index [default:
    /// mnist/ in the data home: $MNIST_DATA, the workspace's data/, the user
    /// data folder].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Where an input came from.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    File(PathBuf),
    TestIndex(usize),
    /// The body of a request to `mnist serve`.
    Upload,
}

/// One input's prediction.
#[derive(Debug, Serialize)]
pub struct Prediction {
    source: Source,
    /// Name of the predicted class.
    predicted: String,
    /// Index of the predicted class.
    predicted_class: usize,
    /// True class name, for test-set images.
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    /// Index of the true class, for test-set images.
    #[serde(skip_serializing_if = "Option::is_none")]
    label_class: Option<usize>,
    /// The model's outputs, one per class: independent sigmoids in (0, 1)
    /// or a softmax (see `output_kind`).
    outputs: Vec<f32>,
    /// The outputs divided by their sum.
    normalized: Vec<f32>,
    /// The 28 x 28 image the model read, row by row (for `mnist serve`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixels: Option<Vec<u8>>,
}

impl Prediction {
    /// The prediction of `outputs` (one per class) for an input from
    /// `source` with the true class `label`, if known.
    pub fn new(source: Source, outputs: Vec<f32>, label: Option<usize>, names: &[String]) -> Self {
        let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
        let predicted_class = argmax(&outputs);
        let sum: f32 = outputs.iter().sum();
        let normalized = outputs
            .iter()
            .map(|&v| if sum > 0.0 { v / sum } else { 0.0 })
            .collect();
        Prediction {
            source,
            predicted: name(predicted_class),
            predicted_class,
            label: label.map(name),
            label_class: label,
            outputs,
            normalized,
            pixels: None,
        }
    }
}

#[derive(Debug, Serialize)]
struct PredictOutput<'a> {
    model: &'a Path,
    /// `sigmoid` or `softmax`: what the outputs are.
    output_kind: &'static str,
    classes: &'a [String],
    predictions: Vec<Prediction>,
}

/// The most pixels a picture may have: 8192 x 8192, which decoded as RGBA
/// with 16 bits a channel (8 bytes a pixel) just fills the 512 MiB the
/// image decoder allows itself by default.
pub const MAX_PIXELS: u64 = 8192 * 8192;

/// Reads and decodes a picture, and digitises it.
fn load_image(path: &Path) -> Result<[u8; SIDE * SIDE]> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    decode_picture(&bytes, MAX_PIXELS).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Why a picture was refused.
#[derive(Debug)]
pub enum PictureError {
    /// Not an image this program decodes.
    NotAnImage(String),
    /// More pixels than allowed, or too large to decode.
    TooLarge(String),
    /// Decoded, but nothing to digitise (e.g. blank).
    Unusable(String),
}

impl std::fmt::Display for PictureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PictureError::NotAnImage(m) | PictureError::TooLarge(m) | PictureError::Unusable(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for PictureError {}

/// Decodes a PNG or JPEG picture of at most `max_pixels` pixels (checked in
/// its header, before anything is decoded) and digitises it.
pub fn decode_picture(
    bytes: &[u8],
    max_pixels: u64,
) -> std::result::Result<[u8; SIDE * SIDE], PictureError> {
    let not_an_image = |e: &dyn std::fmt::Display| {
        PictureError::NotAnImage(format!("not a PNG or JPEG image: {e}"))
    };
    let reader = || image::ImageReader::new(Cursor::new(bytes)).with_guessed_format();
    // The size is in the header: read it alone, without the decoder's
    // memory limit, to say what is too large before anything is decoded.
    let mut header = reader().map_err(|e| not_an_image(&e))?;
    header.no_limits();
    let (w, h) = header.into_dimensions().map_err(|e| not_an_image(&e))?;
    if u64::from(w) * u64::from(h) > max_pixels {
        let side = (max_pixels as f64).sqrt() as u64;
        return Err(PictureError::TooLarge(format!(
            "the image is too large: {w} x {h} pixels, more than the limit of {max_pixels} pixels ({side} x {side})"
        )));
    }
    let img = match reader().map_err(|e| not_an_image(&e))?.decode() {
        Ok(img) => img,
        // Within the pixel limit, a decoder may still need more memory
        // than it allows itself (16-bit channels and its own buffers).
        Err(image::ImageError::Limits(e)) => {
            return Err(PictureError::TooLarge(format!(
                "the image is too large to decode: {w} x {h} pixels ({e})"
            )))
        }
        Err(e) => return Err(not_an_image(&e)),
    };
    // Transparent pixels are paper: drawings often have ink on nothing.
    let la = img.to_luma_alpha8();
    let (w, h) = la.dimensions();
    let gray: Vec<u8> = la
        .pixels()
        .map(|p| {
            let [l, a] = p.0;
            let (l, a) = (u32::from(l), u32::from(a));
            ((l * a + 255 * (255 - a) + 127) / 255) as u8
        })
        .collect();
    digitize(&gray, w as usize, h as usize).map_err(|e| PictureError::Unusable(e.to_string()))
}

/// Runs `mnist predict`. A picture that cannot be read does not stop the
/// others: each good one is predicted, each bad one gets its error line,
/// and the exit status says that some failed.
pub fn run(args: &PredictArgs) -> Result<()> {
    if args.images.is_empty() && args.indices.is_empty() {
        bail!("nothing to predict: give image files or --index N");
    }
    let (model, metadata) = Model::load_with_metadata(&args.model)?;
    let pre = Preprocess::default();
    if !args.images.is_empty() && model.features() != pre.features(SIDE * SIDE) {
        bail!(
            "--model {}: the model takes {} features, but pictures are digitised to 28 x 28 \
             images, which give {}",
            args.model.display(),
            model.features(),
            pre.features(SIDE * SIDE)
        );
    }
    let recorded = DatasetInfo::from_metadata(&metadata);

    let mut inputs: Vec<(Source, Vec<u8>, Option<usize>)> = Vec::new();
    let mut failed = Vec::new();
    for path in &args.images {
        match load_image(path) {
            Ok(pixels) => inputs.push((Source::File(path.clone()), pixels.to_vec(), None)),
            Err(err) => failed.push(err),
        }
    }
    // The class names: those of the test set when it is used, else those
    // the model file records, else the digits'.
    let mut names = recorded.as_ref().map_or_else(
        || (0..model.classes()).map(|c| c.to_string()).collect(),
        |info| info.class_names.clone(),
    );
    if !args.indices.is_empty() {
        let data_dir = &data_home::resolve(args.data_dir.as_deref(), "mnist")?;
        let test = open_part(data_dir, Part::Test)?;
        let info = DatasetInfo::of(data_dir, &test, None);
        info.warn_if_not_from(recorded.as_ref(), &args.model);
        names = info.class_names;
        let features = pre.features(test.pixels());
        if features != model.features() {
            bail!(
                "--model {}: the model takes {} features, but the test images in {} give {}",
                args.model.display(),
                model.features(),
                data_dir.display(),
                features
            );
        }
        for &i in &args.indices {
            let Some((pixels, label)) = test.get(i) else {
                bail!(
                    "--index {i}: the test set has {} (0 to {})",
                    plural(test.len(), "image"),
                    test.len() - 1
                );
            };
            inputs.push((
                Source::TestIndex(i),
                pixels.to_vec(),
                Some(usize::from(label)),
            ));
        }
    }

    let mut x = Array2::<f32>::zeros((inputs.len(), model.features()));
    for ((_, pixels, _), mut row) in inputs.iter().zip(x.rows_mut()) {
        let out = row
            .as_slice_mut()
            .context("feature row is not contiguous")?;
        pre.apply_into(pixels, out);
    }
    let proba = model.predict_proba(x.view())?;
    let predictions: Vec<Prediction> = inputs
        .into_iter()
        .zip(proba.rows())
        .map(|((source, _, label), p)| Prediction::new(source, p.to_vec(), label, &names))
        .collect();

    if predictions.is_empty() {
        // Every picture failed: nothing to print but the errors.
    } else if args.json {
        let out = PredictOutput {
            model: &args.model,
            output_kind: model.output_kind(),
            classes: &names,
            predictions,
        };
        say!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        say_raw!("{}", render(&names, model.output_kind(), &predictions));
    }
    if failed.is_empty() {
        return Ok(());
    }
    for err in &failed {
        eprintln!("error: {err:#}");
    }
    Err(crate::Reported.into())
}

/// `n` things, with the plural only where it belongs.
pub fn plural(n: usize, thing: &str) -> String {
    match n {
        1 => format!("1 {thing}"),
        _ if thing.ends_with("ch") || thing.ends_with('s') => format!("{n} {thing}es"),
        _ => format!("{n} {thing}s"),
    }
}

/// Index of the largest value; the first on ties.
fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &p)| {
            if p > best.1 {
                (i, p)
            } else {
                best
            }
        })
        .0
}

/// The text output: a headline per input and a table of its probabilities.
fn render(names: &[String], kind: &str, predictions: &[Prediction]) -> String {
    use std::fmt::Write as _;
    let w = names.iter().map(String::len).max().unwrap_or(1).max(6);
    let mut s = String::new();
    for (k, p) in predictions.iter().enumerate() {
        if k > 0 {
            s.push('\n');
        }
        let what = match &p.source {
            Source::File(path) => path.display().to_string(),
            Source::TestIndex(i) => format!("test image {i}"),
            Source::Upload => "the picture".to_string(),
        };
        let _ = write!(s, "{what}: predicted {}", p.predicted);
        if let Some(label) = &p.label {
            let verdict = if *label == p.predicted {
                "right"
            } else {
                "wrong"
            };
            let _ = write!(s, " (true {label}, {verdict})");
        }
        s.push('\n');
        let _ = write!(s, "  {:<24}", "class");
        for n in names {
            let _ = write!(s, " {n:>w$}");
        }
        s.push('\n');
        let output = format!("{kind} output");
        let mut rows = vec![(output.as_str(), &p.outputs)];
        // A softmax sums to 1 already: its normalised row would repeat it.
        if kind != "softmax" {
            rows.push(("normalized to sum 1", &p.normalized));
        }
        for (title, values) in rows {
            let _ = write!(s, "  {title:<24}");
            for v in values {
                let _ = write!(s, " {v:>w$.4}");
            }
            s.push('\n');
        }
    }
    s
}
