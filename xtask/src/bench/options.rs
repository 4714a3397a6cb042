//! The flags of `cargo xtask bench` and their checks, made before anything
//! is built or run.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::fetch::workspace_root;

/// The four MNIST file names, decompressed.
pub const MNIST_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Default number of runs of each implementation.
pub const DEFAULT_RUNS: usize = 5;
/// Epochs of the post.
pub const DEFAULT_EPOCHS: usize = 10;
/// Most runs or epochs accepted.
pub const MAX_COUNT: usize = 1000;

/// Which network a bench trains: the post's model (the trainer's
/// defaults, against numpy and candle) or one of `mnist train --preset`'s
/// networks (against PyTorch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    /// The post's linear model with ten sigmoids.
    #[default]
    Post,
    /// Softmax regression, 785 x 10.
    Softmax,
    /// One hidden layer: 785 x 256 x 10.
    Mlp,
    /// Two 5x5 convolutions (16 and 32 filters), 128 hidden units, 10.
    Cnn,
}

impl Preset {
    /// Every preset, in `--help` order.
    pub const ALL: [Self; 4] = [Self::Post, Self::Softmax, Self::Mlp, Self::Cnn];

    /// The value of `--preset` that names it (and `mnist train --preset`'s).
    pub fn name(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Softmax => "softmax",
            Self::Mlp => "mlp",
            Self::Cnn => "cnn",
        }
    }

    /// The preset named `name`.
    ///
    /// # Errors
    ///
    /// [`UsageError`] naming `--preset` and the known names.
    pub fn parse(name: &str) -> Result<Self, UsageError> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                UsageError(format!(
                    "--preset {name}: unknown preset (expected post, softmax, mlp or cnn)"
                ))
            })
    }

    /// Its epochs when `--epochs` is not given: those of `mnist train
    /// --preset` (`Preset` in crates/mnist-train/src/config.rs).
    pub fn epochs(self) -> usize {
        match self {
            Self::Post => DEFAULT_EPOCHS,
            Self::Softmax => 60,
            Self::Mlp => 20,
            Self::Cnn => 15,
        }
    }

    /// The PyTorch peer's script in the `--compare` folder; `None` for the
    /// post, whose peers are numpy and candle.
    pub fn torch_script(self) -> Option<&'static str> {
        match self {
            Self::Post => None,
            Self::Softmax | Self::Mlp => Some("torch_presets.py"),
            Self::Cnn => Some("torch_cnn.py"),
        }
    }
}

/// What `cargo xtask bench` measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Runs of each implementation.
    pub runs: usize,
    /// Epochs per run (`cargo xtask bench` gives the preset's own when
    /// `--epochs` is not given: [`Preset::epochs`]).
    pub epochs: usize,
    /// The network to train.
    pub preset: Preset,
    /// Decompressed dataset for the Rust trainer.
    pub data_dir: PathBuf,
    /// Folder with the peers to compare with: `numpy_fast.py` and
    /// `candle-linear/` for the post, `torch_presets.py` and `torch_cnn.py`
    /// for the presets.
    pub compare: Option<PathBuf>,
    /// Folder with the four `.gz` files the peers read.
    pub gz_dir: Option<PathBuf>,
    /// Write the results here as JSON.
    pub json: Option<PathBuf>,
    /// Other builds' `mnist` binaries (at most [`MAX_BASELINES`]), run like
    /// ours and interleaved with it, to compare builds in the same phases of
    /// the machine.
    pub baselines: Vec<PathBuf>,
    /// Virtual environment with `torch` and `numpy` for the PyTorch peers;
    /// `None`: `target/torch-venv`, made if missing.
    pub torch_venv: Option<PathBuf>,
}

/// Most `--baseline` builds one bench runs.
pub const MAX_BASELINES: usize = 8;

impl Default for Options {
    fn default() -> Self {
        Self {
            runs: DEFAULT_RUNS,
            epochs: DEFAULT_EPOCHS,
            preset: Preset::Post,
            data_dir: workspace_root().join("data").join("mnist"),
            compare: None,
            gz_dir: default_gz_dir(
                std::env::var_os("MNIST_MIRROR").as_deref(),
                &workspace_root(),
            ),
            json: None,
            baselines: Vec::new(),
            torch_venv: None,
        }
    }
}

/// A flag with a value that cannot work; `cargo xtask` exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl Options {
    /// Checks every flag before anything is built or run.
    ///
    /// # Errors
    ///
    /// [`UsageError`] naming the flag: a count out of range, a dataset
    /// folder without its four files, a missing comparison folder, peer
    /// script or `.gz` folder, a `--torch-venv` without its Python or
    /// without `--compare`, `--baseline` with a preset, a JSON path in a
    /// folder that does not exist.
    pub fn check(&self) -> Result<(), UsageError> {
        let usage = |message: String| Err(UsageError(message));
        for (flag, value) in [("--runs", self.runs), ("--epochs", self.epochs)] {
            if !(1..=MAX_COUNT).contains(&value) {
                return usage(format!("{flag} {value}: expected 1 to {MAX_COUNT}"));
            }
        }
        if let Some(missing) = missing_file(&self.data_dir, &MNIST_FILES, "") {
            return usage(format!(
                "--data-dir {}: {missing} not found (run `cargo xtask fetch-data` or `cargo xtask synth`)",
                self.data_dir.display()
            ));
        }
        if let Some(dir) = &self.compare {
            if !dir.is_dir() {
                return usage(format!("--compare {}: not a directory", dir.display()));
            }
            if let Some(script) = self.preset.torch_script() {
                if !dir.join(script).is_file() {
                    return usage(format!(
                        "--compare {}: {script} not found (the PyTorch peer of --preset {})",
                        dir.display(),
                        self.preset.name()
                    ));
                }
            }
            let Some(gz) = &self.gz_dir else {
                return usage(
                    "--compare needs the .gz files: pass --gz-dir DIR or set MNIST_MIRROR".into(),
                );
            };
            if let Some(missing) = missing_file(gz, &MNIST_FILES, ".gz") {
                return usage(format!("--gz-dir {}: {missing} not found", gz.display()));
            }
        }
        if let Some(venv) = &self.torch_venv {
            if self.preset == Preset::Post {
                return usage(
                    "--torch-venv: only for --preset softmax, mlp or cnn (the post's peers are numpy and candle)"
                        .into(),
                );
            }
            if self.compare.is_none() {
                return usage(
                    "--torch-venv needs --compare DIR, the folder of the torch scripts".into(),
                );
            }
            let python = venv_python(venv);
            if !python.is_file() {
                return usage(format!(
                    "--torch-venv {}: {} not found (expected a virtual environment)",
                    venv.display(),
                    python.display()
                ));
            }
        }
        if self.preset != Preset::Post && !self.baselines.is_empty() {
            return usage(format!(
                "--baseline: only with --preset post, not --preset {}",
                self.preset.name()
            ));
        }
        if self.baselines.len() > MAX_BASELINES {
            return usage(format!(
                "--baseline: {} builds given, at most {MAX_BASELINES}",
                self.baselines.len()
            ));
        }
        for path in &self.baselines {
            if !path.is_file() {
                return usage(format!(
                    "--baseline {}: not a file (expected another build's `mnist` binary)",
                    path.display()
                ));
            }
        }
        if let Some(path) = &self.json {
            if path.is_dir() {
                return usage(format!("--json {}: is a directory", path.display()));
            }
            let parent = parent_dir(path);
            if !parent.is_dir() {
                return usage(format!(
                    "--json {}: folder {} does not exist",
                    path.display(),
                    parent.display()
                ));
            }
        }
        Ok(())
    }
}

/// The Python of the virtual environment `venv`.
pub fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

pub(super) fn missing_file(dir: &Path, names: &[&str], suffix: &str) -> Option<String> {
    names
        .iter()
        .map(|name| format!("{name}{suffix}"))
        .find(|name| !dir.join(name).is_file())
}

/// The `.gz` folder when `--gz-dir` is not given: `MNIST_MIRROR` if it is a
/// directory, else `../shared/mnist` next to the workspace if it exists.
pub fn default_gz_dir(mirror_env: Option<&OsStr>, root: &Path) -> Option<PathBuf> {
    if let Some(dir) = mirror_env.map(PathBuf::from) {
        if dir.is_dir() {
            return Some(dir);
        }
    }
    let shared = root.join("..").join("shared").join("mnist");
    shared.is_dir().then_some(shared)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn options_are_validated() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        for name in MNIST_FILES {
            fs::write(dir.path().join(name), b"")?;
        }
        let good = Options {
            data_dir: dir.path().into(),
            gz_dir: None,
            ..Options::default()
        };
        assert_eq!(good.check(), Ok(()));
        let bad = |o: Options| o.check().map_err(|e| e.0);
        let err = bad(Options {
            runs: 0,
            ..good.clone()
        });
        assert_eq!(err, Err("--runs 0: expected 1 to 1000".into()));
        assert!(bad(Options {
            epochs: 1001,
            ..good.clone()
        })
        .is_err());
        let err = bad(Options {
            data_dir: dir.path().join("nope"),
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.contains("train-images-idx3-ubyte not found")));
        let err = bad(Options {
            compare: Some(dir.path().into()),
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.contains("--gz-dir")));
        let err = bad(Options {
            compare: Some(dir.path().into()),
            gz_dir: Some(dir.path().into()),
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.contains(".gz not found")));
        let err = bad(Options {
            json: Some(dir.path().join("missing").join("r.json")),
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.contains("does not exist")));
        let baseline = dir.path().join(MNIST_FILES[0]);
        let err = bad(Options {
            baselines: vec![baseline.clone(), dir.path().join("no-such-mnist")],
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.starts_with("--baseline") && e.contains("not a file")));
        let err = bad(Options {
            baselines: vec![baseline.clone(); MAX_BASELINES + 1],
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.contains("at most 8")));
        assert_eq!(
            Options {
                baselines: vec![baseline; MAX_BASELINES],
                ..good.clone()
            }
            .check(),
            Ok(())
        );
        Ok(())
    }

    #[test]
    fn gz_dir_prefers_an_existing_mirror_directory() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("main");
        fs::create_dir_all(&root)?;
        assert_eq!(default_gz_dir(None, &root), None);
        let shared = root.join("..").join("shared").join("mnist");
        fs::create_dir_all(&shared)?;
        assert_eq!(default_gz_dir(None, &root), Some(shared.clone()));
        let url = OsStr::new("https://example.org/mnist/");
        assert_eq!(default_gz_dir(Some(url), &root), Some(shared));
        assert_eq!(
            default_gz_dir(Some(dir.path().as_os_str()), &root),
            Some(dir.path().to_path_buf())
        );
        Ok(())
    }

    #[test]
    fn presets_are_named_on_the_command_line() {
        for preset in Preset::ALL {
            assert_eq!(Preset::parse(preset.name()), Ok(preset));
        }
        assert_eq!(
            Preset::parse("resnet").map_err(|e| e.0),
            Err("--preset resnet: unknown preset (expected post, softmax, mlp or cnn)".into())
        );
        assert!(Preset::parse("CNN").is_err());
        assert_eq!(
            Preset::ALL.map(Preset::epochs),
            [DEFAULT_EPOCHS, 60, 20, 15]
        );
        assert_eq!(Preset::Post.torch_script(), None);
        assert_eq!(Preset::Cnn.torch_script(), Some("torch_cnn.py"));
    }

    #[test]
    fn preset_flags_are_validated() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (data, anchors, venv) = (
            dir.path().join("data"),
            dir.path().join("anchors"),
            dir.path().join("venv"),
        );
        for d in [&data, &anchors, &venv.join("bin")] {
            fs::create_dir_all(d)?;
        }
        for name in MNIST_FILES {
            fs::write(data.join(name), b"")?;
            fs::write(data.join(format!("{name}.gz")), b"")?;
        }
        fs::write(anchors.join("torch_presets.py"), b"")?;
        let good = Options {
            data_dir: data.clone(),
            gz_dir: Some(data.clone()),
            compare: Some(anchors.clone()),
            preset: Preset::Mlp,
            ..Options::default()
        };
        assert_eq!(good.check(), Ok(()));
        let bad = |o: Options| o.check().map_err(|e| e.0);
        let err = bad(Options {
            preset: Preset::Cnn,
            ..good.clone()
        });
        assert!(
            err.as_ref().is_err_and(|e| e.starts_with("--compare ")
                && e.ends_with("torch_cnn.py not found (the PyTorch peer of --preset cnn)")),
            "{err:?}"
        );
        // Without --compare no script is needed.
        assert_eq!(
            Options {
                preset: Preset::Cnn,
                compare: None,
                ..good.clone()
            }
            .check(),
            Ok(())
        );
        let err = bad(Options {
            torch_venv: Some(venv.clone()),
            ..good.clone()
        });
        assert!(err.is_err_and(|e| e.starts_with("--torch-venv ") && e.contains("not found")));
        fs::write(venv_python(&venv), b"")?;
        let with_venv = Options {
            torch_venv: Some(venv.clone()),
            ..good.clone()
        };
        assert_eq!(with_venv.check(), Ok(()));
        let err = bad(Options {
            compare: None,
            ..with_venv.clone()
        });
        assert!(err.is_err_and(|e| e.starts_with("--torch-venv needs --compare")));
        let err = bad(Options {
            preset: Preset::Post,
            ..with_venv.clone()
        });
        assert!(err.is_err_and(|e| e.starts_with("--torch-venv: only for --preset")));
        let err = bad(Options {
            baselines: vec![data.join(MNIST_FILES[0])],
            ..good.clone()
        });
        assert_eq!(
            err,
            Err("--baseline: only with --preset post, not --preset mlp".into())
        );
        Ok(())
    }
}
