//! The output head of every model: how the last layer's outputs become
//! probabilities, and which loss the training minimises.

/// How a model turns its last layer's outputs (the logits) into
/// probabilities. The post's model has the sigmoid head; every other preset
/// the softmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Head {
    /// An independent sigmoid per class with the post's clipped binary
    /// cross-entropy, summed over the classes.
    #[default]
    Sigmoid,
    /// A softmax over the classes with cross-entropy.
    Softmax,
}

impl Head {
    /// The name used in model files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Head::Sigmoid => "sigmoid",
            Head::Softmax => "softmax",
        }
    }

    /// The head called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sigmoid" => Some(Head::Sigmoid),
            "softmax" => Some(Head::Softmax),
            _ => None,
        }
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
