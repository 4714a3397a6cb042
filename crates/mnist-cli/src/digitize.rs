//! Any grayscale picture of a digit to a 28x28 MNIST image, the way MNIST
//! itself was made: the ink cropped, its longer side scaled to 20 pixels,
//! then placed so that its centre of mass is at the centre of the field.

use anyhow::{bail, Result};

/// Side of an MNIST image.
pub const SIDE: usize = 28;
/// Side of the box the digit is scaled into.
const BOX: usize = 20;
/// A pixel counts as ink for the crop when it is this far from the
/// background towards the darkest ink (0 to 1). Low enough to keep the
/// antialiased edge of a stroke, high enough to ignore JPEG ringing and
/// uneven paper.
const INK_THRESHOLD: f32 = 0.2;
/// Fewer grey levels than this between background and ink: a blank image,
/// whose noise must not be stretched into a digit.
const MIN_CONTRAST: f32 = 32.0;

/// Digitises a `width` x `height` grayscale image (row-major, one byte a
/// pixel) into an MNIST image: light ink on a black background, the digit's
/// longer side 20 pixels, its centre of mass at (14, 14).
///
/// Dark ink on a light background is inverted first; which is background is
/// decided by the median of the border pixels. Levels are stretched so that
/// the background is 0 and the darkest ink 255.
///
/// # Errors
/// When the buffer does not hold `width * height` bytes, either side is 0,
/// or the image has no ink.
pub fn digitize(gray: &[u8], width: usize, height: usize) -> Result<[u8; SIDE * SIDE]> {
    if width == 0 || height == 0 {
        bail!("empty image ({width}x{height})");
    }
    match width.checked_mul(height) {
        Some(n) if n == gray.len() => {}
        _ => bail!(
            "image buffer of {} bytes for {width}x{height} pixels",
            gray.len()
        ),
    }
    let background = border_median(gray, width, height);
    let invert = background > 127;
    let ink_of = |v: u8| -> f32 {
        if invert {
            f32::from(255 - v)
        } else {
            f32::from(v)
        }
    };
    let bg = ink_of(background);
    let peak = gray.iter().map(|&v| ink_of(v)).fold(0.0_f32, f32::max);
    if peak - bg < MIN_CONTRAST {
        bail!("no ink found: the image is blank");
    }
    let level: Vec<f32> = gray
        .iter()
        .map(|&v| ((ink_of(v) - bg) / (peak - bg)).clamp(0.0, 1.0))
        .collect();

    let Some((x0, y0, x1, y1)) = ink_box(&level, width, height) else {
        bail!("no ink found: the image is blank");
    };
    let (cw, ch) = (x1 - x0, y1 - y0);
    let crop: Vec<f32> = (y0..y1)
        .flat_map(|y| level[y * width + x0..y * width + x1].iter().copied())
        .collect();

    // The longer side becomes 20 pixels; the shorter keeps the aspect ratio.
    let longer = cw.max(ch) as f64;
    let scaled_side = |side: usize| ((side as f64 * BOX as f64 / longer).round() as usize).max(1);
    let (sw, sh) = (scaled_side(cw), scaled_side(ch));
    let scaled = resize(&crop, cw, ch, sw, sh);

    // Centre of mass, in pixel indices, moved to (14, 14): where MNIST's
    // digits have theirs (the mean over its test set is within 0.02).
    let (mut mass, mut mx, mut my) = (0.0_f64, 0.0_f64, 0.0_f64);
    for y in 0..sh {
        for x in 0..sw {
            let v = f64::from(scaled[y * sw + x]);
            mass += v;
            mx += v * x as f64;
            my += v * y as f64;
        }
    }
    if mass <= 0.0 {
        bail!("no ink found: the image is blank");
    }
    let centre = SIDE as f64 / 2.0;
    let dx = (centre - mx / mass).round() as i64;
    let dy = (centre - my / mass).round() as i64;

    let mut out = [0u8; SIDE * SIDE];
    for y in 0..sh {
        for x in 0..sw {
            let (tx, ty) = (x as i64 + dx, y as i64 + dy);
            if (0..SIDE as i64).contains(&tx) && (0..SIDE as i64).contains(&ty) {
                let v = (scaled[y * sw + x] * 255.0).round().clamp(0.0, 255.0);
                out[ty as usize * SIDE + tx as usize] = v as u8;
            }
        }
    }
    Ok(out)
}

/// Median of the pixels on the image's border.
fn border_median(gray: &[u8], width: usize, height: usize) -> u8 {
    let mut border: Vec<u8> = Vec::with_capacity(2 * (width + height));
    for y in 0..height {
        let row = &gray[y * width..(y + 1) * width];
        if y == 0 || y + 1 == height {
            border.extend_from_slice(row);
        } else {
            border.push(row[0]);
            if width > 1 {
                border.push(row[width - 1]);
            }
        }
    }
    let mid = border.len() / 2;
    *border.select_nth_unstable(mid).1
}

/// The bounding box `(x0, y0, x1, y1)`, ends exclusive, of the ink pixels.
fn ink_box(level: &[f32], width: usize, height: usize) -> Option<(usize, usize, usize, usize)> {
    let mut bounds: Option<(usize, usize, usize, usize)> = None;
    for y in 0..height {
        for x in 0..width {
            if level[y * width + x] > INK_THRESHOLD {
                bounds = Some(match bounds {
                    None => (x, y, x + 1, y + 1),
                    Some((a, b, c, d)) => (a.min(x), b.min(y), c.max(x + 1), d.max(y + 1)),
                });
            }
        }
    }
    bounds
}

/// Weights of the source pixels for each output pixel along one axis: the
/// overlap of the pixel's footprint when shrinking (area averaging, which
/// antialiases), linear interpolation when growing.
fn axis_weights(from: usize, to: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = from as f64 / to as f64;
    (0..to)
        .map(|o| {
            if scale > 1.0 {
                let (start, end) = (o as f64 * scale, (o + 1) as f64 * scale);
                let first = start.floor() as usize;
                let last = (end.ceil() as usize).min(from);
                (first..last)
                    .filter_map(|i| {
                        let overlap = end.min(i as f64 + 1.0) - start.max(i as f64);
                        (overlap > 0.0).then_some((i, (overlap / scale) as f32))
                    })
                    .collect()
            } else {
                let u = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, (from - 1) as f64);
                let i = u.floor() as usize;
                let frac = (u - i as f64) as f32;
                if i + 1 < from && frac > 0.0 {
                    vec![(i, 1.0 - frac), (i + 1, frac)]
                } else {
                    vec![(i, 1.0)]
                }
            }
        })
        .collect()
}

/// Resamples a `w` x `h` image to `nw` x `nh`, one axis at a time.
fn resize(src: &[f32], w: usize, h: usize, nw: usize, nh: usize) -> Vec<f32> {
    let wx = axis_weights(w, nw);
    let wy = axis_weights(h, nh);
    let mut rows = vec![0.0_f32; nw * h];
    for y in 0..h {
        let line = &src[y * w..(y + 1) * w];
        for (x, weights) in wx.iter().enumerate() {
            rows[y * nw + x] = weights.iter().map(|&(i, k)| line[i] * k).sum();
        }
    }
    let mut out = vec![0.0_f32; nw * nh];
    for (y, weights) in wy.iter().enumerate() {
        for x in 0..nw {
            out[y * nw + x] = weights.iter().map(|&(i, k)| rows[i * nw + x] * k).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digit-like shape in a 20x20 box (a "4"-ish figure of strokes with
    /// softer edges), placed in 28x28 with its centre of mass at the centre
    /// as MNIST did: an image `digitize` must leave (nearly) as it is.
    fn mnist_style() -> [u8; SIDE * SIDE] {
        let mut glyph = [0u8; BOX * BOX];
        for y in 0..BOX {
            for x in 0..BOX {
                let stroke = (3..6).contains(&x) && y < 12
                    || (10..13).contains(&y) && x < 16
                    || (12..15).contains(&x);
                let edge = (6..7).contains(&x) && y < 12 || (11..12).contains(&x);
                glyph[y * BOX + x] = if stroke {
                    255
                } else if edge {
                    128
                } else {
                    0
                };
            }
        }
        let (mut mass, mut mx, mut my) = (0.0, 0.0, 0.0);
        for y in 0..BOX {
            for x in 0..BOX {
                let v = f64::from(glyph[y * BOX + x]);
                mass += v;
                mx += v * x as f64;
                my += v * y as f64;
            }
        }
        let dx = (14.0 - mx / mass).round() as usize;
        let dy = (14.0 - my / mass).round() as usize;
        let mut out = [0u8; SIDE * SIDE];
        for y in 0..BOX {
            for x in 0..BOX {
                out[(y + dy) * SIDE + x + dx] = glyph[y * BOX + x];
            }
        }
        out
    }

    /// `img` scaled up `k` times by repeating pixels, and turned to dark ink
    /// on a light background in a larger canvas, off centre.
    fn on_paper(img: &[u8; SIDE * SIDE], k: usize) -> (Vec<u8>, usize, usize) {
        let (w, h) = (SIDE * k + 97, SIDE * k + 41);
        let mut paper = vec![235u8; w * h];
        for y in 0..SIDE * k {
            for x in 0..SIDE * k {
                let v = img[(y / k) * SIDE + x / k];
                paper[(y + 30) * w + x + 11] = 235 - (u16::from(v) * 235 / 255) as u8;
            }
        }
        (paper, w, h)
    }

    #[test]
    fn an_mnist_style_digit_comes_back_the_same() {
        let img = mnist_style();
        let out = digitize(&img, SIDE, SIDE).unwrap();
        assert_eq!(out, img);
    }

    #[test]
    fn a_scaled_inverted_off_centre_digit_comes_back_nearly_the_same() {
        let img = mnist_style();
        let (paper, w, h) = on_paper(&img, 5);
        let out = digitize(&paper, w, h).unwrap();
        let worst = out
            .iter()
            .zip(&img)
            .map(|(&a, &b)| a.abs_diff(b))
            .max()
            .unwrap();
        assert!(worst <= 2, "largest pixel difference {worst}");
    }

    #[test]
    fn a_small_digit_is_scaled_up_to_fill_the_box() {
        // A 4x8 bar: its longer side becomes 20 pixels, its shorter 10; its
        // centre of mass (4.5, 9.5) rounds to (14, 14) by moving (10, 5).
        let (w, h) = (40, 30);
        let mut img = vec![0u8; w * h];
        for y in 5..13 {
            for x in 30..34 {
                img[y * w + x] = 200;
            }
        }
        let out = digitize(&img, w, h).unwrap();
        let rows: Vec<usize> = (0..SIDE)
            .filter(|y| out[y * SIDE..(y + 1) * SIDE].iter().any(|&v| v > 0))
            .collect();
        let cols: Vec<usize> = (0..SIDE)
            .filter(|&x| (0..SIDE).any(|y| out[y * SIDE + x] > 0))
            .collect();
        assert_eq!(rows, (5..25).collect::<Vec<_>>());
        assert_eq!(cols, (10..20).collect::<Vec<_>>());
        assert_eq!(out[14 * SIDE + 14], 255);
    }

    #[test]
    fn a_large_digit_is_averaged_down() {
        // A 200x100 block: 20x10 after scaling, every pixel full ink.
        let (w, h) = (300, 300);
        let mut img = vec![255u8; w * h];
        for y in 50..150 {
            for x in 20..220 {
                img[y * w + x] = 0;
            }
        }
        let out = digitize(&img, w, h).unwrap();
        assert_eq!(out.iter().filter(|&&v| v == 255).count(), 200);
        assert_eq!(out.iter().filter(|&&v| v != 0 && v != 255).count(), 0);
    }

    #[test]
    fn blank_and_malformed_images_are_errors() {
        let flat = vec![200u8; 50 * 40];
        let err = digitize(&flat, 50, 40).unwrap_err().to_string();
        assert!(err.contains("blank"), "{err}");
        let mut faint = flat.clone();
        faint[20 * 50 + 25] = 190;
        assert!(digitize(&faint, 50, 40).is_err());
        assert!(digitize(&flat, 50, 41).is_err());
        assert!(digitize(&[], 0, 0).is_err());
    }

    #[test]
    fn ink_at_the_edges_is_clipped_not_a_panic() {
        // A thin diagonal whose centre of mass sits far from its box centre.
        let (w, h) = (100, 100);
        let mut img = vec![0u8; w * h];
        for i in 0..100 {
            img[i * w + i] = 255;
        }
        for y in 0..100 {
            for x in 90..100 {
                img[y * w + x] = 255;
            }
        }
        let out = digitize(&img, w, h).unwrap();
        assert!(out.iter().any(|&v| v > 0));
    }
}
