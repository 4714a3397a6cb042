//! The datasets of MNIST's layout that this crate knows by sight.

use crate::Fingerprint;

/// A dataset recognised by its test set's [`Fingerprint`], with the names
/// of its classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownDataset {
    /// Its usual name, e.g. `mnist`.
    pub name: &'static str,
    /// The name of each class, by label.
    pub class_names: [&'static str; 10],
    /// The fingerprint of the official test set (`t10k-*`).
    pub test_fingerprint: &'static str,
}

/// MNIST's handwritten digits.
pub const MNIST: KnownDataset = KnownDataset {
    name: "mnist",
    class_names: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
    test_fingerprint: "10000x784:a716cc1fa2863569",
};

/// Zalando's Fashion-MNIST.
pub const FASHION_MNIST: KnownDataset = KnownDataset {
    name: "fashion-mnist",
    class_names: [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    test_fingerprint: "10000x784:ef46e2e9cbcbaaba",
};

/// Every dataset [`identify`] knows.
pub const KNOWN: [KnownDataset; 2] = [MNIST, FASHION_MNIST];

/// The known dataset whose test set has the fingerprint `test`, if any.
///
/// # Examples
///
/// ```
/// let fp = "10000x784:a716cc1fa2863569".parse()?;
/// assert_eq!(mnist_data::identify(&fp).map(|d| d.name), Some("mnist"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn identify(test: &Fingerprint) -> Option<&'static KnownDataset> {
    KNOWN
        .iter()
        .find(|known| known.test_fingerprint.parse().ok().as_ref() == Some(test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_fingerprint_is_well_formed_and_distinct() {
        let parsed: Vec<Fingerprint> = KNOWN
            .iter()
            .filter_map(|k| k.test_fingerprint.parse().ok())
            .collect();
        assert_eq!(parsed.len(), KNOWN.len());
        assert_ne!(parsed[0], parsed[1]);
        for (known, fp) in KNOWN.iter().zip(&parsed) {
            assert_eq!(identify(fp), Some(known));
        }
    }
}
