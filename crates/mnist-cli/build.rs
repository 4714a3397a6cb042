//! Records the commit `mnist` is built from, for `mnist --version`, when
//! the sources are in a git checkout and git is installed; without them
//! (a packaged crate, say) the version just says the commit is unknown.

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let Some(commit) = git(dir, &["rev-parse", "--short", "HEAD"]) else {
        return;
    };
    println!("cargo:rustc-env=MNIST_GIT_COMMIT={commit}");
    // Build again when HEAD moves: a checkout changes HEAD, a commit the
    // branch it names.
    let mut watched = vec!["HEAD".to_owned()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    watched.push("packed-refs".to_owned());
    for name in watched {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            let path = dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
