//! `mnist plot`: the curves of a training report, or its test confusion
//! matrix as a heat map, as SVG or PNG.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;

use crate::output::write_atomic;
use crate::paths::Files;
use crate::report::EpochRecord;

/// Arguments of `mnist plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A report written by `mnist train --report` (or `mnist eval --report`
    /// with --confusion).
    #[arg(value_name = "REPORT.json")]
    pub report: PathBuf,
    /// The picture to write: .svg or .png.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Draw the test confusion matrix instead of the training curves.
    #[arg(long)]
    pub confusion: bool,
}

/// The picture formats `-o` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    /// The format named by `path`'s extension; `flag` names the option in
    /// the error.
    pub fn of(flag: &str, path: &Path, allowed: &[Format]) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let format = match ext.as_deref() {
            Some("svg") => Some(Format::Svg),
            Some("png") => Some(Format::Png),
            _ => None,
        };
        match format {
            Some(f) if allowed.contains(&f) => Ok(f),
            _ => {
                let names: Vec<&str> = allowed
                    .iter()
                    .map(|f| match f {
                        Format::Svg => ".svg",
                        Format::Png => ".png",
                    })
                    .collect();
                bail!(
                    "{flag} {}: unknown picture format: the name must end in {}",
                    path.display(),
                    names.join(" or ")
                )
            }
        }
    }
}

/// The font every picture uses, registered with plotters from bytes so that
/// drawing needs no system font library.
pub fn register_fonts() -> Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow::anyhow!("the built-in font does not load"))?;
    plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold())
        .map_err(|_| anyhow::anyhow!("the built-in font does not load"))?;
    Ok(())
}

/// PNG bytes of an RGB buffer.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder as _;
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Adaptive)
        .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
        .context("cannot encode the PNG")?;
    Ok(out)
}

/// Draws a `width` x `height` picture with `draw` in `format`, and returns
/// the file's bytes.
pub fn render(
    format: Format,
    (width, height): (u32, u32),
    draw_svg: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
    draw_png: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<Vec<u8>> {
    register_fonts()?;
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
                root.fill(&WHITE)?;
                draw_svg(&root)?;
                root.present()?;
            }
            Ok(svg.into_bytes())
        }
        Format::Png => {
            let len = (width as usize)
                .checked_mul(height as usize)
                .and_then(|n| n.checked_mul(3))
                .context("picture too large")?;
            let mut rgb = vec![255u8; len];
            {
                let root =
                    BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
                draw_png(&root)?;
                root.present()?;
            }
            encode_png(&rgb, width, height)
        }
    }
}

/// The parts of a report the pictures use.
#[derive(Debug, Deserialize)]
struct Report {
    epochs: Option<Vec<EpochRecord>>,
    iterations: Option<Vec<(usize, f64)>>,
    test: Option<TestPart>,
}

#[derive(Debug, Deserialize)]
struct TestPart {
    confusion: Vec<Vec<u64>>,
    per_class: Vec<ClassName>,
}

#[derive(Debug, Deserialize)]
struct ClassName {
    name: String,
}

/// The curves of a training run.
struct Curves {
    epochs: Vec<EpochRecord>,
    iterations: Vec<(f64, f64)>,
    /// Iterations averaged into each point of the loss curve.
    bin: usize,
}

/// The test confusion matrix and its class names.
struct Confusion {
    names: Vec<String>,
    counts: Vec<Vec<u64>>,
}

/// Most points drawn for the per-iteration loss; more are averaged in bins
/// so that an SVG of a long run stays small.
const MAX_POINTS: usize = 2000;

fn read_report(path: &Path) -> Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a report of `mnist train --report`", path.display()))
}

fn curves(path: &Path, report: Report) -> Result<Curves> {
    let missing = |what: &str| {
        anyhow::anyhow!(
            "{}: no `{what}` in the report: the curves need a report of `mnist train --report`",
            path.display()
        )
    };
    let epochs = report.epochs.ok_or_else(|| missing("epochs"))?;
    let raw = report.iterations.ok_or_else(|| missing("iterations"))?;
    if epochs.is_empty() {
        bail!("{}: the report has no epochs to plot", path.display());
    }
    if raw.is_empty() {
        bail!(
            "{}: the report has no iterations (batch losses) to plot",
            path.display()
        );
    }
    let finite = epochs.iter().all(|e| {
        [e.lr, e.train_loss, e.val_loss, e.val_accuracy]
            .iter()
            .all(|v| v.is_finite())
    }) && raw.iter().all(|&(_, l)| l.is_finite());
    if !finite {
        bail!(
            "{}: the report has a loss or rate that is not a finite number",
            path.display()
        );
    }
    let bin = raw.len().div_ceil(MAX_POINTS);
    let iterations = raw
        .chunks(bin)
        .map(|c| {
            let n = c.len() as f64;
            let it = c.iter().map(|&(i, _)| i as f64).sum::<f64>() / n;
            let loss = c.iter().map(|&(_, l)| l).sum::<f64>() / n;
            (it, loss)
        })
        .collect();
    Ok(Curves {
        epochs,
        iterations,
        bin,
    })
}

fn confusion(path: &Path, report: Report) -> Result<Confusion> {
    let test = report.test.with_context(|| {
        format!(
            "{}: no `test` in the report: the confusion matrix needs a report of `mnist train --report` or `mnist eval --report`",
            path.display()
        )
    })?;
    let n = test.per_class.len();
    if n == 0 || test.confusion.len() != n || test.confusion.iter().any(|r| r.len() != n) {
        bail!(
            "{}: `test.confusion` is not a {n}x{n} matrix for the {n} classes of `test.per_class`",
            path.display()
        );
    }
    Ok(Confusion {
        names: test.per_class.into_iter().map(|c| c.name).collect(),
        counts: test.confusion,
    })
}

/// Runs `mnist plot`.
pub fn run(args: &PlotArgs) -> Result<()> {
    let format = Format::of("-o", &args.output, &[Format::Svg, Format::Png])?;
    let mut files = Files::new();
    files.input("REPORT.json", &args.report)?;
    let output = files.output_file("-o", &args.output)?;
    let report = read_report(&args.report)?;
    let bytes = if args.confusion {
        let c = confusion(&args.report, report)?;
        let size = confusion_size(&c);
        render(
            format,
            size,
            |root| draw_confusion(root, &c),
            |root| draw_confusion(root, &c),
        )?
    } else {
        let c = curves(&args.report, report)?;
        render(
            format,
            (1200, 860),
            |root| draw_curves(root, &c),
            |root| draw_curves(root, &c),
        )?
    };
    write_atomic(&output, &bytes)?;
    say!("wrote {}", args.output.display());
    Ok(())
}

/// A range around `values` with some room, never empty.
fn padded(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let span = hi - lo;
    let pad = if span > f64::EPSILON * hi.abs().max(1.0) {
        span * 0.06
    } else {
        (hi.abs() * 0.1).max(1e-9)
    };
    lo - pad..hi + pad
}

/// The label of a tick at an epoch or iteration: a whole number, never
/// `-0`, and none left of the first.
fn whole(v: f64) -> String {
    match v.round() {
        r if r < 0.0 => String::new(),
        // `+ 0.0` turns -0 into 0.
        r => format!("{}", r + 0.0),
    }
}

/// A tick label with as many decimals as the axis span calls for.
fn tick(span: f64) -> impl Fn(&f64) -> String {
    let decimals = if span > 0.0 {
        (2.0 - span.log10().floor()).clamp(0.0, 8.0) as usize
    } else {
        3
    };
    move |v| format!("{v:.decimals$}")
}

/// The x range of the per-epoch charts: a lone epoch still gets a width.
fn epoch_range(epochs: &[EpochRecord]) -> Range<f64> {
    let first = epochs.first().map_or(0, |e| e.epoch) as f64;
    let last = epochs.last().map_or(0, |e| e.epoch) as f64;
    first - 0.3..last + 0.3
}

fn draw_curves<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &Curves) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(
        "training run",
        ("sans-serif", 26).into_font().style(FontStyle::Bold),
    )?;
    let areas = root.split_evenly((2, 2));
    let font = ("sans-serif", 18);
    let epoch_x = epoch_range(&c.epochs);
    let epoch_label = |v: &f64| {
        if (v - v.round()).abs() < 1e-6 {
            whole(*v)
        } else {
            String::new()
        }
    };

    // Training loss per iteration.
    let caption = if c.bin > 1 {
        format!("training loss per iteration (mean of each {})", c.bin)
    } else {
        "training loss per iteration".to_string()
    };
    let x = padded(c.iterations.iter().map(|p| p.0));
    let y = padded(c.iterations.iter().map(|p| p.1));
    let mut chart = ChartBuilder::on(&areas[0])
        .caption(caption, font)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x.start.max(0.0)..x.end, y.clone())?;
    chart
        .configure_mesh()
        .x_desc("iteration")
        .y_desc("loss")
        .x_label_formatter(&|v| whole(*v))
        .y_label_formatter(&tick(y.end - y.start))
        .draw()?;
    chart.draw_series(LineSeries::new(c.iterations.iter().copied(), &BLUE))?;

    // Validation accuracy per epoch.
    // An accuracy lies in [0, 1]: the axis does not run past either end.
    let y = padded(c.epochs.iter().map(|e| e.val_accuracy));
    let y = y.start.max(0.0)..y.end.min(1.0);
    let mut chart = ChartBuilder::on(&areas[1])
        .caption("validation accuracy per epoch", font)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(epoch_x.clone(), y.clone())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy")
        .x_label_formatter(&epoch_label)
        .y_label_formatter(&tick(y.end - y.start))
        .draw()?;
    chart.draw_series(
        LineSeries::new(
            c.epochs.iter().map(|e| (e.epoch as f64, e.val_accuracy)),
            GREEN.mix(0.9).stroke_width(2),
        )
        .point_size(4),
    )?;

    // Losses per epoch.
    let y = padded(c.epochs.iter().flat_map(|e| [e.train_loss, e.val_loss]));
    let mut chart = ChartBuilder::on(&areas[2])
        .caption("loss per epoch", font)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(epoch_x.clone(), y.clone())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss")
        .x_label_formatter(&epoch_label)
        .y_label_formatter(&tick(y.end - y.start))
        .draw()?;
    chart
        .draw_series(
            LineSeries::new(
                c.epochs.iter().map(|e| (e.epoch as f64, e.train_loss)),
                BLUE.stroke_width(2),
            )
            .point_size(4),
        )?
        .label("training (mean of the epoch)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(
            LineSeries::new(
                c.epochs.iter().map(|e| (e.epoch as f64, e.val_loss)),
                RED.stroke_width(2),
            )
            .point_size(4),
        )?
        .label("validation (after the epoch)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    // Learning rate per epoch.
    let y = padded(c.epochs.iter().map(|e| e.lr));
    let mut chart = ChartBuilder::on(&areas[3])
        .caption("learning rate per epoch", font)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(epoch_x, y.start.max(0.0)..y.end)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("learning rate")
        .x_label_formatter(&epoch_label)
        .y_label_formatter(&|v| format!("{v:.2e}"))
        .draw()?;
    chart.draw_series(
        LineSeries::new(
            c.epochs.iter().map(|e| (e.epoch as f64, e.lr)),
            MAGENTA.stroke_width(2),
        )
        .point_size(4),
    )?;
    Ok(())
}

/// Layout of the heat map: the cell side and the margin left for names.
fn confusion_layout(c: &Confusion) -> (u32, u32) {
    let longest = c.names.iter().map(|n| n.chars().count()).max().unwrap_or(1) as u32;
    let cell = (600 / c.names.len().max(1) as u32).clamp(24, 64);
    let left = 50 + longest * 9;
    (cell, left)
}

/// Whether the class names fit above their columns; long ones are written
/// upwards below the matrix.
fn short_names(c: &Confusion) -> bool {
    c.names.iter().all(|n| n.chars().count() <= 3)
}

fn confusion_size(c: &Confusion) -> (u32, u32) {
    let (cell, left) = confusion_layout(c);
    let n = c.names.len() as u32;
    let bottom = if short_names(c) { 20 } else { left - 30 };
    (left + n * cell + 30, 90 + n * cell + bottom)
}

/// A light-to-dark blue for `t` in [0, 1].
fn heat(t: f64) -> RGBColor {
    let lerp = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(lerp(247, 8), lerp(251, 48), lerp(255, 107))
}

fn draw_confusion<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &Confusion) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (cell, left) = confusion_layout(c);
    let n = c.names.len();
    let (cell, left) = (cell as i32, left as i32);
    let top = 90;
    let total: u64 = c.counts.iter().flatten().sum();
    let correct: u64 = (0..n).map(|i| c.counts[i][i]).sum();
    let accuracy = if total > 0 {
        correct as f64 / total as f64
    } else {
        0.0
    };
    let centre = |anchor_h, anchor_v| Pos::new(anchor_h, anchor_v);
    root.draw(&Text::new(
        format!("test confusion matrix: accuracy {accuracy:.4} of {total}"),
        (left + n as i32 * cell / 2, 22),
        ("sans-serif", 22)
            .into_font()
            .style(FontStyle::Bold)
            .color(&BLACK)
            .pos(centre(HPos::Center, VPos::Center)),
    ))?;
    root.draw(&Text::new(
        "predicted class",
        (left + n as i32 * cell / 2, 52),
        ("sans-serif", 17)
            .into_font()
            .color(&BLACK)
            .pos(centre(HPos::Center, VPos::Center)),
    ))?;
    root.draw(&Text::new(
        "true class",
        (16, top + n as i32 * cell / 2),
        ("sans-serif", 17)
            .into_font()
            .transform(FontTransform::Rotate270)
            .color(&BLACK)
            .pos(centre(HPos::Center, VPos::Center)),
    ))?;
    let label_font = ("sans-serif", 15).into_font();
    let count_size = if cell >= 48 { 15 } else { 11 };
    for (i, row) in c.counts.iter().enumerate() {
        let y = top + i as i32 * cell;
        let row_total: u64 = row.iter().sum();
        root.draw(&Text::new(
            c.names[i].clone(),
            (left - 8, y + cell / 2),
            label_font
                .clone()
                .color(&BLACK)
                .pos(centre(HPos::Right, VPos::Center)),
        ))?;
        for (j, &count) in row.iter().enumerate() {
            let x = left + j as i32 * cell;
            // Shares of the true class, square-rooted so that the few
            // mistakes show beside the large diagonal.
            let t = if row_total > 0 {
                (count as f64 / row_total as f64).sqrt()
            } else {
                0.0
            };
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                heat(t).filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                RGBColor(220, 220, 220).stroke_width(1),
            ))?;
            if count > 0 {
                let colour = if t > 0.55 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    count.to_string(),
                    (x + cell / 2, y + cell / 2),
                    ("sans-serif", count_size)
                        .into_font()
                        .color(&colour)
                        .pos(centre(HPos::Center, VPos::Center)),
                ))?;
            }
        }
    }
    for (j, name) in c.names.iter().enumerate() {
        let x = left + j as i32 * cell + cell / 2;
        if short_names(c) {
            root.draw(&Text::new(
                name.clone(),
                (x, top - 12),
                label_font
                    .clone()
                    .color(&BLACK)
                    .pos(centre(HPos::Center, VPos::Center)),
            ))?;
        } else {
            root.draw(&Text::new(
                name.clone(),
                (x, top + n as i32 * cell + 8),
                label_font
                    .clone()
                    .transform(FontTransform::Rotate270)
                    .color(&BLACK)
                    .pos(centre(HPos::Right, VPos::Center)),
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_ticks_are_whole_numbers_never_minus_zero() {
        assert_eq!(whole(-0.0), "0");
        assert_eq!(whole(-0.2), "0");
        assert_eq!(whole(-1.0), "");
        assert_eq!(whole(3.0), "3");
    }
}
