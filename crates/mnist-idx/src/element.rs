use crate::header::DataType;

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that an IDX element type decodes to.
///
/// Implemented for `u8`, `i8`, `i16`, `i32`, `f32` and `f64`; sealed.
pub trait Element: sealed::Sealed + Copy + 'static {
    /// The IDX type this Rust type stands for.
    const DTYPE: DataType;
    /// Decodes one element from exactly `DTYPE.size()` big-endian bytes.
    fn from_be(bytes: &[u8]) -> Self;
}

macro_rules! element {
    ($t:ty, $dtype:ident) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DataType = DataType::$dtype;
            fn from_be(bytes: &[u8]) -> Self {
                let mut buf = [0u8; std::mem::size_of::<$t>()];
                buf.copy_from_slice(bytes);
                <$t>::from_be_bytes(buf)
            }
        }
    };
}

element!(u8, U8);
element!(i8, I8);
element!(i16, I16);
element!(i32, I32);
element!(f32, F32);
element!(f64, F64);
