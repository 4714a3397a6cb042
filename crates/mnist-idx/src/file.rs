use std::fs::File;
use std::path::{Path, PathBuf};

use crate::element::Element;
use crate::error::{Error, Result};
use crate::header::Header;

/// Where the bytes of an [`IdxFile`] live.
enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A validated IDX file of any element type, memory-mapped or in memory.
///
/// The header has been checked against the data length before an `IdxFile`
/// is handed out; [`data`](Self::data) is exactly the payload.
pub struct IdxFile {
    path: PathBuf,
    storage: Storage,
    header: Header,
}

impl std::fmt::Debug for IdxFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdxFile")
            .field("path", &self.path)
            .field("mapped", &self.is_mapped())
            .field("header", &self.header)
            .finish()
    }
}

/// Maps `file` read-only.
///
/// # Safety
/// The mapping is only sound while nobody truncates or rewrites the file. The
/// datasets this crate reads are written once (to a temporary name, then
/// renamed into place) and never modified in place, which is the contract
/// callers accept by opening a file through [`IdxFile::open`].
fn map(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: see the function's `# Safety` section: the file is treated as
    // immutable for the lifetime of the map, and the map is only read.
    let map = unsafe { memmap2::Mmap::map(file) }?;
    // Reads of pages not yet in the page cache then bring whole 2 MiB
    // folios, which the kernel maps with 2 MiB pages: images read in a
    // random order then miss the TLB far less often. Only a hint: kernels
    // without transparent huge pages refuse it, and nothing changes.
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    Ok(map)
}

impl IdxFile {
    /// Opens `path` by memory-mapping it, falling back to reading it into
    /// memory where the filesystem cannot be mapped.
    ///
    /// The file must not be modified while it is open (see the crate docs);
    /// files written by `cargo xtask fetch-data` never are.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened or read, or any format
    /// error from [`Header::parse`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |error| Error::Io {
            path: path.to_path_buf(),
            error,
        };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(io(std::io::Error::other(
                "is a directory, expected an IDX file",
            )));
        }
        let storage = match map(&file) {
            Ok(m) => Storage::Mapped(m),
            Err(_) => Storage::Owned(std::fs::read(path).map_err(io)?),
        };
        Self::with_storage(path.to_path_buf(), storage)
    }

    /// Reads `path` into memory instead of mapping it.
    ///
    /// # Errors
    /// As [`IdxFile::open`].
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_bytes(bytes, path)
    }

    /// Validates bytes already in memory (for example decompressed from a
    /// `.gz`); `name` is used in error messages.
    ///
    /// # Errors
    /// Any format error from [`Header::parse`].
    pub fn from_bytes(bytes: Vec<u8>, name: impl Into<PathBuf>) -> Result<Self> {
        Self::with_storage(name.into(), Storage::Owned(bytes))
    }

    fn with_storage(path: PathBuf, storage: Storage) -> Result<Self> {
        let header = Header::parse(storage.bytes(), &path)?;
        Ok(Self {
            path,
            storage,
            header,
        })
    }

    /// The path (or name) the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Whether the bytes are memory-mapped rather than held on the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped(_))
    }

    /// The payload after the header, exactly [`Header::data_len`] bytes.
    pub fn data(&self) -> &[u8] {
        // The header was validated against this very length.
        &self.storage.bytes()[self.header.header_len()..]
    }

    /// The elements as `T`, decoded from big-endian, in file order.
    ///
    /// # Errors
    /// [`Error::WrongType`] when the file's type is not `T`'s.
    pub fn values<T: Element>(&self) -> Result<impl ExactSizeIterator<Item = T> + '_> {
        if self.header.dtype() != T::DTYPE {
            return Err(Error::WrongType {
                path: self.path.clone(),
                expected: T::DTYPE.name(),
                found: self.header.dtype().name(),
            });
        }
        Ok(self.data().chunks_exact(T::DTYPE.size()).map(T::from_be))
    }

    /// The elements as a `Vec<T>`; see [`values`](Self::values).
    ///
    /// # Errors
    /// [`Error::WrongType`] when the file's type is not `T`'s.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        Ok(self.values::<T>()?.collect())
    }

    /// Checks the magic number, naming `what` the caller expected.
    pub(crate) fn expect_magic(&self, expected: u32, what: &'static str) -> Result<()> {
        let found = self.header.magic();
        if found == expected {
            Ok(())
        } else {
            Err(Error::WrongMagic {
                path: self.path.clone(),
                what,
                expected,
                found,
            })
        }
    }
}
