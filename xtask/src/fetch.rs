//! `fetch-data`: fetch a dataset into `data/` at the workspace root, with
//! the `mnist-fetch` crate, rendering its progress on stderr.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of the `xtask` crate).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// `data/` at the workspace root, whatever the current directory.
pub fn default_out_dir() -> PathBuf {
    workspace_root().join("data")
}
