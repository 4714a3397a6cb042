//! A cheap identity for a dataset, to tell whether two runs saw the same
//! data.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::Dataset;

/// Images hashed at most: spread evenly over the set, enough to tell two
/// datasets apart, few enough that a fingerprint of MNIST's training set
/// reads 800 KB rather than 47 MB.
const SAMPLED_IMAGES: usize = 1024;

/// The identity of a [`Dataset`]: its size, the size of its images, and a
/// hash of all its labels and of up to 1,024 of its images, evenly spread.
///
/// Two datasets with different labels, sizes or sampled images get
/// different fingerprints; one made of the same files always gets the same.
/// It is written `SAMPLESxPIXELS:HASH`, e.g. `60000x784:2f1c…` (16 hex
/// digits), and read back with [`str::parse`].
///
/// # Examples
///
/// ```
/// use mnist_data::{Dataset, Fingerprint};
/// use mnist_idx::{Images, Labels};
///
/// // Three 2 x 2 images and their labels, as IDX files.
/// let mut images = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2];
/// images.extend([0u8; 12]);
/// let labels = vec![0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2];
/// let data = Dataset::new(
///     Images::from_bytes(images, "images")?,
///     Labels::from_bytes(labels, "labels")?,
///     10,
/// )?;
/// let fp = data.fingerprint();
/// assert_eq!(fp.samples(), 3);
/// assert_eq!(fp.to_string().parse::<Fingerprint>()?, fp);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    samples: usize,
    pixels: usize,
    hash: u64,
}

impl Fingerprint {
    /// Number of samples.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.pixels
    }
}

impl Dataset {
    /// This dataset's [`Fingerprint`].
    pub fn fingerprint(&self) -> Fingerprint {
        let mut hash = Sha256::new();
        hash.update((self.len() as u64).to_le_bytes());
        hash.update((self.pixels() as u64).to_le_bytes());
        hash.update(self.labels());
        let step = self.len().div_ceil(SAMPLED_IMAGES).max(1);
        for index in (0..self.len()).step_by(step) {
            if let Some(image) = self.images().image(index) {
                hash.update(image);
            }
        }
        let digest = hash.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Fingerprint {
            samples: self.len(),
            pixels: self.pixels(),
            hash: u64::from_be_bytes(first),
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}:{:016x}", self.samples, self.pixels, self.hash)
    }
}

/// A string that is not a [`Fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a dataset fingerprint (SAMPLESxPIXELS:16 hex digits): {0:?}")]
pub struct BadFingerprint(String);

impl std::str::FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFingerprint(s.to_string());
        let (size, hash) = s.split_once(':').ok_or_else(bad)?;
        let (samples, pixels) = size.split_once('x').ok_or_else(bad)?;
        if hash.len() != 16 {
            return Err(bad());
        }
        Ok(Self {
            samples: samples.parse().map_err(|_| bad())?,
            pixels: pixels.parse().map_err(|_| bad())?,
            hash: u64::from_str_radix(hash, 16).map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use mnist_idx::{Images, Labels};

    use super::*;

    fn data(pixels: Vec<u8>, labels: Vec<u8>) -> Dataset {
        let n = labels.len() as u8;
        let mut image_bytes = vec![0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 2, 0, 0, 0, 2];
        image_bytes.extend(pixels);
        let mut label_bytes = vec![0, 0, 8, 1, 0, 0, 0, n];
        label_bytes.extend(labels);
        let images = Images::from_bytes(image_bytes, "images").unwrap();
        let labels = Labels::from_bytes(label_bytes, "labels").unwrap();
        Dataset::new(images, labels, 10).unwrap()
    }

    #[test]
    fn labels_images_and_sizes_each_change_it() {
        let base = data(vec![1; 12], vec![0, 1, 2]).fingerprint();
        assert_eq!(base, data(vec![1; 12], vec![0, 1, 2]).fingerprint());
        assert_ne!(base, data(vec![1; 12], vec![0, 1, 3]).fingerprint());
        let mut pixels = vec![1; 12];
        pixels[5] = 2;
        assert_ne!(base, data(pixels, vec![0, 1, 2]).fingerprint());
        assert_ne!(base, data(vec![1; 16], vec![0, 1, 2, 0]).fingerprint());
    }

    #[test]
    fn reads_back_what_it_writes_and_rejects_the_rest() {
        let fp = data(vec![7; 8], vec![4, 5]).fingerprint();
        let text = fp.to_string();
        assert!(text.starts_with("2x4:"), "{text}");
        assert_eq!(text.parse::<Fingerprint>(), Ok(fp));
        for bad in [
            "",
            "2x4",
            "2x4:12",
            "ax4:0123456789abcdef",
            "2x4:0123456789abcdeg",
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }
}
