//! What a dataset is made of: four gzip'd IDX files, where to find them and
//! what they must look like.

use std::fmt;

/// What an IDX file holds, with the shape it must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An `idx3-ubyte` image file of `rows x cols` pixels per image.
    Images {
        /// Pixel rows per image.
        rows: usize,
        /// Pixel columns per image.
        cols: usize,
    },
    /// An `idx1-ubyte` label file.
    Labels,
}

/// One file of a dataset: the official `.gz` and what it decompresses to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The decompressed name, e.g. `train-images-idx3-ubyte`; the mirrors
    /// carry it with a `.gz` suffix.
    pub name: String,
    /// Images or labels, with the shape to check.
    pub kind: Kind,
    /// Number of items (images or labels) the file must hold.
    pub count: usize,
    /// Size in bytes of the official `.gz`.
    pub gz_size: u64,
    /// SHA-256 of the official `.gz`, lowercase hex.
    pub gz_sha256: String,
    /// SHA-256 of the decompressed file, lowercase hex, where known: a copy
    /// recompressed by a redistributor (so its `.gz` matches neither the
    /// official size nor checksum) is accepted when its content matches.
    pub content_sha256: Option<String>,
}

impl FileSpec {
    fn new(name: &str, kind: Kind, count: usize, gz_size: u64, gz_sha256: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            count,
            gz_size,
            gz_sha256: gz_sha256.to_owned(),
            content_sha256: None,
        }
    }

    fn with_content(mut self, sha256: &str) -> Self {
        self.content_sha256 = Some(sha256.to_owned());
        self
    }

    /// The name of the compressed file on a mirror.
    pub fn gz_name(&self) -> String {
        format!("{}.gz", self.name)
    }

    /// The exact size of the decompressed IDX file, or `None` if it does not
    /// fit in a `u64`.
    pub fn idx_len(&self) -> Option<u64> {
        let count = u64::try_from(self.count).ok()?;
        match self.kind {
            // magic + 3 dimensions, then one byte per pixel
            Kind::Images { rows, cols } => {
                let pixels = u64::try_from(rows)
                    .ok()?
                    .checked_mul(u64::try_from(cols).ok()?)?;
                count.checked_mul(pixels)?.checked_add(16)
            }
            // magic + 1 dimension, then one byte per label
            Kind::Labels => count.checked_add(8),
        }
    }
}

/// A dataset: its directory name, files and default mirrors.
///
/// The fetcher takes everything it checks from here, so tests can describe a
/// tiny dataset of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Directory under the output folder, e.g. `mnist`.
    pub name: String,
    /// The files, in the order they are fetched.
    pub files: Vec<FileSpec>,
    /// Default mirrors (base URLs), tried after the user's in this order.
    pub mirrors: Vec<String>,
    /// Environment variable naming an extra mirror tried first.
    pub mirror_env: String,
}

/// Where Debian's `dataset-fashion-mnist` package puts the four `.gz` files.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

const MNIST_SIDE: usize = 28;
const IMAGES: Kind = Kind::Images {
    rows: MNIST_SIDE,
    cols: MNIST_SIDE,
};

impl DatasetSpec {
    /// MNIST, with the official sizes and checksums.
    pub fn mnist() -> Self {
        Self {
            name: "mnist".to_owned(),
            files: vec![
                FileSpec::new(
                    "train-images-idx3-ubyte",
                    IMAGES,
                    60_000,
                    9_912_422,
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                ),
                FileSpec::new(
                    "train-labels-idx1-ubyte",
                    Kind::Labels,
                    60_000,
                    28_881,
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                ),
                FileSpec::new(
                    "t10k-images-idx3-ubyte",
                    IMAGES,
                    10_000,
                    1_648_877,
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                ),
                FileSpec::new(
                    "t10k-labels-idx1-ubyte",
                    Kind::Labels,
                    10_000,
                    4_542,
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                ),
            ],
            mirrors: vec![
                "https://ossci-datasets.s3.amazonaws.com/mnist/".to_owned(),
                "https://storage.googleapis.com/cvdf-datasets/mnist/".to_owned(),
            ],
            mirror_env: "MNIST_MIRROR".to_owned(),
        }
    }

    /// Fashion-MNIST, with the official sizes and checksums, and the
    /// checksums of the decompressed files (computed from the copy in
    /// Debian's `dataset-fashion-mnist` package, which recompressed the
    /// official files). That package's folder, when installed, is the first
    /// built-in mirror.
    pub fn fashion_mnist() -> Self {
        Self {
            name: "fashion-mnist".to_owned(),
            files: vec![
                FileSpec::new(
                    "train-images-idx3-ubyte",
                    IMAGES,
                    60_000,
                    26_421_880,
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                )
                .with_content("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
                FileSpec::new(
                    "train-labels-idx1-ubyte",
                    Kind::Labels,
                    60_000,
                    29_515,
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                )
                .with_content("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
                FileSpec::new(
                    "t10k-images-idx3-ubyte",
                    IMAGES,
                    10_000,
                    4_422_102,
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                )
                .with_content("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
                FileSpec::new(
                    "t10k-labels-idx1-ubyte",
                    Kind::Labels,
                    10_000,
                    5_148,
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                )
                .with_content("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
            ],
            mirrors: [DEBIAN_FASHION_MNIST]
                .into_iter()
                .filter(|dir| std::path::Path::new(dir).is_dir())
                .chain(["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"])
                .map(str::to_owned)
                .collect(),
            mirror_env: "FASHION_MNIST_MIRROR".to_owned(),
        }
    }
}

/// The datasets the fetcher knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Dataset {
    /// Handwritten digits.
    #[default]
    Mnist,
    /// Zalando's clothing images, same format and sizes as MNIST.
    FashionMnist,
}

impl Dataset {
    /// The built-in description of this dataset.
    pub fn spec(self) -> DatasetSpec {
        match self {
            Self::Mnist => DatasetSpec::mnist(),
            Self::FashionMnist => DatasetSpec::fashion_mnist(),
        }
    }
}

impl Dataset {
    /// Every dataset, in the order they are listed.
    pub const ALL: [Self; 2] = [Self::Mnist, Self::FashionMnist];

    /// Its name, which is also the name of its folder: `mnist` or
    /// `fashion-mnist`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dataset name the fetcher does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dataset `{name}`: expected mnist or fashion-mnist")]
pub struct UnknownDataset {
    /// The name as given.
    pub name: String,
}

impl std::str::FromStr for Dataset {
    type Err = UnknownDataset;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| UnknownDataset {
                name: name.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_lengths_match_the_official_files() {
        let spec = DatasetSpec::mnist();
        let lens: Vec<_> = spec.files.iter().map(FileSpec::idx_len).collect();
        assert_eq!(
            lens,
            [
                Some(47_040_016),
                Some(60_008),
                Some(7_840_016),
                Some(10_008)
            ]
        );
    }

    #[test]
    fn idx_len_overflow_is_none() {
        let file = FileSpec::new(
            "x",
            Kind::Images {
                rows: usize::MAX,
                cols: 2,
            },
            1,
            0,
            "",
        );
        assert_eq!(file.idx_len(), None);
    }

    #[test]
    fn names_parse_back() {
        for dataset in Dataset::ALL {
            assert_eq!(dataset.name().parse(), Ok(dataset));
            assert_eq!(dataset.spec().name, dataset.name());
        }
        assert_eq!(
            "cifar".parse::<Dataset>().map_err(|e| e.to_string()),
            Err("unknown dataset `cifar`: expected mnist or fashion-mnist".to_owned())
        );
    }

    #[test]
    fn checksums_are_lowercase_hex() {
        for spec in [DatasetSpec::mnist(), DatasetSpec::fashion_mnist()] {
            for file in &spec.files {
                assert_eq!(file.gz_sha256.len(), 64);
                assert!(file
                    .gz_sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            }
        }
    }
}
