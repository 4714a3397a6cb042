//! mnist-model (being written).
