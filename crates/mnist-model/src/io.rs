//! Model files: JSON with a format name, a version and the weights.
//!
//! ```json
//! {"format":"mnist-model","version":1,"activation":"sigmoid","features":785,"classes":10,
//! "weights":[[...10 floats...], ...785 rows...]}
//! ```
//!
//! Weights are row-major by feature. Floats are written in their shortest
//! form that reads back to the same f32, so a save and a load give
//! bit-identical weights.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::Array2;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::head::Head;
use crate::linear::LinearModel;

/// The `"format"` field of a model file.
pub const MODEL_FORMAT: &str = "mnist-model";

/// The `"version"` field this crate writes and reads.
pub const MODEL_VERSION: u64 = 1;

impl LinearModel {
    /// The model as a JSON document:
    ///
    /// ```json
    /// {"format":"mnist-model","version":1,"activation":"sigmoid","features":785,"classes":10,
    /// "weights":[[...10 floats...], ...785 rows...]}
    /// ```
    ///
    /// Weights are row-major by feature, one row a line, each float in the
    /// shortest form that reads back to the same f32.
    ///
    /// # Errors
    ///
    /// [`Error::NonFiniteWeight`] if a weight is NaN or infinite (possible
    /// only after [`Error::Diverged`]); JSON cannot represent it.
    pub fn to_json_string(&self) -> Result<String> {
        let weights = self.weights();
        if let Some(((feature, class), &value)) =
            weights.indexed_iter().find(|(_, v)| !v.is_finite())
        {
            return Err(Error::NonFiniteWeight {
                feature,
                class,
                value,
            });
        }
        let mut out = format!(
            "{{\"format\":{},\"version\":{},\"activation\":{},\"features\":{},\"classes\":{},\"weights\":[",
            Value::from(MODEL_FORMAT),
            MODEL_VERSION,
            Value::from(self.head().name()),
            self.features(),
            self.classes(),
        );
        for (i, row) in weights.rows().into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('\n');
            out.push('[');
            for (j, &w) in row.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                // `Value::from(f32)` would widen to f64 and print 17 digits;
                // serde_json's f32 formatting prints the shortest round trip.
                match serde_json::to_string(&w) {
                    Ok(s) => out.push_str(&s),
                    Err(e) => {
                        return Err(Error::ModelJson {
                            reason: e.to_string(),
                        })
                    }
                }
            }
            out.push(']');
        }
        out.push_str("]}\n");
        Ok(out)
    }

    /// A model from a JSON document written by [`to_json_string`](Self::to_json_string).
    ///
    /// # Errors
    ///
    /// [`Error::ModelJson`] saying what is wrong: not JSON, wrong format name,
    /// version or activation, inconsistent shape, or a weight that is not a
    /// finite f32.
    pub fn from_json_str(text: &str) -> Result<Self> {
        parse(text).map_err(|reason| Error::ModelJson { reason })
    }

    /// Writes the model to `path`, atomically: the JSON goes to a temporary
    /// file in the same directory, which is flushed to disk and then renamed
    /// over `path`, so `path` never holds a half-written model.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming `path` if the file cannot be written, and
    /// [`Error::NonFiniteWeight`] as for [`to_json_string`](Self::to_json_string).
    ///
    /// # Examples
    ///
    /// ```
    /// use mnist_model::{Init, LinearModel};
    /// use rand::SeedableRng;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("model.json");
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    /// let model = LinearModel::new(785, 10, Init::default(), &mut rng)?;
    /// model.save(&path)?;
    /// assert_eq!(LinearModel::load(&path)?, model);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = self.to_json_string()?;
        write_atomically(path, text.as_bytes()).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })
    }

    /// Reads a model written by [`save`](Self::save).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `path` cannot be read, and [`Error::ModelFile`] naming
    /// `path` and what is wrong with its contents, e.g.
    /// `model file data/m.json: expected format "mnist-model", found "foo"`.
    pub fn load(path: &Path) -> Result<Self> {
        let io_error = |error| Error::Io {
            path: path.to_path_buf(),
            error,
        };
        let bytes = fs::read(path).map_err(io_error)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!("not UTF-8 text: {e}"),
        })?;
        parse(text).map_err(|reason| Error::ModelFile {
            path: path.to_path_buf(),
            reason,
        })
    }
}

/// Writes `bytes` to a fresh sibling of `path`, syncs it, and renames it
/// over `path`; the temporary file is removed on failure.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn field<'a>(
    doc: &'a serde_json::Map<String, Value>,
    name: &str,
) -> std::result::Result<&'a Value, String> {
    doc.get(name)
        .ok_or_else(|| format!("missing field \"{name}\""))
}

fn positive(
    doc: &serde_json::Map<String, Value>,
    name: &str,
) -> std::result::Result<usize, String> {
    let v = field(doc, name)?;
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("expected \"{name}\" to be a positive integer, found {v}"))
}

fn parse(text: &str) -> std::result::Result<LinearModel, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(doc) = doc else {
        return Err("expected a JSON object".into());
    };
    let format = field(&doc, "format")?;
    if format.as_str() != Some(MODEL_FORMAT) {
        return Err(format!(
            "expected format \"{MODEL_FORMAT}\", found {format}"
        ));
    }
    let version = field(&doc, "version")?;
    if version.as_u64() != Some(MODEL_VERSION) {
        return Err(format!("expected version {MODEL_VERSION}, found {version}"));
    }
    let activation = field(&doc, "activation")?;
    let Some(head) = activation.as_str().and_then(Head::from_name) else {
        return Err(format!(
            "expected activation \"{}\" or \"{}\", found {activation}",
            Head::Sigmoid.name(),
            Head::Softmax.name()
        ));
    };
    let features = positive(&doc, "features")?;
    let classes = positive(&doc, "classes")?;
    let Some(rows) = field(&doc, "weights")?.as_array() else {
        return Err("expected \"weights\" to be an array of rows".into());
    };
    if rows.len() != features {
        return Err(format!(
            "expected {features} weight rows (features), found {}",
            rows.len()
        ));
    }
    // Filled value by value as the rows are checked, so the memory taken is
    // bounded by the file's size, not by the header's claims.
    let mut values: Vec<f32> = Vec::new();
    for (f, row) in rows.iter().enumerate() {
        let Some(row) = row.as_array() else {
            return Err(format!("weight row {f}: expected an array, found {row}"));
        };
        if row.len() != classes {
            return Err(format!(
                "weight row {f}: expected {classes} values (classes), found {}",
                row.len()
            ));
        }
        for (c, v) in row.iter().enumerate() {
            let Some(x) = v.as_f64() else {
                return Err(format!(
                    "weight row {f}, column {c}: expected a number, found {v}"
                ));
            };
            let w = x as f32;
            if !w.is_finite() {
                return Err(format!(
                    "weight row {f}, column {c}: {v} is not a finite f32"
                ));
            }
            values.push(w);
        }
    }
    let weights = Array2::from_shape_vec((features, classes), values)
        .map_err(|e| format!("weights do not form a {features} x {classes} matrix: {e}"))?;
    LinearModel::from_weights(weights.view())
        .map(|m| m.with_head(head))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Init;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn model() -> LinearModel {
        let mut rng = ChaCha8Rng::seed_from_u64(30);
        LinearModel::new(785, 10, Init::default(), &mut rng).expect("valid")
    }

    fn bits(m: &LinearModel) -> Vec<u32> {
        m.weights().iter().map(|w| w.to_bits()).collect()
    }

    #[test]
    fn save_then_load_gives_identical_bits() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.json");
        let m = model();
        m.save(&path).expect("writable");
        let back = LinearModel::load(&path).expect("valid file");
        assert_eq!(bits(&back), bits(&m));
        assert_eq!((back.features(), back.classes()), (785, 10));
        // Overwriting leaves no temporary files behind.
        m.save(&path).expect("writable");
        let names: Vec<_> = fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn extreme_values_round_trip() {
        let values = [
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            1e-45,
            -0.0,
            0.1,
            1.0 / 3.0,
            16_777_217.0,
            std::f32::consts::PI,
        ];
        let w = Array2::from_shape_vec((3, 3), values.to_vec()).expect("shape");
        let m = LinearModel::from_weights(w.view()).expect("finite");
        let back = LinearModel::from_json_str(&m.to_json_string().expect("finite")).expect("valid");
        assert_eq!(bits(&back), bits(&m));
    }

    #[test]
    fn writes_the_documented_layout() {
        let w = ndarray::array![[1.5f32, -2.0], [0.25, 0.0], [3.0, 4.0]];
        let m = LinearModel::from_weights(w.view()).expect("finite");
        let text = m.to_json_string().expect("finite");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "format": "mnist-model", "version": 1, "activation": "sigmoid",
                "features": 3, "classes": 2,
                "weights": [[1.5, -2.0], [0.25, 0.0], [3.0, 4.0]]
            })
        );
    }

    fn reason(text: &str) -> String {
        match LinearModel::from_json_str(text) {
            Err(Error::ModelJson { reason }) => reason,
            other => panic!("expected ModelJson, got {other:?}"),
        }
    }

    const GOOD: &str = r#"{"format":"mnist-model","version":1,"activation":"sigmoid","features":2,"classes":2,"weights":[[1,2],[3,4]]}"#;

    #[test]
    fn rejects_each_kind_of_bad_document() {
        assert!(LinearModel::from_json_str(GOOD).is_ok());
        assert!(reason("hello").starts_with("not valid JSON"));
        assert!(reason(&GOOD[..GOOD.len() / 2]).starts_with("not valid JSON: EOF while parsing"));
        assert_eq!(reason("[1]"), "expected a JSON object");
        assert_eq!(
            reason(&GOOD.replace("\"mnist-model\"", "\"foo\"")),
            "expected format \"mnist-model\", found \"foo\""
        );
        assert_eq!(reason(r#"{"version":1}"#), "missing field \"format\"");
        assert_eq!(
            reason(&GOOD.replace("\"version\":1", "\"version\":2")),
            "expected version 1, found 2"
        );
        assert_eq!(
            reason(&GOOD.replace("sigmoid", "tanh")),
            "expected activation \"sigmoid\" or \"softmax\", found \"tanh\""
        );
        let softmax = LinearModel::from_json_str(&GOOD.replace("sigmoid", "softmax"));
        assert_eq!(softmax.ok().map(|m| m.head()), Some(Head::Softmax));
        assert_eq!(
            reason(&GOOD.replace("\"features\":2", "\"features\":3")),
            "expected 3 weight rows (features), found 2"
        );
        assert_eq!(
            reason(&GOOD.replace("\"features\":2", "\"features\":0")),
            "expected \"features\" to be a positive integer, found 0"
        );
        assert_eq!(
            reason(&GOOD.replace("[3,4]", "[3]")),
            "weight row 1: expected 2 values (classes), found 1"
        );
        assert_eq!(
            reason(&GOOD.replace("[3,4]", "[3,null]")),
            "weight row 1, column 1: expected a number, found null"
        );
        assert_eq!(
            reason(&GOOD.replace("[3,4]", "[3,1e39]")),
            "weight row 1, column 1: 1e+39 is not a finite f32"
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.json");
        fs::write(&path, GOOD.replace("\"mnist-model\"", "\"foo\"")).expect("writable");
        let e = LinearModel::load(&path).expect_err("wrong format");
        assert_eq!(
            e.to_string(),
            format!(
                "model file {}: expected format \"mnist-model\", found \"foo\"",
                path.display()
            )
        );
        let full = model().to_json_string().expect("finite");
        fs::write(&path, &full[..full.len() - 100]).expect("writable");
        assert!(matches!(
            LinearModel::load(&path),
            Err(Error::ModelFile { reason, .. }) if reason.starts_with("not valid JSON")
        ));
        fs::write(&path, [0xff, 0xfe]).expect("writable");
        assert!(matches!(
            LinearModel::load(&path),
            Err(Error::ModelFile { .. })
        ));
        let missing = dir.path().join("absent.json");
        assert!(
            matches!(LinearModel::load(&missing), Err(Error::Io { path, .. }) if path == missing)
        );
    }

    #[test]
    fn refuses_to_write_non_finite_weights() {
        let mut m = model();
        m.packed_mut()[0] = f32::NAN;
        assert!(matches!(
            m.to_json_string(),
            Err(Error::NonFiniteWeight {
                feature: 0,
                class: 0,
                ..
            })
        ));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.json");
        assert!(m.save(&path).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn save_into_a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("no/such/dir/m.json");
        assert!(matches!(model().save(&path), Err(Error::Io { .. })));
    }
}
