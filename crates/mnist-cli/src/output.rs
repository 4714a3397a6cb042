//! Writing files so that a crash never leaves half of one, and checking
//! before a long run that they can be written at all.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// The directory a file will be written into (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks that `path` can be written, by creating and removing a temporary
/// file beside it; `flag` names the option the path came from.
pub fn check_writable(flag: &str, path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    if !dir.is_dir() {
        anyhow::bail!(
            "{flag} {}: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        anyhow::bail!("{flag} {}: is a directory", path.display());
    }
    tempfile::Builder::new()
        .prefix(".mnist-check-")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "{flag} {}: cannot write in {}",
                path.display(),
                dir.display()
            )
        })?;
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory,
/// renamed into place once complete: readers see the old file or the new
/// one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".mnist-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| readable_by_all(tmp.as_file()))
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Gives the file the mode an ordinary new file gets (`rw-r--r--`): the
/// temporary file starts private.
#[cfg(unix)]
fn readable_by_all(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn readable_by_all(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}
