//! Opens an MNIST images file and its labels, checks that they pair up, and
//! draws one image in text shades with its label.
//!
//! ```sh
//! cargo run -p mnist-idx --example show -- [DATA_DIR] [INDEX]
//! ```
//!
//! `DATA_DIR` defaults to `data/mnist` (fetch it with `cargo xtask
//! fetch-data`); `INDEX` to 0. A malformed file is an error naming it.

use std::error::Error;
use std::path::Path;

use mnist_idx::{pair, Images, Labels};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "data/mnist".into());
    let index: usize = args.next().map_or(Ok(0), |i| i.parse())?;
    let dir = Path::new(&dir);
    let (images, labels) = pair(
        Images::open(dir.join("t10k-images-idx3-ubyte"))?,
        Labels::open(dir.join("t10k-labels-idx1-ubyte"))?,
    )?;
    println!(
        "{} images of {} x {} pixels",
        images.len(),
        images.rows(),
        images.cols()
    );
    let (Some(image), Some(label)) = (images.image(index), labels.get(index)) else {
        return Err(format!("no image {index}: there are {}", images.len()).into());
    };
    println!("image {index}, label {label}:");
    const SHADES: &[u8] = b" .:-=+*#%@";
    for row in image.chunks(images.cols()) {
        let line: String = row
            .iter()
            .map(|&p| char::from(SHADES[usize::from(p) * (SHADES.len() - 1) / 255]))
            .collect();
        println!("{line}");
    }
    Ok(())
}
