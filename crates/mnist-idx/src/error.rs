use std::path::PathBuf;

/// Everything that can go wrong when reading an IDX file.
///
/// Every variant names the file (or the name given to in-memory bytes) and,
/// where it applies, what was expected and what was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, mapped or read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The file is shorter than the header it starts to describe.
    #[error("{path}: truncated header: expected at least {expected} bytes, found {found}")]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Bytes the header needs.
        expected: usize,
        /// Bytes in the file.
        found: usize,
    },
    /// The file starts with gzip's magic bytes: it was not decompressed.
    #[error("{path}: this is a gzip file; decompress it first (`cargo xtask fetch-data` does)")]
    Gzip {
        /// The file.
        path: PathBuf,
    },
    /// The first two bytes are not zero.
    #[error("{path}: not an IDX file: expected two zero bytes at the start, found {found:#06x}")]
    BadPrefix {
        /// The file.
        path: PathBuf,
        /// The first two bytes, big-endian.
        found: u16,
    },
    /// The type byte names no IDX element type.
    #[error("{path}: unknown IDX type byte {found:#04x} (expected 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e)")]
    UnknownType {
        /// The file.
        path: PathBuf,
        /// The type byte.
        found: u8,
    },
    /// The rank byte is zero.
    #[error("{path}: rank 0: an IDX file needs at least one dimension")]
    ZeroRank {
        /// The file.
        path: PathBuf,
    },
    /// The dimensions multiply to more than fits in memory.
    #[error("{path}: dimensions {dims:?} of {elem_size}-byte elements overflow the address space")]
    Overflow {
        /// The file.
        path: PathBuf,
        /// The dimensions from the header.
        dims: Vec<u32>,
        /// The element size in bytes.
        elem_size: usize,
    },
    /// The data after the header is shorter or longer than the header promises.
    #[error("{path}: {} data: header promises {expected} bytes, found {found}", if found < expected { "truncated" } else { "trailing bytes after the" })]
    DataLength {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: usize,
        /// Bytes present after the header.
        found: usize,
    },
    /// The magic number is not the one expected for this kind of file.
    #[error("{path}: wrong magic number: expected {expected} ({what}), found {found}")]
    WrongMagic {
        /// The file.
        path: PathBuf,
        /// What kind of file was expected.
        what: &'static str,
        /// The expected magic number.
        expected: u32,
        /// The magic number in the file.
        found: u32,
    },
    /// The element type is not the one requested.
    #[error("{path}: expected elements of type {expected}, found {found}")]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The requested type.
        expected: &'static str,
        /// The file's type.
        found: &'static str,
    },
    /// An images file and a labels file hold different numbers of items.
    #[error("{images} has {n_images} images but {labels} has {n_labels} labels")]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// Its count.
        n_images: usize,
        /// The labels file.
        labels: PathBuf,
        /// Its count.
        n_labels: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
