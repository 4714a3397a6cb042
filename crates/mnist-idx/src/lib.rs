//! mnist-idx (being written).
