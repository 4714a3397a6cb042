//! Arbitrary bytes through the IDX parser and every view of what it accepts.
//!
//! The crate promises that no input makes it panic, and that an accepted
//! header describes the bytes exactly; both are checked here.
#![no_main]
// `is_empty()` is checked against `len() == 0`, not replaced by it.
#![allow(clippy::len_zero)]

use libfuzzer_sys::fuzz_target;
use mnist_idx::{DataType, Element, Header, IdxFile, Images, Labels};

/// Decodes every element as `T` and checks the count against the header;
/// every other type must be refused.
fn check_values<T: Element + PartialEq + std::fmt::Debug>(file: &IdxFile) {
    let header = file.header();
    match file.values::<T>() {
        Ok(values) => {
            assert_eq!(header.dtype(), T::DTYPE);
            assert_eq!(values.len(), header.elements());
            assert_eq!(values.count(), header.elements());
            let all = file.to_vec::<T>().expect("type checked above");
            assert_eq!(all.len(), header.elements());
        }
        Err(_) => {
            assert_ne!(header.dtype(), T::DTYPE);
            assert!(file.to_vec::<T>().is_err());
        }
    }
}

fn check_header(header: &Header, bytes: &[u8]) {
    let dims = header.dims();
    assert_eq!(header.rank(), dims.len());
    assert!(header.rank() >= 1);
    let elements = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    assert_eq!(elements, Some(header.elements()));
    assert_eq!(
        header.header_len() + header.data_len(),
        bytes.len(),
        "the header accounts for every byte"
    );
    assert_eq!(header.data_len(), header.elements() * header.dtype().size());
    assert_eq!(
        DataType::from_code(header.dtype().code()),
        Some(header.dtype())
    );
    assert!(!header.dtype().name().is_empty());
    assert_eq!(header.dtype().to_string(), header.dtype().name());

    // The header re-encodes to the bytes it was read from.
    let mut encoded = vec![0, 0, header.dtype().code(), header.rank() as u8];
    for &d in dims {
        encoded.extend_from_slice(&u32::try_from(d).expect("read from a u32").to_be_bytes());
    }
    assert_eq!(bytes.get(..header.header_len()), Some(&encoded[..]));
    assert_eq!(
        header.magic(),
        u32::from_be_bytes([0, 0, encoded[2], encoded[3]])
    );
}

fn check_images(images: &Images) {
    let pixels = images.pixels_per_image();
    assert_eq!(pixels, images.rows() * images.cols());
    assert_eq!(images.len() * pixels, images.pixels().len());
    assert_eq!(images.iter().len(), images.len());
    assert_eq!(images.is_empty(), images.len() == 0);
    assert_eq!(images.image(images.len()), None);
    assert_eq!(images.image(usize::MAX), None);
    if pixels == 0 {
        // Up to 2^32 - 1 empty images need no bytes; walking them all only
        // costs time, so the ends stand for the rest.
        if let Some(last) = images.len().checked_sub(1) {
            assert_eq!(images.image(0), Some(&[][..]));
            assert_eq!(images.image(last), Some(&[][..]));
        }
        return;
    }
    let mut seen = 0;
    for (i, image) in images.iter().enumerate() {
        assert_eq!(image.len(), pixels);
        assert_eq!(images.image(i), Some(image));
        assert_eq!(
            Some(image),
            images.pixels().get(i * pixels..(i + 1) * pixels)
        );
        seen += 1;
    }
    assert_eq!(seen, images.len());
}

fn check_labels(labels: &Labels) {
    assert_eq!(labels.len(), labels.as_slice().len());
    assert_eq!(labels.is_empty(), labels.len() == 0);
    for (i, &l) in labels.as_slice().iter().enumerate() {
        assert_eq!(labels.get(i), Some(l));
    }
    assert_eq!(labels.get(labels.len()), None);
}

fuzz_target!(|data: &[u8]| {
    let name = "fuzz.idx";
    let parsed = Header::parse(data, name.as_ref());
    let file = IdxFile::from_bytes(data.to_vec(), name);
    match (&parsed, &file) {
        (Ok(header), Ok(file)) => assert_eq!(header, file.header()),
        (Err(_), Err(e)) => assert!(!e.to_string().is_empty()),
        _ => panic!("Header::parse and IdxFile::from_bytes disagree"),
    }
    let images = Images::from_bytes(data.to_vec(), name);
    let labels = Labels::from_bytes(data.to_vec(), name);
    let Ok(file) = file else {
        assert!(images.is_err() && labels.is_err());
        return;
    };
    let header = file.header();
    check_header(header, data);
    assert_eq!(file.data().len(), header.data_len());
    assert!(!file.is_mapped());
    assert_eq!(file.path(), std::path::Path::new(name));
    let _ = format!("{file:?}");

    check_values::<u8>(&file);
    check_values::<i8>(&file);
    check_values::<i16>(&file);
    check_values::<i32>(&file);
    check_values::<f32>(&file);
    check_values::<f64>(&file);

    match images {
        Ok(images) => {
            assert_eq!(header.magic(), mnist_idx::IMAGES_MAGIC);
            assert_eq!(header.dims(), [images.len(), images.rows(), images.cols()]);
            check_images(&images);
        }
        Err(e) => {
            assert_ne!(header.magic(), mnist_idx::IMAGES_MAGIC);
            assert!(!e.to_string().is_empty());
        }
    }
    match labels {
        Ok(labels) => {
            assert_eq!(header.magic(), mnist_idx::LABELS_MAGIC);
            check_labels(&labels);
        }
        Err(e) => {
            assert_ne!(header.magic(), mnist_idx::LABELS_MAGIC);
            assert!(!e.to_string().is_empty());
        }
    }
});
