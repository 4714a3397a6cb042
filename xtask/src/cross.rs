//! `cross-check`: the library crates' tests built for 64-bit ARM and run
//! under qemu, and one epoch of the post's training there, whose model file
//! must equal, byte for byte, the one the same epoch writes on this machine.
//!
//! It needs an aarch64 linker (`aarch64-linux-gnu-gcc`), `qemu-aarch64`
//! and a `rustc` with the aarch64 standard library: on Debian,
//! `dpkg --add-architecture arm64 && apt-get update && apt-get install
//! rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
//! libc6-dev-arm64-cross qemu-user`, or with rustup, `rustup target add
//! aarch64-unknown-linux-gnu` and the Debian linker and qemu. The binaries
//! are linked statically: dynamically linked ones can hang under qemu-user.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};

use crate::fetch::workspace_root;

/// The target checked.
pub const TARGET: &str = "aarch64-unknown-linux-gnu";
/// The linker for [`TARGET`].
pub const LINKER: &str = "aarch64-linux-gnu-gcc";
/// The emulator that runs [`TARGET`]'s binaries.
pub const QEMU: &str = "qemu-aarch64";
/// Debian's `rustc`, which `libstd-rust-web-dev:arm64` completes.
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
/// What installs the tools on Debian, for the messages.
pub const INSTALL_HINT: &str = "dpkg --add-architecture arm64 && apt-get update && apt-get install rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user";

/// What `cargo xtask cross-check` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The decompressed MNIST folder.
    pub data_dir: PathBuf,
    /// Cargo's target folder for the aarch64 build (kept apart from the
    /// host's, which another `rustc` may own).
    pub target_dir: PathBuf,
    /// Epochs of the post's training to compare.
    pub epochs: u32,
    /// Seed of that training.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        let root = workspace_root();
        Options {
            data_dir: root.join("data").join("mnist"),
            target_dir: root.join("target-arm"),
            epochs: 1,
            seed: 0,
        }
    }
}

/// The tools found: the `rustc` to build with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// A `rustc` whose sysroot has the aarch64 standard library.
    pub rustc: OsString,
}

/// Finds the tools, or says which are missing.
///
/// # Errors
///
/// A message naming every missing tool and how to install them.
pub fn tools() -> anyhow::Result<Tools> {
    let mut missing = Vec::new();
    for tool in [LINKER, QEMU] {
        let runs = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !runs {
            missing.push(tool.to_string());
        }
    }
    // The `rustc` cargo would use, then Debian's.
    let current = std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let rustc = [current, OsString::from(DEBIAN_RUSTC)]
        .into_iter()
        .find(has_target_std);
    if rustc.is_none() {
        missing.push(format!("a rustc with the {TARGET} standard library"));
    }
    match rustc {
        Some(rustc) if missing.is_empty() => Ok(Tools { rustc }),
        _ => bail!("missing {} (install: {INSTALL_HINT})", missing.join(", ")),
    }
}

/// Whether `rustc` has [`TARGET`]'s `libstd`.
fn has_target_std(rustc: &OsString) -> bool {
    let Ok(out) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
    else {
        return false;
    };
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    out.status.success()
        && std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libstd-") && name.ends_with(".rlib")
            })
        })
}

/// Runs the library crates' tests for [`TARGET`] under qemu, then `epochs`
/// epochs of the post's training, `--preset softmax` and narrow MLP and CNN
/// networks with `seed` on this machine and under qemu, and checks that
/// each pair of model files are the same bytes.
///
/// # Errors
///
/// A missing tool, a failed build or test, or model files that differ.
pub fn run(options: &Options, tools: &Tools) -> anyhow::Result<()> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let started = Instant::now();
    let env = target_env(options, tools);
    let cross = |args: &[&str]| -> anyhow::Result<()> {
        let shown = format!("cargo {} --target {TARGET}", args.join(" "));
        eprintln!("==> {shown}");
        let status = Command::new(&cargo)
            .args(args)
            .args(["--target", TARGET])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&root)
            .status()
            .with_context(|| format!("cannot run `{shown}`"))?;
        if !status.success() {
            bail!("`{shown}` failed ({status})");
        }
        Ok(())
    };
    // Unit and integration tests; not the doctests, which would need a
    // `rustdoc` of the same version as the `rustc` found.
    cross(&[
        "test",
        "--tests",
        "-p",
        "mnist-idx",
        "-p",
        "mnist-data",
        "-p",
        "mnist-model",
    ])?;
    cross(&["build", "-p", "mnist-cli"])?;

    eprintln!("==> cargo build -p mnist-cli (this machine)");
    let status = Command::new(&cargo)
        .args(["build", "-p", "mnist-cli"])
        .current_dir(&root)
        .status()
        .context("cannot run `cargo build -p mnist-cli`")?;
    if !status.success() {
        bail!("`cargo build -p mnist-cli` failed ({status})");
    }

    let out = options.target_dir.join("cross-check");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let host_bin = root.join("target").join("debug").join("mnist");
    let arm_bin = options.target_dir.join(TARGET).join("debug").join("mnist");
    // The post's model, and softmax regression with momentum and weight
    // decay: both heads and both optimisers of the fused kernels; an MLP
    // and a CNN, narrower than their presets (the same products, less
    // emulated work): the register-blocked products.
    for (sub, name, flags) in [
        ("post", "the post's training", &[][..]),
        ("softmax", "--preset softmax", &["--preset", "softmax"][..]),
        (
            "mlp",
            "--preset mlp --hidden 16",
            &["--preset", "mlp", "--hidden", "16"][..],
        ),
        (
            "cnn",
            "--preset cnn --conv 1,2 --hidden 8",
            &["--preset", "cnn", "--conv", "1,2", "--hidden", "8"][..],
        ),
    ] {
        let host = train(
            &[host_bin.as_os_str()],
            options,
            &out.join(sub).join("host"),
            flags,
        )?;
        let arm = train(
            &[std::ffi::OsStr::new(QEMU), arm_bin.as_os_str()],
            options,
            &out.join(sub).join("aarch64"),
            flags,
        )?;
        if arm.kernel != "neon" {
            bail!(
                "the aarch64 run took the {} kernel path, not neon",
                arm.kernel
            );
        }
        let what = format!(
            "{} epoch(s) of {name}, seed {}",
            options.epochs, options.seed
        );
        if host.model != arm.model {
            bail!(
                "{what}: the model file on aarch64 ({} kernel, {} bytes) differs from the one on this machine ({} kernel, {} bytes); both are in {}",
                arm.kernel,
                arm.model.len(),
                host.kernel,
                host.model.len(),
                out.join(sub).display()
            );
        }
        eprintln!(
            "cross-check: {what}: the same model file, {} bytes, on this machine ({}) and on aarch64 under qemu ({}); {:.0} s so far",
            host.model.len(),
            host.kernel,
            arm.kernel,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The environment of the aarch64 cargo commands.
fn target_env(options: &Options, tools: &Tools) -> Vec<(OsString, OsString)> {
    let var = |k: &str, v: &str| (OsString::from(k), OsString::from(v));
    vec![
        (OsString::from("RUSTC"), tools.rustc.clone()),
        (
            OsString::from("CARGO_TARGET_DIR"),
            options.target_dir.clone().into_os_string(),
        ),
        var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", LINKER),
        var(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        ),
        var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER", QEMU),
    ]
}

/// What one training run left.
struct Trained {
    model: Vec<u8>,
    kernel: String,
}

/// Runs `command` (a binary, or qemu and a binary) as `mnist train` with
/// `flags` and the options' epochs and seed, writing into `dir`.
fn train(
    command: &[&std::ffi::OsStr],
    options: &Options,
    dir: &Path,
    flags: &[&str],
) -> anyhow::Result<Trained> {
    let (program, before) = command.split_first().context("no command")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (model, report) = (dir.join("model.json"), dir.join("report.json"));
    let shown = command
        .iter()
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!(
        "==> {shown} train {} --epochs {} --seed {}",
        flags.join(" "),
        options.epochs,
        options.seed
    );
    let status = Command::new(program)
        .args(before)
        .arg("train")
        .args(flags)
        .arg("--data-dir")
        .arg(&options.data_dir)
        .args(["--epochs", &options.epochs.to_string()])
        .args(["--seed", &options.seed.to_string()])
        .arg("--quiet")
        .arg("--save")
        .arg(&model)
        .arg("--report")
        .arg(&report)
        // The path this CPU chooses, whatever the caller's environment.
        .env_remove("MNIST_KERNEL")
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        bail!("`{shown} train` failed ({status})");
    }
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let report: serde_json::Value = serde_json::from_slice(&read(&report)?)
        .with_context(|| format!("{}: not JSON", report.display()))?;
    let kernel = report["kernel"]
        .as_str()
        .with_context(|| format!("{}: no kernel field", dir.display()))?
        .to_string();
    Ok(Trained {
        model: read(&model)?,
        kernel,
    })
}
