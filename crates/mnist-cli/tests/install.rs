//! `mnist` as an installed program: the data home, `mnist fetch`, the
//! shell completions, the man page and `--version`. Every run here sets
//! `HOME`, `XDG_DATA_HOME` and `MNIST_DATA` itself, so nothing depends on
//! (or writes into) the real home folder.
#![allow(clippy::unwrap_used)] // Tests unwrap what they built themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mnist_e2e::{assert_error_line, stderr, stdout, write_synthetic};

/// A sandbox: an empty folder to run in (outside any workspace), a home
/// and an XDG data folder, all temporary.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for name in ["cwd", "home", "xdg"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The user data folder's `mnist/` dataset folder.
    fn user_mnist(&self) -> PathBuf {
        self.path("xdg").join("mnist").join("mnist")
    }

    /// `bin args` in the empty folder, with the sandbox's home, no
    /// `MNIST_DATA` and no mirror, then `env`.
    fn run_with(&self, bin: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut command = Command::new(bin);
        command
            .args(args)
            .current_dir(self.path("cwd"))
            .env("HOME", self.path("home"))
            .env("XDG_DATA_HOME", self.path("xdg"))
            .env_remove("MNIST_DATA")
            .env_remove("MNIST_MIRROR")
            .env_remove("FASHION_MNIST_MIRROR");
        for (key, value) in env {
            command.env(key, value);
        }
        // A binary just copied can be "busy" for a moment: a child that
        // another test thread forks while the copy's file is still open for
        // writing holds that descriptor until it execs. Try again then.
        let mut tries = 0;
        loop {
            match command.output() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                result => return result.unwrap(),
            }
        }
    }

    fn run(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        self.run_with(Path::new(env!("CARGO_BIN_EXE_mnist")), args, env)
    }
}

/// Quick settings for synthetic data.
const QUICK: &[&str] = &["--epochs", "1", "--batch-size", "64", "--log-every", "0"];

fn train_args(extra: &[&str]) -> Vec<String> {
    let mut args = vec!["train".to_owned()];
    args.extend(QUICK.iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn the_data_home_is_searched_in_order() {
    let sandbox = Sandbox::new();
    // Only in the user data folder: found there.
    write_synthetic(&sandbox.user_mnist(), 200, 50).unwrap();
    let args = train_args(&[]);
    let o = sandbox.run(&strs(&args), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("train 200 samples"), "{}", stdout(&o));

    // MNIST_DATA comes before it.
    let data = sandbox.path("data");
    write_synthetic(&data.join("mnist"), 300, 50).unwrap();
    let o = sandbox.run(&strs(&args), &[("MNIST_DATA", &data)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("train 300 samples"), "{}", stdout(&o));

    // --data-dir comes first.
    let given = sandbox.path("given");
    write_synthetic(&given, 250, 50).unwrap();
    let args = train_args(&["--data-dir", given.to_str().unwrap()]);
    let o = sandbox.run(&strs(&args), &[("MNIST_DATA", &data)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("train 250 samples"), "{}", stdout(&o));
}

#[test]
fn inside_the_workspace_its_data_folder_comes_before_the_users() {
    let sandbox = Sandbox::new();
    write_synthetic(&sandbox.user_mnist(), 200, 50).unwrap();
    // A workspace laid out like this one, run from a folder inside it.
    let root = sandbox.path("cwd");
    std::fs::write(root.join("Cargo.toml"), "[workspace]\n").unwrap();
    std::fs::create_dir_all(root.join("crates/mnist-cli/src")).unwrap();
    std::fs::write(root.join("crates/mnist-cli/Cargo.toml"), "").unwrap();
    write_synthetic(&root.join("data/mnist"), 220, 50).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_mnist"));
    let o = command
        .args(strs(&train_args(&[])))
        .current_dir(root.join("crates/mnist-cli/src"))
        .env("HOME", sandbox.path("home"))
        .env("XDG_DATA_HOME", sandbox.path("xdg"))
        .env_remove("MNIST_DATA")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("train 220 samples"), "{}", stdout(&o));
}

#[test]
fn no_data_anywhere_names_the_places_searched_and_the_fetch() {
    let sandbox = Sandbox::new();
    let data = sandbox.path("data");
    std::fs::create_dir(&data).unwrap();
    let o = sandbox.run(&["train"], &[("MNIST_DATA", &data)]);
    assert_error_line(&o, "no mnist data found in ");
    let err = stderr(&o);
    for place in [data.join("mnist"), sandbox.user_mnist()] {
        assert!(err.contains(&place.display().to_string()), "{err}");
    }
    assert!(err.contains("run `mnist fetch`"), "{err}");
    // The same for the other commands that read the data.
    let model = sandbox.path("m.json");
    let model = model.to_str().unwrap();
    for args in [
        &["eval", "--model", model][..],
        &["errors", "--model", model, "-o", "e.png"],
        &["predict", "--model", model, "--index", "0"],
    ] {
        let o = sandbox.run(args, &[]);
        assert!(!o.status.success(), "{args:?}");
        assert!(
            stderr(&o).starts_with("error: "),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn an_mnist_data_that_is_a_file_is_one_line() {
    let sandbox = Sandbox::new();
    let file = sandbox.path("a-file");
    std::fs::write(&file, b"").unwrap();
    for args in [&["train"][..], &["fetch"]] {
        let o = sandbox.run(args, &[("MNIST_DATA", &file)]);
        assert_error_line(&o, &format!("MNIST_DATA {}: not a folder", file.display()));
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"");
}

#[test]
fn an_unwritable_data_home_is_one_line_and_nothing_is_written() {
    let sandbox = Sandbox::new();
    let file = sandbox.path("a-file");
    std::fs::write(&file, b"").unwrap();
    // The user data folder would be inside a file.
    let xdg = file.join("share");
    let mirror = sandbox.path("mirror");
    std::fs::create_dir(&mirror).unwrap();
    let o = sandbox.run(
        &["fetch", "--mirror", mirror.to_str().unwrap()],
        &[("XDG_DATA_HOME", &xdg)],
    );
    assert_error_line(
        &o,
        &format!("cannot create {}", xdg.join("mnist/mnist").display()),
    );
    // MNIST_DATA in a folder that cannot be made.
    let o = sandbox.run(&["fetch"], &[("MNIST_DATA", &file.join("data"))]);
    assert_error_line(&o, "Not a directory");
    assert_eq!(std::fs::read(&file).unwrap(), b"");
    assert_eq!(std::fs::read_dir(&mirror).unwrap().count(), 0);
}

#[test]
fn an_unknown_dataset_or_mirror_is_one_line_and_writes_nothing() {
    let sandbox = Sandbox::new();
    let o = sandbox.run(&["fetch", "--dataset", "cifar"], &[]);
    assert_error_line(
        &o,
        "--dataset cifar: unknown dataset `cifar`: expected mnist or fashion-mnist",
    );
    let o = sandbox.run(&["fetch", "--mirror", "ftp://example.org/"], &[]);
    assert_error_line(&o, "--mirror ftp://example.org/: invalid mirror");
    let o = sandbox.run(&["fetch"], &[("MNIST_MIRROR", Path::new("gopher://x/"))]);
    assert_error_line(&o, "MNIST_MIRROR: invalid mirror `gopher://x/`");
    assert_eq!(std::fs::read_dir(sandbox.path("xdg")).unwrap().count(), 0);
}

#[test]
fn the_bash_completion_completes_a_subcommand() {
    let sandbox = Sandbox::new();
    let o = sandbox.run(&["completions", "bash"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let script = sandbox.path("mnist.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    // What bash does on `mnist tr<TAB>`: the function registered for
    // `mnist`, called with the words so far.
    let complete = |words: &str, current: usize| {
        let line = format!(
            "source {}; spec=$(complete -p mnist) || exit 3; fn=${{spec#*-F }}; fn=${{fn%% *}}; \
             COMP_WORDS=({words}); COMP_CWORD={current}; COMP_LINE='{words}'; \
             COMP_POINT=${{#COMP_LINE}}; \"$fn\" mnist \"${{COMP_WORDS[$COMP_CWORD]}}\" \
             \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let o = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &line])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(complete("mnist tr", 1).trim(), "train");
    let fetch_flags = complete("mnist fetch --", 2);
    for flag in ["--dataset", "--mirror", "--force"] {
        assert!(fetch_flags.lines().any(|l| l == flag), "{fetch_flags}");
    }
    let datasets = complete("mnist fetch --dataset ''", 3);
    assert!(datasets.lines().any(|l| l == "fashion-mnist"), "{datasets}");
}

#[test]
fn every_shell_gets_a_completion_script() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let o = sandbox.run(&["completions", shell], &[]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        assert!(stdout(&o).contains("fetch"), "{shell}");
    }
    let o = sandbox.run(&["completions", "tcsh"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_man_page_renders() {
    let sandbox = Sandbox::new();
    let o = sandbox.run(&["man"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = sandbox.path("mnist.1");
    std::fs::write(&page, &o.stdout).unwrap();
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output();
    let rendered = match rendered {
        Ok(o) => o,
        Err(e) => panic!("cannot run `man` ({e}): install man-db (apt-get install man-db)"),
    };
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    let text = stdout(&rendered);
    for needle in [
        "NAME",
        "mnist",
        "SYNOPSIS",
        "--data-dir",
        "fetch",
        "completions",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
}

#[test]
fn version_names_the_commit_and_the_simd_paths() {
    let sandbox = Sandbox::new();
    let o = sandbox.run(&["--version"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("mnist {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "SIMD paths this CPU can take: {} (runs {})",
                mnist_model::kernel_paths().join(", "),
                mnist_model::kernel_path()
            )
            .as_str()
        ),
        "{text}"
    );
}

#[test]
#[ignore = "trains on the MNIST data: `cargo xtask ci` runs it"]
fn installed_it_fetches_and_trains_from_any_folder() {
    let Some(mirror) = std::env::var_os("MNIST_MIRROR").map(PathBuf::from) else {
        panic!("set MNIST_MIRROR to a folder holding the four MNIST .gz files");
    };
    assert!(
        mirror.is_dir(),
        "MNIST_MIRROR {} is not a folder: point it at a local copy of the four .gz files",
        mirror.display()
    );
    let sandbox = Sandbox::new();
    // Installed: the binary alone in a root of its own.
    let bin = sandbox.path("root/bin/mnist");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_mnist"), &bin).unwrap();
    let env = [("MNIST_MIRROR", mirror.as_path())];

    let o = sandbox.run_with(&bin, &["fetch"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = sandbox.user_mnist();
    assert!(
        stderr(&o).contains(&format!(
            "mnist: 4 files in {} (4 fetched, 0 already present)",
            dir.display()
        )),
        "{}",
        stderr(&o)
    );
    let modified = |name: &str| {
        std::fs::metadata(dir.join(name))
            .unwrap()
            .modified()
            .unwrap()
    };
    let names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];
    let before: Vec<_> = names.iter().map(|n| modified(n)).collect();

    let o = sandbox.run_with(&bin, &["train", "--epochs", "1", "--quiet"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("test accuracy"), "{}", stdout(&o));

    // Again: the files are there, nothing is downloaded.
    let o = sandbox.run_with(&bin, &["fetch"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("fetching"), "{err}");
    assert_eq!(err.matches("ok (already present)").count(), 4, "{err}");
    assert!(err.contains("(0 fetched, 4 already present)"), "{err}");
    let after: Vec<_> = names.iter().map(|n| modified(n)).collect();
    assert_eq!(before, after);
    // Nothing landed in the folder it ran from.
    assert_eq!(std::fs::read_dir(sandbox.path("cwd")).unwrap().count(), 0);
}
