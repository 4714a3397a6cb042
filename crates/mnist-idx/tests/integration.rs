//! Every acceptance and rejection path of the IDX reader, on tiny fixtures:
//! files committed under `tests/data/` and bytes made in the tests.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use std::path::{Path, PathBuf};

use mnist_idx::{open_pair, DataType, Error, IdxFile, Images, Labels};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// An IDX file: prefix, type byte, rank, dimensions, payload.
fn idx(type_byte: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, type_byte, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

#[test]
fn opens_images_by_mapping_and_reads_every_pixel() {
    let images = Images::open(fixture("images-3x2x2.idx")).unwrap();
    assert!(images.file().is_mapped());
    assert_eq!((images.len(), images.rows(), images.cols()), (3, 2, 2));
    assert_eq!(images.image(0), Some(&[0, 64, 128, 255][..]));
    assert_eq!(images.image(2), Some(&[255, 255, 0, 0][..]));
    assert_eq!(images.image(3), None);
    assert_eq!(images.image(usize::MAX), None);
    assert_eq!(images.iter().len(), 3);
    assert_eq!(images.iter().nth(1), Some(&[1, 2, 3, 4][..]));
    assert_eq!(images.pixels().len(), 12);
}

#[test]
fn read_into_memory_gives_the_same_view() {
    let mapped = IdxFile::open(fixture("images-3x2x2.idx")).unwrap();
    let owned = IdxFile::read(fixture("images-3x2x2.idx")).unwrap();
    assert!(!owned.is_mapped());
    assert_eq!(mapped.data(), owned.data());
    assert_eq!(mapped.header(), owned.header());
}

#[test]
fn opens_a_matching_pair() {
    let (images, labels) = open_pair(fixture("images-3x2x2.idx"), fixture("labels-3.idx")).unwrap();
    assert_eq!(images.len(), labels.len());
    assert_eq!(labels.as_slice(), &[0, 7, 9]);
    assert_eq!(labels.get(1), Some(7));
    assert_eq!(labels.get(3), None);
}

#[test]
fn rejects_a_pair_whose_counts_differ() {
    let err = open_pair(fixture("images-3x2x2.idx"), fixture("labels-2.idx")).unwrap_err();
    assert!(matches!(
        err,
        Error::CountMismatch {
            n_images: 3,
            n_labels: 2,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(msg.contains("images-3x2x2.idx has 3 images"), "{msg}");
    assert!(msg.contains("labels-2.idx has 2 labels"), "{msg}");
}

#[test]
fn header_describes_the_mnist_magics() {
    let images = IdxFile::open(fixture("images-3x2x2.idx")).unwrap();
    assert_eq!(images.header().magic(), 2051);
    assert_eq!(images.header().dims(), &[3, 2, 2]);
    assert_eq!(images.header().dtype(), DataType::U8);
    let labels = IdxFile::open(fixture("labels-3.idx")).unwrap();
    assert_eq!(labels.header().magic(), 2049);
    assert_eq!(labels.header().rank(), 1);
}

#[test]
fn decodes_every_element_type_big_endian() {
    let f = IdxFile::open(fixture("f32-2x2.idx")).unwrap();
    assert_eq!(f.to_vec::<f32>().unwrap(), vec![1.5, -2.0, 0.0, 3.25]);

    let i8s = IdxFile::from_bytes(idx(0x09, &[2], &[0xff, 0x7f]), "i8").unwrap();
    assert_eq!(i8s.to_vec::<i8>().unwrap(), vec![-1, 127]);

    let i16s = IdxFile::from_bytes(idx(0x0B, &[2], &[0xff, 0xfe, 0x01, 0x00]), "i16").unwrap();
    assert_eq!(i16s.to_vec::<i16>().unwrap(), vec![-2, 256]);

    let i32s = IdxFile::from_bytes(idx(0x0C, &[1], &(-70000i32).to_be_bytes()), "i32").unwrap();
    assert_eq!(i32s.to_vec::<i32>().unwrap(), vec![-70000]);

    let f64s = IdxFile::from_bytes(idx(0x0E, &[1, 1], &0.1f64.to_be_bytes()), "f64").unwrap();
    assert_eq!(f64s.header().data_len(), 8);
    assert_eq!(f64s.to_vec::<f64>().unwrap(), vec![0.1]);
}

#[test]
fn rejects_reading_elements_as_the_wrong_type() {
    let f = IdxFile::open(fixture("f32-2x2.idx")).unwrap();
    let err = f.to_vec::<u8>().unwrap_err();
    assert!(matches!(
        err,
        Error::WrongType {
            expected: "u8",
            found: "f32",
            ..
        }
    ));
}

#[test]
fn accepts_empty_datasets_and_zero_sized_images() {
    let images = Images::from_bytes(idx(0x08, &[0, 28, 28], &[]), "empty").unwrap();
    assert!(images.is_empty());
    assert_eq!(images.image(0), None);
    let flat = Images::from_bytes(idx(0x08, &[4, 0, 28], &[]), "flat").unwrap();
    assert_eq!(flat.iter().len(), 4);
    assert_eq!(flat.image(3), Some(&[][..]));
}

/// Found by `cargo fuzz run idx`: two images of 0x3 pixels. Every image
/// starts at offset 0 of the empty data, so the index past the end used to
/// give `Some(&[])` instead of `None`.
#[test]
fn zero_sized_images_end_at_their_count() {
    let images = Images::open(fixture("images-2x0x3.idx")).unwrap();
    assert_eq!((images.len(), images.rows(), images.cols()), (2, 0, 3));
    assert_eq!(images.image(0), Some(&[][..]));
    assert_eq!(images.image(1), Some(&[][..]));
    assert_eq!(images.image(2), None);
    assert_eq!(images.image(usize::MAX), None);
    assert_eq!(images.iter().count(), 2);
}

#[test]
fn rejects_a_missing_file_naming_it() {
    let err = Images::open(fixture("no-such-file")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("no-such-file"));
}

#[test]
fn rejects_a_directory() {
    let err = Images::open(fixture("")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn rejects_truncated_data() {
    let err = Images::open(fixture("images-truncated.idx")).unwrap_err();
    assert!(matches!(
        err,
        Error::DataLength {
            expected: 12,
            found: 11,
            ..
        }
    ));
    assert!(err.to_string().contains("truncated data"), "{err}");
}

#[test]
fn rejects_trailing_bytes() {
    let err = Images::open(fixture("images-trailing.idx")).unwrap_err();
    assert!(matches!(
        err,
        Error::DataLength {
            expected: 12,
            found: 13,
            ..
        }
    ));
    assert!(err.to_string().contains("trailing bytes"), "{err}");
}

#[test]
fn rejects_the_wrong_magic_naming_both() {
    let err = Images::open(fixture("labels-as-images.idx")).unwrap_err();
    assert!(matches!(
        err,
        Error::WrongMagic {
            expected: 2051,
            found: 2049,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(msg.contains("labels-as-images.idx"), "{msg}");
    assert!(msg.contains("expected 2051"), "{msg}");

    let err = Labels::open(fixture("images-3x2x2.idx")).unwrap_err();
    assert!(matches!(
        err,
        Error::WrongMagic {
            expected: 2049,
            found: 2051,
            ..
        }
    ));
    // Right rank, wrong type.
    let err = Labels::from_bytes(idx(0x0C, &[1], &[0, 0, 0, 1]), "i32 labels").unwrap_err();
    assert!(matches!(err, Error::WrongMagic { found: 0x0C01, .. }));
}

#[test]
fn rejects_a_gzip_file_and_says_so() {
    let err = Images::open(fixture("images-3x2x2.idx.gz")).unwrap_err();
    assert!(matches!(err, Error::Gzip { .. }));
    assert!(err.to_string().contains("decompress"), "{err}");
}

#[test]
fn rejects_a_nonzero_prefix() {
    let err = IdxFile::from_bytes(vec![1, 0, 8, 1, 0, 0, 0, 0], "p").unwrap_err();
    assert!(matches!(err, Error::BadPrefix { found: 0x0100, .. }));
}

#[test]
fn rejects_an_unknown_type_byte() {
    for bad in [0x00, 0x07, 0x0A, 0x0F, 0xFF] {
        let err = IdxFile::from_bytes(idx(bad, &[1], &[0]), "t").unwrap_err();
        assert!(
            matches!(err, Error::UnknownType { found, .. } if found == bad),
            "{err}"
        );
    }
}

#[test]
fn rejects_rank_zero() {
    let err = IdxFile::from_bytes(vec![0, 0, 8, 0], "r").unwrap_err();
    assert!(matches!(err, Error::ZeroRank { .. }));
}

#[test]
fn rejects_every_truncated_header() {
    let full = idx(0x08, &[3, 2, 2], &[0; 12]);
    for cut in 0..16 {
        let err = IdxFile::from_bytes(full[..cut].to_vec(), "h").unwrap_err();
        let expected = if cut < 4 { 4 } else { 16 };
        assert!(
            matches!(err, Error::TruncatedHeader { expected: e, found, .. } if e == expected && found == cut),
            "cut {cut}: {err}"
        );
    }
}

#[test]
fn rejects_dimensions_whose_product_overflows() {
    // 2^32-1 to the fourth power of 8-byte elements exceeds any usize.
    let max = u32::MAX;
    let err = IdxFile::from_bytes(idx(0x0E, &[max, max, max, max], &[]), "o").unwrap_err();
    assert!(matches!(err, Error::Overflow { elem_size: 8, .. }), "{err}");
    // A product that fits but promises far more data than present.
    let err = IdxFile::from_bytes(idx(0x08, &[max, 2], &[]), "big").unwrap_err();
    assert!(matches!(err, Error::DataLength { found: 0, .. }), "{err}");
}

#[test]
fn never_panics_on_any_short_input() {
    // Every byte string up to length 3, and every single-byte change of a
    // valid file: each either parses or returns an error.
    let valid = idx(0x08, &[3, 2, 2], &[7; 12]);
    for pos in 0..valid.len() {
        for byte in [0u8, 1, 3, 8, 0x0E, 0x80, 0xFF] {
            let mut v = valid.clone();
            v[pos] = byte;
            let _ = Images::from_bytes(v.clone(), "m").map(|i| i.iter().count());
            let _ = Labels::from_bytes(v.clone(), "m").map(|l| l.len());
            let _ = IdxFile::from_bytes(v, "m").map(|f| f.to_vec::<f64>().map(|v| v.len()));
        }
    }
    for len in 0..4 {
        for byte in [0u8, 8, 0xFF] {
            assert!(IdxFile::from_bytes(vec![byte; len], "s").is_err());
        }
    }
}
