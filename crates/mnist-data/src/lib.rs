//! mnist-data (being written).
