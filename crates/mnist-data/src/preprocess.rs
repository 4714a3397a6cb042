/// How pixels become features.
///
/// Every normalization is a fixed `f32` function of the `u8` pixel value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Normalization {
    /// The post's preprocessing: `x / 255 - 0.5`, in `[-0.5, 0.5]`, computed
    /// in `f32` exactly as numpy does for a `float32` array.
    #[default]
    Centered,
    /// `x / 255`, in `[0, 1]`.
    Unit,
}

impl Normalization {
    /// The feature value of one pixel.
    pub fn apply(self, pixel: u8) -> f32 {
        let x = f32::from(pixel) / 255.0;
        match self {
            Normalization::Centered => x - 0.5,
            Normalization::Unit => x,
        }
    }
}

/// Pixels to features: a normalization and an optional bias feature.
///
/// The post uses [`Normalization::Centered`] with a bias feature: 784 pixels
/// become 785 features, the last one always 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    normalization: Normalization,
    bias: bool,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self::new(Normalization::Centered, true)
    }
}

impl Preprocess {
    /// A preprocessing step; `bias` appends a constant 1 feature.
    pub fn new(normalization: Normalization, bias: bool) -> Self {
        Self {
            normalization,
            bias,
        }
    }

    /// The normalization.
    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    /// Whether a bias feature is appended.
    pub fn bias(&self) -> bool {
        self.bias
    }

    /// Features for an image of `pixels` pixels.
    pub fn features(&self, pixels: usize) -> usize {
        pixels + usize::from(self.bias)
    }

    /// Writes the features of one image into `out`, which must hold exactly
    /// [`features`](Self::features)`(pixels.len())` values.
    ///
    /// # Panics
    /// When `out` has the wrong length: a programming error, not a data one.
    pub fn apply_into(&self, pixels: &[u8], out: &mut [f32]) {
        assert_eq!(
            out.len(),
            self.features(pixels.len()),
            "feature buffer size"
        );
        let (body, bias) = out.split_at_mut(pixels.len());
        // The same f32 operations as `apply`, written per variant so the loop
        // vectorises.
        match self.normalization {
            Normalization::Centered => {
                for (o, &p) in body.iter_mut().zip(pixels) {
                    *o = f32::from(p) / 255.0 - 0.5;
                }
            }
            Normalization::Unit => {
                for (o, &p) in body.iter_mut().zip(pixels) {
                    *o = f32::from(p) / 255.0;
                }
            }
        }
        if let Some(b) = bias.first_mut() {
            *b = 1.0;
        }
    }
}
