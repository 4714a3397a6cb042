//! Dataset files written in 2 MiB pieces at 2 MiB offsets.
//!
//! Linux keeps a file in its page cache in folios whose size follows the
//! writes that made them: 8 KiB writes leave 8 KiB folios, a write of a
//! whole, aligned 2 MiB leaves one 2 MiB folio (on filesystems with large
//! folios, such as ext4 and XFS on recent kernels). A memory map of the file
//! then maps each 2 MiB folio with one huge page instead of 512 small ones.
//! The trainer reads images in a random order from all over the file, so
//! with 4 KiB pages nearly every image costs a TLB miss; with 2 MiB pages
//! the whole training set needs 24 TLB entries. Writing the datasets this
//! way took 6% to 12% off the same trainer's training time (see
//! BENCHMARKS.md).

use std::io::{self, Write};

/// Size of a piece: the huge page size of x86-64 and of most aarch64
/// kernels.
pub const PIECE: usize = 2 << 20;

/// A writer that hands its inner writer whole [`PIECE`]s, so that a file
/// written from its start gets each piece in one `write` at a multiple of
/// [`PIECE`]; the rest goes in one last write on [`flush`](Write::flush) or
/// [`finish`](Self::finish). Flushing before the end breaks the alignment of
/// the pieces after it (the bytes are still all written, in order).
#[derive(Debug)]
pub struct PieceWriter<W: Write> {
    inner: W,
    piece: Vec<u8>,
}

impl<W: Write> PieceWriter<W> {
    /// A writer into `inner`, which should be at the start of its file.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            piece: Vec::with_capacity(PIECE),
        }
    }

    /// Writes what is left and returns the inner writer.
    ///
    /// # Errors
    /// The inner writer's.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for PieceWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (PIECE - self.piece.len()).min(data.len());
        self.piece
            .extend_from_slice(data.get(..n).unwrap_or_default());
        if self.piece.len() == PIECE {
            self.inner.write_all(&self.piece)?;
            self.piece.clear();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.piece.is_empty() {
            self.inner.write_all(&self.piece)?;
            self.piece.clear();
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the size of every write it is given.
    #[derive(Default)]
    struct Writes {
        sizes: Vec<usize>,
        bytes: Vec<u8>,
    }

    impl Write for Writes {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.sizes.push(data.len());
            self.bytes.extend_from_slice(data);
            Ok(data.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn whole_pieces_then_the_rest_all_bytes_in_order() {
        let data: Vec<u8> = (0..2 * PIECE + 12_345).map(|i| (i % 251) as u8).collect();
        let mut w = PieceWriter::new(Writes::default());
        // Uneven chunks that straddle the piece boundaries.
        for chunk in data.chunks(8_191) {
            w.write_all(chunk).expect("in memory");
        }
        let inner = w.finish().expect("in memory");
        assert_eq!(inner.sizes, [PIECE, PIECE, 12_345]);
        assert!(inner.bytes == data, "bytes changed or reordered");
    }

    #[test]
    fn an_exact_multiple_leaves_nothing_for_the_end() {
        let mut w = PieceWriter::new(Writes::default());
        w.write_all(&vec![7u8; PIECE]).expect("in memory");
        let inner = w.finish().expect("in memory");
        assert_eq!(inner.sizes, [PIECE]);
    }

    /// Fails every write.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn errors_of_the_inner_writer_come_through() {
        let mut w = PieceWriter::new(Broken);
        let err = w.write_all(&vec![0u8; PIECE + 1]).expect_err("must fail");
        assert_eq!(err.to_string(), "disk full");
        let mut w = PieceWriter::new(Broken);
        w.write_all(&[1, 2, 3]).expect("only buffered");
        assert!(w.finish().is_err());
    }
}
