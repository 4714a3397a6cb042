//! `ci`: the checks a change must pass, in the order that fails fastest.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

use mnist_fetch::DatasetSpec;

use crate::cross;
use crate::fetch::{default_out_dir, workspace_root};
use crate::progress::Progress;

/// What `cargo xtask ci` runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Skip fetching MNIST (the tests on the real data then fail, saying
    /// how to fetch it, unless it is already there).
    pub no_fetch: bool,
    /// Skip the cross-check on aarch64 even where its tools are installed.
    pub no_cross: bool,
    /// Extra arguments for `cargo test --workspace`.
    pub test_args: Vec<String>,
}

/// Runs `cargo fmt --check`, `cargo clippy -D warnings`, `cargo doc` with
/// warnings denied, fetches MNIST into `data/mnist/`, runs
/// `cargo test --workspace` with the tests on the real data included (they
/// are `#[ignore]`d otherwise), packages every publishable crate and builds
/// each from its packaged files, then, where its tools are installed, runs
/// the [`cross`] check on aarch64 under qemu, stopping at the first failure.
///
/// # Errors
///
/// The first step that fails, named.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let root = workspace_root();
    // Cargo sets `CARGO` for the programs it runs; fall back to the PATH.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));

    step("cargo fmt --all -- --check");
    cargo_step(&cargo, &root, &["fmt", "--all", "--", "--check"])?;

    step("cargo clippy --workspace --all-targets -- -D warnings");
    cargo_step(
        &cargo,
        &root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;

    step("cargo doc --workspace --no-deps (warnings denied)");
    cargo_step_with(
        &cargo,
        &root,
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;

    if options.no_fetch {
        step("fetch-data (skipped: --no-fetch)");
    } else {
        step("fetch-data --dataset mnist");
        let spec = DatasetSpec::mnist();
        let fetch_options = mnist_fetch::Options::from_env(&spec, default_out_dir(), &[])?;
        mnist_fetch::fetch(&spec, &fetch_options, &Progress::Auto.fetch_renderer())
            .context("step `fetch-data` failed")?;
    }

    let test = test_command(&options.test_args);
    let test: Vec<&str> = test.iter().map(String::as_str).collect();
    step(&format!("cargo {}", test.join(" ")));
    cargo_step(&cargo, &root, &test)?;

    // What crates.io would get: each crate built from its packaged files
    // alone, the workspace's crates it depends on taken from the packages
    // made here. `cargo package` does not skip `publish = false` crates by
    // itself. Uncommitted changes are packaged too, so that the check can
    // run before a commit; `--offline` keeps it to the registry cache that
    // the steps above filled.
    let package = [
        "package",
        "--workspace",
        "--exclude",
        "xtask",
        "--exclude",
        "mnist-e2e",
        "--allow-dirty",
        "--offline",
    ];
    step(&format!("cargo {}", package.join(" ")));
    forget_unpacked_packages(&root);
    cargo_step(&cargo, &root, &package)?;

    // The same bits on 64-bit ARM, where the tools are installed.
    match cross::tools() {
        Ok(tools) if !options.no_cross => {
            step("cross-check (aarch64 under qemu)");
            cross::run(&cross::Options::default(), &tools).context("step `cross-check` failed")?;
        }
        Ok(_) => step("cross-check (skipped: --no-cross)"),
        Err(why) => step(&format!("cross-check (skipped: {why:#})")),
    }

    step("ci: all steps passed");
    Ok(())
}

/// `cargo test --workspace` with `extra`, and `--include-ignored` for the
/// test binaries (after the `--` in `extra`, or after one added).
fn test_command(extra: &[String]) -> Vec<String> {
    let mut args = vec!["test".to_owned(), "--workspace".to_owned()];
    args.extend(extra.iter().cloned());
    if !extra.iter().any(|a| a == "--") {
        args.push("--".to_owned());
    }
    args.push("--include-ignored".to_owned());
    args
}

/// Removes the copies that an earlier `cargo package` unpacked of this
/// workspace's own crates under `$CARGO_HOME/registry/src`. Cargo unpacks
/// a package of its local overlay once per name and version, and reuses
/// that copy on the next run: with the version unchanged but the sources
/// changed, a crate would be built against its dependencies' old sources.
/// Best effort: a copy that cannot be removed shows up as a build error.
fn forget_unpacked_packages(root: &Path) {
    let Some(home) = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
    else {
        return;
    };
    let Ok(crates) = std::fs::read_dir(root.join("crates")) else {
        return;
    };
    let ours: Vec<String> = crates
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .map(|name| format!("{name}-"))
        .collect();
    let Ok(sources) = std::fs::read_dir(home.join("registry/src")) else {
        return;
    };
    for source in sources.filter_map(Result::ok) {
        let Ok(unpacked) = std::fs::read_dir(source.path()) else {
            continue;
        };
        for entry in unpacked.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_ours = ours.iter().any(|prefix| {
                name.strip_prefix(prefix.as_str())
                    .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
            });
            if is_ours {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn step(title: &str) {
    eprintln!("==> {title}");
}

fn cargo_step(cargo: &OsString, root: &Path, args: &[&str]) -> anyhow::Result<()> {
    cargo_step_with(cargo, root, args, &[])
}

fn cargo_step_with(
    cargo: &OsString,
    root: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<()> {
    let shown = format!("cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if status.success() {
        Ok(())
    } else {
        anyhow::bail!("step `{shown}` failed ({status})")
    }
}

#[cfg(test)]
mod tests {
    use super::test_command;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_test_step_includes_the_ignored_tests_after_one_separator() {
        assert_eq!(
            test_command(&[]),
            strings(&["test", "--workspace", "--", "--include-ignored"])
        );
        assert_eq!(
            test_command(&strings(&["--no-fail-fast"])),
            strings(&[
                "test",
                "--workspace",
                "--no-fail-fast",
                "--",
                "--include-ignored"
            ])
        );
        assert_eq!(
            test_command(&strings(&["--release", "--", "--nocapture"])),
            strings(&[
                "test",
                "--workspace",
                "--release",
                "--",
                "--nocapture",
                "--include-ignored"
            ])
        );
    }
}
