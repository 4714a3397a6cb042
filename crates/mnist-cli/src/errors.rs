//! `mnist errors`: a picture of the test digits a model gets wrong.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use mnist_data::{Part, Preprocess};
use mnist_model::Model;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::EvalSet;
use crate::data::{check_model_fits, open_part, DatasetInfo};
use crate::data_home;
use crate::output::write_atomic;
use crate::paths::Files;
use crate::plot::{encode_png, register_fonts, Format};

/// Arguments of `mnist errors`.
#[derive(Debug, Args)]
pub struct ErrorsArgs {
    /// The model file written by `mnist train --save` (JSON), or its
    /// safetensors export.
    #[arg(long, value_name = "MODEL.json")]
    pub model: PathBuf,
    /// The picture to write (.png).
    #[arg(short, long, value_name = "FILE.png")]
    pub output: PathBuf,
    /// Folder with the four decompressed IDX files [default: mnist/ in the
    /// data home: $MNIST_DATA, the workspace's data/, the user data folder].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Show at most this many misclassified digits, the first in test-set
    /// order.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max: usize,
}

/// Each pixel of a digit is drawn as a square of this side.
const ZOOM: usize = 3;
const SIDE: usize = 28;
const COLUMNS: usize = 10;
const TITLE: usize = 44;
const LABEL: usize = 22;
const GAP: usize = 8;

/// Runs `mnist errors`.
pub fn run(args: &ErrorsArgs) -> Result<()> {
    Format::of("-o", &args.output, &[Format::Png])?;
    if args.max == 0 {
        bail!("--max 0: must be at least 1");
    }
    let data_dir = &data_home::resolve(args.data_dir.as_deref(), "mnist")?;
    let mut files = Files::new();
    files.input("--model", &args.model)?;
    files.dataset(data_dir, &[Part::Test])?;
    let output = files.output_file("-o", &args.output)?;
    let (model, metadata) = Model::load_with_metadata(&args.model)?;
    let test = open_part(data_dir, Part::Test)?;
    let info = DatasetInfo::of(data_dir, &test, None);
    info.warn_if_not_from(DatasetInfo::from_metadata(&metadata).as_ref(), &args.model);
    let pre = Preprocess::default();
    if test.pixels() != SIDE * SIDE {
        bail!(
            "{}: images of {} pixels; the grid draws 28 x 28 digits",
            data_dir.display(),
            test.pixels()
        );
    }
    check_model_fits(&model, &args.model, &test, data_dir, &pre)?;
    let names = &info.class_names;
    let things = if info.digits() { "digits" } else { "images" };
    let set = EvalSet::all(&test, &pre)?;
    let predicted = model.predict(set.x.view())?;
    let wrong: Vec<(usize, usize, usize)> = predicted
        .iter()
        .zip(&set.labels)
        .enumerate()
        .filter(|(_, (&p, &t))| p != usize::from(t))
        .map(|(i, (&p, &t))| (i, usize::from(t), p))
        .collect();
    let shown: Vec<(&[u8], String)> = wrong
        .iter()
        .take(args.max)
        .filter_map(|&(i, t, p)| {
            let pixels = test.images().image(i)?;
            let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
            Some((pixels, format!("{} \u{2192} {}", name(t), name(p))))
        })
        .collect();
    let title = if shown.is_empty() {
        format!("no misclassified test {things}")
    } else {
        format!(
            "misclassified test {things}: the first {} of {} (true \u{2192} predicted)",
            shown.len(),
            wrong.len()
        )
    };
    let bytes = draw_grid(&title, &shown)?;
    write_atomic(&output, &bytes)?;
    say!(
        "{} of {} test {things} misclassified; {} drawn in {}",
        wrong.len(),
        test.len(),
        shown.len(),
        args.output.display()
    );
    Ok(())
}

/// PNG bytes of a grid of digits, dark on light, each with its label.
fn draw_grid(title: &str, digits: &[(&[u8], String)]) -> Result<Vec<u8>> {
    register_fonts()?;
    let longest = digits
        .iter()
        .map(|(_, l)| l.chars().count())
        .max()
        .unwrap_or(0);
    let cell_w = (SIDE * ZOOM + GAP).max(longest * 8 + GAP);
    let cell_h = SIDE * ZOOM + LABEL + GAP;
    let columns = digits.len().clamp(1, COLUMNS);
    let rows = digits.len().div_ceil(COLUMNS);
    let width = (columns * cell_w + 2 * GAP).max(title.chars().count() * 9 + 2 * GAP);
    let height = TITLE + rows * cell_h + GAP;
    let mut rgb = vec![255u8; width * height * 3];
    for (k, (pixels, _)) in digits.iter().enumerate() {
        let (x0, y0) = cell_origin(k, cell_w, cell_h);
        let x0 = x0 + (cell_w - GAP - SIDE * ZOOM) / 2;
        for (p, &v) in pixels.iter().enumerate() {
            let shade = 255 - v;
            let (r, c) = (p / SIDE, p % SIDE);
            for dy in 0..ZOOM {
                let row = (y0 + r * ZOOM + dy) * width;
                for dx in 0..ZOOM {
                    let at = (row + x0 + c * ZOOM + dx) * 3;
                    if let Some(px) = rgb.get_mut(at..at + 3) {
                        px.fill(shade);
                    }
                }
            }
        }
    }
    let (w, h) = (u32::try_from(width)?, u32::try_from(height)?);
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.draw(&Text::new(
            title.to_string(),
            (GAP as i32, (TITLE / 2) as i32),
            ("sans-serif", 18)
                .into_font()
                .style(FontStyle::Bold)
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        for (k, (_, label)) in digits.iter().enumerate() {
            let (x0, y0) = cell_origin(k, cell_w, cell_h);
            let frame_x = x0 + (cell_w - GAP - SIDE * ZOOM) / 2;
            root.draw(&Rectangle::new(
                [
                    (frame_x as i32 - 1, y0 as i32 - 1),
                    ((frame_x + SIDE * ZOOM) as i32, (y0 + SIDE * ZOOM) as i32),
                ],
                RGBColor(200, 200, 200).stroke_width(1),
            ))?;
            root.draw(&Text::new(
                label.clone(),
                (
                    (x0 + (cell_w - GAP) / 2) as i32,
                    (y0 + SIDE * ZOOM + LABEL / 2 + 1) as i32,
                ),
                ("sans-serif", 15)
                    .into_font()
                    .color(&RGBColor(170, 20, 20))
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
        }
        root.present()?;
    }
    encode_png(&rgb, w, h)
}

/// Top-left corner of cell `k`.
fn cell_origin(k: usize, cell_w: usize, cell_h: usize) -> (usize, usize) {
    (
        GAP + (k % COLUMNS) * cell_w + GAP / 2,
        TITLE + (k / COLUMNS) * cell_h,
    )
}
