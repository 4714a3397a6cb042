//! Every file a command reads or writes, resolved to where it really is and
//! checked before any work starts.
//!
//! Paths are compared by their real location (symbolic links followed, `.`
//! and `..` resolved), so `./m.json`, `$PWD/m.json` and a link to `m.json`
//! are one file. An output that would land on an input, or on another
//! output, is refused naming both flags. Outputs follow one rule: the folder
//! an output goes into must exist; `mnist` creates only the output itself
//! (the file, or the `--checkpoint-dir` folder), never missing parents. An
//! output that is a symbolic link is written where the link points.

use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Result};

/// How many links are followed before a path is taken for a loop (Linux's
/// own limit).
const MAX_LINKS: usize = 40;

/// A path as given on the command line and where it really is.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The flag it came from, e.g. `--save`.
    pub flag: String,
    /// As typed, for messages.
    pub given: PathBuf,
    /// The real location, to read or write.
    pub real: PathBuf,
}

/// What a command reads and writes, checked against each other as they are
/// added.
#[derive(Debug, Default)]
pub struct Files {
    inputs: Vec<Resolved>,
    outputs: Vec<Resolved>,
}

impl Files {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file the command reads; `flag` names where it came from. A
    /// path that does not exist is kept as given: reading it will say so.
    pub fn input(&mut self, flag: &str, path: &Path) -> Result<PathBuf> {
        let real = real_location(path).unwrap_or_else(|_| path.to_path_buf());
        let entry = Resolved {
            flag: flag.to_string(),
            given: path.to_path_buf(),
            real,
        };
        if let Some(out) = self.outputs.iter().find(|o| o.real == entry.real) {
            bail!("{}", collision(out, &entry));
        }
        let real = entry.real.clone();
        self.inputs.push(entry);
        Ok(real)
    }

    /// Adds the image and label files of `parts` of the dataset in `dir`
    /// (given by `--data-dir` or found in the data home).
    pub fn dataset(&mut self, dir: &Path, parts: &[mnist_data::Part]) -> Result<()> {
        for part in parts {
            let (images, labels) = part.paths(dir);
            self.input("--data-dir", &images)?;
            self.input("--data-dir", &labels)?;
        }
        Ok(())
    }

    /// Adds a file the command writes: checks that it names a file (not a
    /// folder), that its folder exists and can be written, and that it is
    /// neither an input nor another output. Returns where to write it.
    pub fn output_file(&mut self, flag: &str, path: &Path) -> Result<PathBuf> {
        let real = self.output(flag, path)?;
        if real.is_dir() {
            bail!("{flag} {}: is a directory", path.display());
        }
        Ok(real)
    }

    /// Adds a folder the command writes `file` into (a checkpoint folder):
    /// it exists or its parent does, it can be written, and neither it nor
    /// `file` inside it is an input or another output. Returns where the
    /// folder really is; it is not created here.
    pub fn output_dir(&mut self, flag: &str, path: &Path, file: &str) -> Result<PathBuf> {
        let real = self.output(flag, path)?;
        if real.exists() && !real.is_dir() {
            bail!("{flag} {}: not a directory", path.display());
        }
        let inside = Resolved {
            flag: flag.to_string(),
            given: path.join(file),
            real: real.join(file),
        };
        self.check_output(&inside)?;
        self.outputs.push(inside);
        Ok(real)
    }

    fn output(&mut self, flag: &str, path: &Path) -> Result<PathBuf> {
        if ends_in_separator(path) {
            bail!(
                "{flag} {}: ends in a slash, so it names a folder; give a file name",
                path.display()
            );
        }
        let real = real_location(path)
            .map_err(|e| anyhow::anyhow!("{flag} {}: {}", path.display(), bare(&e)))?;
        let entry = Resolved {
            flag: flag.to_string(),
            given: path.to_path_buf(),
            real: real.clone(),
        };
        self.check_output(&entry)?;
        let Some(dir) = real.parent() else {
            bail!("{flag} {}: not a file name", path.display());
        };
        if !dir.is_dir() {
            let shown = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => dir,
            };
            bail!(
                "{flag} {}: directory {} does not exist",
                path.display(),
                shown.display()
            );
        }
        check_writable_dir(flag, path, dir)?;
        self.outputs.push(entry);
        Ok(real)
    }

    fn check_output(&self, entry: &Resolved) -> Result<()> {
        if let Some(other) = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .find(|o| o.real == entry.real)
        {
            bail!("{}", collision(other, entry));
        }
        Ok(())
    }
}

/// The message for `later` landing where `earlier` is.
fn collision(earlier: &Resolved, later: &Resolved) -> String {
    let same_words = earlier.given == later.given;
    let names = if same_words {
        format!("{}", later.given.display())
    } else {
        format!(
            "{} and {} (both {})",
            earlier.given.display(),
            later.given.display(),
            later.real.display()
        )
    };
    if earlier.flag == later.flag {
        format!("{} names the same file twice: {names}", later.flag)
    } else {
        format!(
            "{} and {} both name {names}: give them different files",
            earlier.flag, later.flag
        )
    }
}

/// Whether the path as typed ends in `/` (or `\` on Windows): a folder.
fn ends_in_separator(path: &Path) -> bool {
    path.as_os_str()
        .to_string_lossy()
        .chars()
        .last()
        .is_some_and(std::path::is_separator)
}

/// The real location of `path`: links followed, `.` and `..` resolved.
/// What does not exist yet (an output not yet written, a folder a run will
/// make, a link to either) is placed where it would be.
///
/// # Errors
///
/// A component that cannot be examined (e.g. a file used as a folder), or
/// links that loop.
pub fn real_location(path: &Path) -> io::Result<PathBuf> {
    resolve(path, 0)
}

fn resolve(path: &Path, links: usize) -> io::Result<PathBuf> {
    if links > MAX_LINKS {
        return Err(io::Error::other(format!(
            "more than {MAX_LINKS} symbolic links in a row"
        )));
    }
    // `real` has no links and no `.` or `..`; `missing` follows it and does
    // not exist, so it holds no links either.
    let mut real = std::env::current_dir()?;
    let mut missing: Vec<&OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => real.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                if missing.pop().is_none() {
                    real.pop();
                }
            }
            Component::Normal(name) if !missing.is_empty() => missing.push(name),
            Component::Normal(name) => {
                let next = real.join(name);
                match std::fs::symlink_metadata(&next) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        real = resolve(&real.join(std::fs::read_link(&next)?), links + 1)?;
                    }
                    Ok(_) => real = next,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(name),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    real.extend(missing);
    Ok(real)
}

/// Checks that files can be created in `dir` (the real folder of `path`),
/// by creating and removing an empty one. (`tempfile` would serve, but its
/// errors carry the probe's name, which means nothing to the user.)
fn check_writable_dir(flag: &str, path: &Path, dir: &Path) -> Result<()> {
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let probe = dir.join(format!(
        ".mnist-check-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            // Best effort: an empty probe left behind harms nothing.
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => bail!(
            "{flag} {}: cannot write in {}: {}",
            path.display(),
            dir.display(),
            bare(&e)
        ),
    }
}

/// The operating system's message alone, without a path wrapped around it.
fn bare(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code).to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_file_resolve_alike() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let base = dir.path().canonicalize()?;
        std::fs::create_dir(base.join("sub"))?;
        let plain = real_location(&base.join("m.json"))?;
        assert_eq!(plain, base.join("m.json"));
        assert_eq!(real_location(&base.join("sub/../m.json"))?, plain);
        assert_eq!(real_location(&base.join("./sub/./../m.json"))?, plain);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("m.json", base.join("link.json"))?;
            std::os::unix::fs::symlink(&base, base.join("sub/up"))?;
            assert_eq!(real_location(&base.join("link.json"))?, plain);
            assert_eq!(real_location(&base.join("sub/up/m.json"))?, plain);
        }
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_loop_of_links_is_an_error_not_a_hang() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::os::unix::fs::symlink("b", dir.path().join("a"))?;
        std::os::unix::fs::symlink("a", dir.path().join("b"))?;
        let err = real_location(&dir.path().join("a")).err();
        assert!(err.is_some_and(|e| e.to_string().contains("symbolic links")));
        Ok(())
    }

    #[test]
    fn outputs_collide_with_inputs_and_each_other() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let base = dir.path();
        std::fs::write(base.join("in.idx"), b"x")?;
        let mut files = Files::new();
        files.input("--data-dir", &base.join("in.idx"))?;
        let err = files
            .output_file("--save", &base.join("./in.idx"))
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("--data-dir and --save both name")),
            "{err:?}"
        );
        files.output_file("--save", &base.join("m.json"))?;
        let err = files
            .output_dir("--checkpoint-dir", &base.join("m.json"), "checkpoint.json")
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("--save and --checkpoint-dir both name")),
            "{err:?}"
        );
        files.output_dir("--checkpoint-dir", &base.join("ck"), "checkpoint.json")?;
        let err = files
            .output_file("--report", &base.join("ck/checkpoint.json"))
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("--checkpoint-dir and --report both name")),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn a_trailing_slash_or_a_missing_folder_is_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut files = Files::new();
        let slash = format!("{}/x.json/", dir.path().display());
        let err = files.output_file("--save", Path::new(&slash)).err();
        assert!(err.is_some_and(|e| e.to_string().contains("ends in a slash")));
        let err = files
            .output_file("--report", &dir.path().join("nope/r.json"))
            .err();
        assert!(err.is_some_and(|e| e.to_string().contains("does not exist")));
        Ok(())
    }
}
