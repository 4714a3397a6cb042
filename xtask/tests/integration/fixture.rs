//! What the tests share: the four MNIST file names and the result type.

pub const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

pub type TestResult = Result<(), Box<dyn std::error::Error>>;
