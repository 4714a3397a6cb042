//! `mnist inspect`: what an IDX file holds, and a look at one image.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use mnist_idx::{DataType, IdxFile, Images, Labels, IMAGES_MAGIC, LABELS_MAGIC};

use crate::predict::plural;

/// Arguments of `mnist inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The IDX file (decompressed).
    pub file: PathBuf,
    /// Draw image N of an images file in the terminal.
    #[arg(long, value_name = "N")]
    pub show: Option<usize>,
}

/// Text shades from background to ink.
const SHADES: &[u8] = b" .:-=+*#%@";

/// Runs `mnist inspect`.
pub fn run(args: &InspectArgs) -> Result<()> {
    let file = IdxFile::open(&args.file)?;
    let header = file.header();
    let dims: Vec<String> = header.dims().iter().map(ToString::to_string).collect();
    let mut out = String::new();
    writeln!(out, "file:     {}", args.file.display())?;
    writeln!(
        out,
        "type:     {} (magic {})",
        header.dtype(),
        header.magic()
    )?;
    writeln!(out, "dims:     {}", dims.join(" x "))?;
    let count = header.dims()[0];
    let count = match (header.magic(), header.dims()) {
        (IMAGES_MAGIC, _) => plural(count, "image"),
        (LABELS_MAGIC, _) => plural(count, "label"),
        (_, [_]) => format!("{} of type {}", plural(count, "value"), header.dtype()),
        (_, [_, rest @ ..]) => {
            let each: Vec<String> = rest.iter().map(ToString::to_string).collect();
            format!(
                "{}, each {} values of type {}",
                plural(count, "item"),
                each.join(" x "),
                header.dtype()
            )
        }
        (_, []) => String::from("none"),
    };
    writeln!(out, "count:    {count}")?;
    match header.magic() {
        IMAGES_MAGIC => {
            let images = Images::from_file(file)?;
            if let Some(n) = args.show {
                let Some(image) = images.image(n) else {
                    match images.len() {
                        0 => bail!("--show {n}: {} has no images", args.file.display()),
                        len => bail!(
                            "--show {n}: {} has {} (0 to {})",
                            args.file.display(),
                            plural(len, "image"),
                            len - 1
                        ),
                    }
                };
                writeln!(out, "image {n}:")?;
                out.push_str(&draw(image, images.cols()));
            }
        }
        LABELS_MAGIC => {
            let labels = Labels::from_file(file)?;
            let mut counts = [0usize; 256];
            for &l in labels.as_slice() {
                counts[usize::from(l)] += 1;
            }
            let per: Vec<String> = counts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(l, c)| format!("{l}: {c}"))
                .collect();
            writeln!(out, "classes:  {}", per.join(", "))?;
            if let Some(n) = args.show {
                match labels.get(n) {
                    Some(l) => writeln!(out, "label {n}: {l}")?,
                    None => bail!(
                        "--show {n}: {} has {}",
                        args.file.display(),
                        plural(labels.len(), "label")
                    ),
                }
            }
        }
        _ => {
            if args.show.is_some() {
                bail!(
                    "--show: {} is not an images file (magic {}, expected {IMAGES_MAGIC})",
                    args.file.display(),
                    header.magic()
                );
            }
            if header.dtype() == DataType::U8 {
                let head: Vec<String> = file.data().iter().take(8).map(|v| v.to_string()).collect();
                writeln!(out, "first:    {}", head.join(" "))?;
            }
        }
    }
    say_raw!("{out}");
    Ok(())
}

/// One image as text, two characters a pixel so it keeps its aspect ratio.
fn draw(image: &[u8], cols: usize) -> String {
    let mut s = String::with_capacity(image.len() * 2 + image.len() / cols.max(1) + 1);
    for row in image.chunks(cols.max(1)) {
        for &p in row {
            let c = char::from(SHADES[usize::from(p) * SHADES.len() / 256]);
            s.push(c);
            s.push(c);
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_dark_to_light_shades() {
        assert_eq!(draw(&[0, 255, 128, 26], 2), "  @@\n++..\n");
    }
}
