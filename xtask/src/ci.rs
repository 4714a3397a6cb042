//! `ci`: the checks a change must pass, in the order that fails fastest.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

use crate::cross;
use crate::dataset::DatasetSpec;
use crate::fetch::{self, workspace_root};

/// What `cargo xtask ci` runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Skip fetching MNIST (the tests that need it then skip or fail).
    pub no_fetch: bool,
    /// Skip the cross-check on aarch64 even where its tools are installed.
    pub no_cross: bool,
    /// Extra arguments for `cargo test --workspace`.
    pub test_args: Vec<String>,
}

/// Runs `cargo fmt --check`, `cargo clippy -D warnings`, `cargo doc` with
/// warnings denied, fetches MNIST into `data/mnist/`, runs
/// `cargo test --workspace` and, where its tools are installed, the
/// [`cross`] check on aarch64 under qemu, stopping at the first failure.
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
        let fetch_options = fetch::Options::defaults(&spec)?;
        fetch::fetch(&spec, &fetch_options).context("step `fetch-data` failed")?;
    }

    let mut test = vec!["test", "--workspace"];
    test.extend(options.test_args.iter().map(String::as_str));
    step(&format!("cargo {}", test.join(" ")));
    cargo_step(&cargo, &root, &test)?;

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
