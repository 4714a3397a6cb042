//! A tiny dataset in MNIST's layout: 3 training and 2 test images of 28x28
//! pixels with their labels, gzipped, plus the spec that describes it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use mnist_fetch::checksum::sha256_hex;
use mnist_fetch::{DatasetSpec, FileSpec, Kind, Mirror, MirrorParseError, Options};

pub const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub struct Fixture {
    pub spec: DatasetSpec,
    /// Decompressed IDX bytes by decompressed name.
    pub idx: BTreeMap<String, Vec<u8>>,
    /// The "official" `.gz` bytes by `.gz` name.
    pub gz: BTreeMap<String, Vec<u8>>,
}

fn images(count: u32, seed: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    for word in [2051, count, 28, 28] {
        bytes.extend_from_slice(&u32::to_be_bytes(word));
    }
    bytes.extend((0..count * 28 * 28).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    bytes
}

fn labels(count: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for word in [2049, count] {
        bytes.extend_from_slice(&u32::to_be_bytes(word));
    }
    bytes.extend((0..count).map(|i| (i % 10) as u8));
    bytes
}

pub fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::new(level));
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

impl Fixture {
    pub fn new() -> Self {
        let contents = [
            (
                NAMES[0],
                images(3, 1),
                Kind::Images { rows: 28, cols: 28 },
                3,
            ),
            (NAMES[1], labels(3), Kind::Labels, 3),
            (
                NAMES[2],
                images(2, 7),
                Kind::Images { rows: 28, cols: 28 },
                2,
            ),
            (NAMES[3], labels(2), Kind::Labels, 2),
        ];
        let mut idx = BTreeMap::new();
        let mut gz = BTreeMap::new();
        let mut files = Vec::new();
        for (name, bytes, kind, count) in contents {
            let packed = gzip(&bytes, 6);
            files.push(FileSpec {
                name: name.to_owned(),
                kind,
                count,
                gz_size: packed.len() as u64,
                gz_sha256: sha256_hex(&packed),
                content_sha256: None,
            });
            gz.insert(format!("{name}.gz"), packed);
            idx.insert(name.to_owned(), bytes);
        }
        let spec = DatasetSpec {
            name: "tiny".to_owned(),
            files,
            mirrors: Vec::new(),
            mirror_env: "TINY_MIRROR".to_owned(),
        };
        Self { spec, idx, gz }
    }

    /// The same contents compressed differently, as a re-packing mirror
    /// would serve them, with the `SHA256SUMS` that lists them.
    pub fn repacked(&self) -> (BTreeMap<String, Vec<u8>>, String) {
        let mut gz = BTreeMap::new();
        let mut sums = String::new();
        for (name, bytes) in &self.idx {
            let packed = gzip(bytes, 1);
            sums.push_str(&format!("{}  {name}.gz\n", sha256_hex(&packed)));
            gz.insert(format!("{name}.gz"), packed);
        }
        (gz, sums)
    }

    pub fn options(&self, out: &Path, mirrors: &[&str]) -> Result<Options, MirrorParseError> {
        Ok(Options {
            out_dir: out.to_path_buf(),
            mirrors: mirrors
                .iter()
                .map(|m| Mirror::parse(m))
                .collect::<Result<_, _>>()?,
            force: false,
            timeout: Duration::from_secs(5),
        })
    }
}

/// The names in `dir`, sorted (an absent folder counts as empty).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The four final names, sorted as [`listing`] sorts.
pub fn all_final() -> Vec<String> {
    let mut names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    names.sort();
    names
}
