use std::path::Path;

use crate::error::{Error, Result};

/// The element type of an IDX file, from its third byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `0x08`: unsigned byte.
    U8,
    /// `0x09`: signed byte.
    I8,
    /// `0x0B`: big-endian 16-bit signed integer.
    I16,
    /// `0x0C`: big-endian 32-bit signed integer.
    I32,
    /// `0x0D`: big-endian IEEE 754 single.
    F32,
    /// `0x0E`: big-endian IEEE 754 double.
    F64,
}

impl DataType {
    /// The type for an IDX type byte, if there is one.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x08 => Self::U8,
            0x09 => Self::I8,
            0x0B => Self::I16,
            0x0C => Self::I32,
            0x0D => Self::F32,
            0x0E => Self::F64,
            _ => return None,
        })
    }

    /// The IDX type byte.
    pub fn code(self) -> u8 {
        match self {
            Self::U8 => 0x08,
            Self::I8 => 0x09,
            Self::I16 => 0x0B,
            Self::I32 => 0x0C,
            Self::F32 => 0x0D,
            Self::F64 => 0x0E,
        }
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::I16 => 2,
            Self::I32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    /// A short name: `u8`, `i8`, `i16`, `i32`, `f32` or `f64`.
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::I16 => "i16",
            Self::I32 => "i32",
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated IDX header.
///
/// A `Header` exists only for bytes whose type, rank and dimensions were
/// checked and whose data length is exactly what the dimensions promise, so
/// code holding one may slice the data without further checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    dtype: DataType,
    dims: Vec<usize>,
    elements: usize,
}

impl Header {
    /// Parses and validates the header at the start of `bytes`, the whole
    /// content of the file `path` (used only in error messages).
    ///
    /// # Errors
    /// Any deviation from the format: a gzip file, a non-zero prefix, an
    /// unknown type byte, rank 0, a truncated header, dimensions whose product
    /// overflows, or data shorter or longer than the dimensions promise.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let path_buf = || path.to_path_buf();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            return Err(Error::Gzip { path: path_buf() });
        }
        let Some(&[z0, z1, type_byte, rank]) = bytes.first_chunk::<4>() else {
            return Err(Error::TruncatedHeader {
                path: path_buf(),
                expected: 4,
                found: bytes.len(),
            });
        };
        if z0 != 0 || z1 != 0 {
            return Err(Error::BadPrefix {
                path: path_buf(),
                found: u16::from_be_bytes([z0, z1]),
            });
        }
        let dtype = DataType::from_code(type_byte).ok_or(Error::UnknownType {
            path: path_buf(),
            found: type_byte,
        })?;
        if rank == 0 {
            return Err(Error::ZeroRank { path: path_buf() });
        }
        let header_len = 4 + 4 * usize::from(rank);
        let dim_bytes = bytes.get(4..header_len).ok_or(Error::TruncatedHeader {
            path: path_buf(),
            expected: header_len,
            found: bytes.len(),
        })?;
        let raw_dims: Vec<u32> = dim_bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let overflow = || Error::Overflow {
            path: path_buf(),
            dims: raw_dims.clone(),
            elem_size: dtype.size(),
        };
        let mut elements: usize = 1;
        let mut dims = Vec::with_capacity(raw_dims.len());
        for &d in &raw_dims {
            let d = usize::try_from(d).map_err(|_| overflow())?;
            elements = elements.checked_mul(d).ok_or_else(overflow)?;
            dims.push(d);
        }
        let data_len = elements.checked_mul(dtype.size()).ok_or_else(overflow)?;
        let found = bytes.len() - header_len;
        if found != data_len {
            return Err(Error::DataLength {
                path: path_buf(),
                expected: data_len,
                found,
            });
        }
        Ok(Self {
            dtype,
            dims,
            elements,
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DataType {
        self.dtype
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The rank: how many dimensions.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// The magic number as the format defines it: type byte and rank, read as
    /// one big-endian `u32` together with the two zero bytes (2051 for
    /// MNIST images, 2049 for labels).
    pub fn magic(&self) -> u32 {
        // Rank fits a byte: the parser read it from one.
        (u32::from(self.dtype.code()) << 8) | (self.dims.len() as u32 & 0xff)
    }

    /// Number of elements: the product of the dimensions.
    pub fn elements(&self) -> usize {
        self.elements
    }

    /// Bytes taken by the header.
    pub fn header_len(&self) -> usize {
        4 + 4 * self.dims.len()
    }

    /// Bytes taken by the data.
    pub fn data_len(&self) -> usize {
        self.elements * self.dtype.size()
    }
}
