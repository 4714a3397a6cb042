//! Download, verify, decompress and validate a dataset.
//!
//! Each file goes through `.<name>.gz.part-<pid>` (the download, hashed as it
//! streams in) and `.<name>.part-<pid>` (the decompressed IDX, opened with
//! `mnist-idx`) in the output folder, and is renamed to its final name only
//! once every check passed. Temporary files are removed on every error path;
//! one left behind by a killed run is removed by the next run.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::checksum::{self, Sha256Sums};
use crate::dataset::{DatasetSpec, FileSpec, Kind};
use crate::error::{AllMirrorsFailed, Error, Result};
use crate::mirror::{self, Client, Failure, Mirror, Scope};
use crate::pieces::PieceWriter;
use crate::progress::{Download, Event, Progress};

/// The default connect and read timeout of each HTTP request, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Without an official size to hold a download to (the mirror's own
/// `SHA256SUMS` vouches for a different file), it may be at most this many
/// times the official size.
const SIZE_SLACK: u64 = 4;

const BUFFER: usize = 64 * 1024;

/// How to fetch a dataset.
#[derive(Debug, Clone)]
pub struct Options {
    /// Parent folder; the files land in `<out_dir>/<dataset name>/`.
    pub out_dir: PathBuf,
    /// Mirrors in the order they are tried (see [`mirrors`]).
    pub mirrors: Vec<Mirror>,
    /// Fetch again even if a valid file is present.
    pub force: bool,
    /// Connect and read timeout of each HTTP request.
    pub timeout: Duration,
}

impl Options {
    /// The defaults for fetching `spec` into `out_dir`: the mirrors in
    /// `extra` (from `--mirror`), then the one in the dataset's environment
    /// variable (`MNIST_MIRROR` for MNIST), if set, then the built-in ones;
    /// a 30 s timeout; valid files present are kept.
    ///
    /// # Errors
    ///
    /// The environment variable does not hold a valid mirror.
    pub fn from_env(
        spec: &DatasetSpec,
        out_dir: PathBuf,
        extra: &[Mirror],
    ) -> Result<Self, mirror::ParseError> {
        let env = std::env::var(&spec.mirror_env).ok();
        Ok(Self {
            out_dir,
            mirrors: mirrors(spec, extra, env.as_deref())?,
            force: false,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        })
    }
}

/// The mirrors to try, in order: `extra` (from `--mirror`), then the value of
/// the dataset's environment variable, then the built-in mirrors. A mirror
/// listed twice is tried once, at its first place.
///
/// # Errors
///
/// The environment value or a built-in URL is not a valid mirror.
pub fn mirrors(
    spec: &DatasetSpec,
    extra: &[Mirror],
    env_value: Option<&str>,
) -> Result<Vec<Mirror>, mirror::ParseError> {
    let mut list = extra.to_vec();
    if let Some(value) = env_value.map(str::trim).filter(|v| !v.is_empty()) {
        list.push(Mirror::parse(value)?);
    }
    for url in &spec.mirrors {
        list.push(Mirror::parse(url)?);
    }
    let mut unique: Vec<Mirror> = Vec::with_capacity(list.len());
    for mirror in list {
        if !unique.contains(&mirror) {
            unique.push(mirror);
        }
    }
    Ok(unique)
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A valid file was already in place; nothing was downloaded.
    Present,
    /// The file was downloaded from this mirror.
    Fetched(String),
}

/// The result of a successful [`fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The folder holding the files.
    pub dir: PathBuf,
    /// Each file's decompressed name and outcome, in the spec's order.
    pub files: Vec<(String, Outcome)>,
}

/// Fetches every file of `spec` into `<out_dir>/<spec.name>/`, telling
/// `progress` what it does.
///
/// # Errors
///
/// [`Error::AllMirrorsFailed`] when no mirror delivered a file that passes
/// the checks (the files before it stay in place); [`Error::CreateDir`],
/// [`Error::Lock`] or [`Error::Local`] when the output folder cannot be
/// written.
pub fn fetch(spec: &DatasetSpec, options: &Options, progress: &dyn Progress) -> Result<Report> {
    let dir = options.out_dir.join(&spec.name);
    fs::create_dir_all(&dir).map_err(|source| Error::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let _lock = lock(&options.out_dir, &spec.name, progress)?;
    remove_stale_parts(&dir, spec);

    let client = Client::new(options.timeout);
    let mut state: Vec<MirrorState> = options.mirrors.iter().map(|_| MirrorState::new()).collect();
    let mut files = Vec::with_capacity(spec.files.len());

    for file in &spec.files {
        let target = dir.join(&file.name);
        if !options.force && target.exists() {
            match validate(&target, file) {
                Ok(()) => {
                    progress.event(&Event::Present { file: &file.name });
                    files.push((file.name.clone(), Outcome::Present));
                    continue;
                }
                Err(problem) => progress.event(&Event::Invalid {
                    file: &file.name,
                    problem: &problem,
                }),
            }
        }

        let mut attempts = Vec::new();
        let mut fetched = None;
        for (mirror, state) in options.mirrors.iter().zip(state.iter_mut()) {
            if let Some(reason) = &state.unreachable {
                attempts.push((mirror.to_string(), format!("not retried ({reason})")));
                continue;
            }
            let sums = state.sums(mirror, &client);
            let result = sums.and_then(|sums| {
                progress.event(&Event::Fetching {
                    file: &file.name,
                    location: &mirror.location(&file.gz_name()),
                });
                attempt(mirror, file, &dir, &client, sums.as_ref(), progress)
            });
            match result {
                Ok(done) => {
                    progress.event(&Event::Fetched {
                        file: &file.name,
                        bytes: done.gz_bytes,
                        mirror: &mirror.to_string(),
                        checked_against: done.checked_against,
                    });
                    fetched = Some(mirror.to_string());
                    break;
                }
                Err(failure) if failure.scope == Scope::Local => {
                    return Err(Error::Local {
                        file: file.name.clone(),
                        message: failure.message,
                    });
                }
                Err(failure) => {
                    progress.event(&Event::MirrorFailed {
                        file: &file.name,
                        mirror: &mirror.to_string(),
                        reason: &failure.message,
                    });
                    if failure.scope == Scope::Mirror {
                        state.unreachable = Some(failure.message.clone());
                    }
                    attempts.push((mirror.to_string(), failure.message));
                }
            }
        }
        match fetched {
            Some(mirror) => files.push((file.name.clone(), Outcome::Fetched(mirror))),
            None => {
                return Err(AllMirrorsFailed {
                    file: file.gz_name(),
                    attempts,
                    env_var: spec.mirror_env.clone(),
                }
                .into());
            }
        }
    }
    Ok(Report { dir, files })
}

/// Takes `<out_dir>/.<name>.lock` for the whole run, so that two fetches
/// into the same folder take turns: the second waits, then finds the files
/// the first one wrote. The lock is the operating system's (released when
/// the returned file is dropped, or when the process dies); the lock file
/// itself stays, empty.
fn lock(out_dir: &Path, name: &str, progress: &dyn Progress) -> Result<File> {
    let path = out_dir.join(format!(".{name}.lock"));
    let error = |action, source| Error::Lock {
        action,
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| error("create the lock file", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            progress.event(&Event::Waiting {
                dir: &out_dir.join(name),
            });
            file.lock().map_err(|e| error("lock", e))?;
        }
        Err(fs::TryLockError::Error(e)) => return Err(error("lock", e)),
    }
    Ok(file)
}

/// What the run learned about one mirror.
struct MirrorState {
    /// Its `SHA256SUMS`, once asked for.
    sums: Option<Result<Option<Sha256Sums>, Failure>>,
    /// Why it is not asked again.
    unreachable: Option<String>,
}

impl MirrorState {
    fn new() -> Self {
        Self {
            sums: None,
            unreachable: None,
        }
    }

    fn sums(&mut self, mirror: &Mirror, client: &Client) -> Result<Option<Sha256Sums>, Failure> {
        self.sums
            .get_or_insert_with(|| mirror.sha256sums(client))
            .clone()
    }
}

struct Fetched {
    gz_bytes: u64,
    checked_against: &'static str,
}

/// One try of one file on one mirror; on any error nothing is left behind.
fn attempt(
    mirror: &Mirror,
    file: &FileSpec,
    dir: &Path,
    client: &Client,
    sums: Option<&Sha256Sums>,
    progress: &dyn Progress,
) -> Result<Fetched, Failure> {
    let gz_name = file.gz_name();
    let (expected_sha, expected_size, mut checked_against) =
        match sums.and_then(|sums| sums.get(&gz_name)) {
            Some(sha) => (sha.to_owned(), None, "the mirror's SHA256SUMS"),
            None => (
                file.gz_sha256.clone(),
                Some(file.gz_size),
                "the official size and SHA-256",
            ),
        };
    // Without the mirror's own list, a file whose content checksum is known
    // may be a recompressed copy: its `.gz` then matches neither the official
    // size nor checksum, and the decompressed bytes are checked instead.
    let content_fallback = if sums.is_none() {
        file.content_sha256.as_deref()
    } else {
        None
    };
    let cap = file.gz_size.saturating_mul(SIZE_SLACK);
    let cap = if content_fallback.is_some() {
        cap
    } else {
        expected_size.unwrap_or(cap)
    };

    let mut source = mirror.open(&gz_name, client)?;
    if let Some(announced) = source.len {
        if let Some(expected) = expected_size
            .filter(|&e| e != announced)
            .filter(|_| content_fallback.is_none())
        {
            return Err(Failure::file(format!(
                "size mismatch for {gz_name}: expected {expected} bytes, the mirror announces {announced}"
            )));
        }
        if announced > cap {
            return Err(Failure::file(format!(
                "{gz_name} is {announced} bytes, more than the {cap} accepted"
            )));
        }
    }

    // Download, hashing as the bytes stream to disk.
    let (gz_part, gz_file) = Part::create(dir, &gz_name)?;
    let mut writer = BufWriter::new(gz_file);
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut buffer = vec![0; BUFFER];
    let bar = Download::start(progress, &file.name, source.len.or(expected_size));
    loop {
        let n = match source.reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let mut failure = client.read_failure(&gz_name, &e);
                failure
                    .message
                    .push_str(&format!(" (after {received} bytes)"));
                return Err(failure);
            }
        };
        received += n as u64;
        if received > cap {
            return Err(Failure::file(format!(
                "the mirror sent more than the expected {cap} bytes of {gz_name}"
            )));
        }
        let chunk = buffer.get(..n).unwrap_or_default();
        hasher.update(chunk);
        writer
            .write_all(chunk)
            .map_err(|e| gz_part.write_failure(&e))?;
        progress.downloaded(n as u64);
    }
    drop(bar);
    writer
        .into_inner()
        .map_err(|e| gz_part.write_failure(e.error()))?
        .sync_all()
        .map_err(|e| gz_part.write_failure(&e))?;
    if let Some(announced) = source.len.filter(|&a| a != received) {
        return Err(Failure::file(format!(
            "connection closed after {received} of {announced} bytes of {gz_name}"
        )));
    }
    let found = checksum::hex(&hasher.finalize());
    let size_ok = expected_size.is_none_or(|e| e == received);
    let check_content = match content_fallback {
        Some(_) if !size_ok || found != expected_sha => {
            checked_against = "the official content's SHA-256 (a recompressed copy)";
            true
        }
        _ => false,
    };
    if !check_content {
        if let Some(expected) = expected_size.filter(|&e| e != received) {
            return Err(Failure::file(format!(
                "size mismatch for {gz_name}: expected {expected} bytes, found {received}"
            )));
        }
        if found != expected_sha {
            return Err(Failure::file(format!(
                "checksum mismatch for {gz_name} (against {checked_against}): expected sha256 {expected_sha}, found {found}"
            )));
        }
    }

    // Decompress, bounded by the exact size the IDX header must imply.
    let idx_len = file
        .idx_len()
        .ok_or_else(|| Failure::local(format!("the expected size of {} overflows", file.name)))?;
    let (idx_part, idx_file) = Part::create(dir, &file.name)?;
    let input = File::open(&gz_part.path).map_err(|e| gz_part.write_failure(&e))?;
    let mut decoder = MultiGzDecoder::new(BufReader::new(input)).take(idx_len + 1);
    // In whole 2 MiB pieces: the page cache then holds the file in folios
    // the trainer's memory map can map with huge pages.
    let mut writer = PieceWriter::new(idx_file);
    let mut written: u64 = 0;
    let mut content = Sha256::new();
    loop {
        let n = match decoder.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::file(format!("{gz_name} does not decompress: {e}"))),
        };
        written += n as u64;
        let chunk = buffer.get(..n).unwrap_or_default();
        if check_content {
            content.update(chunk);
        }
        writer
            .write_all(chunk)
            .map_err(|e| idx_part.write_failure(&e))?;
    }
    if written != idx_len {
        let relation = if written > idx_len {
            "more than".to_owned()
        } else {
            format!("{written} bytes, not")
        };
        return Err(Failure::file(format!(
            "{gz_name} decompresses to {relation} the expected {idx_len} bytes"
        )));
    }
    writer
        .finish()
        .map_err(|e| idx_part.write_failure(&e))?
        .sync_all()
        .map_err(|e| idx_part.write_failure(&e))?;
    drop(gz_part);
    if let (true, Some(expected)) = (check_content, content_fallback) {
        let found = checksum::hex(&content.finalize());
        if found != expected {
            return Err(Failure::file(format!(
                "{gz_name} matches neither the official .gz (size and SHA-256) nor, decompressed, the official content: expected sha256 {expected}, found {found}"
            )));
        }
    }

    validate(&idx_part.path, file)
        .map_err(|problem| Failure::file(format!("{gz_name}: {problem}")))?;
    idx_part.persist(&dir.join(&file.name))?;
    Ok(Fetched {
        gz_bytes: received,
        checked_against,
    })
}

/// Checks that `path` opens with `mnist-idx` and has the shape of `file`.
fn validate(path: &Path, file: &FileSpec) -> Result<(), String> {
    match file.kind {
        Kind::Images { rows, cols } => {
            let images = mnist_idx::Images::open(path).map_err(|e| e.to_string())?;
            if images.len() != file.count {
                return Err(format!(
                    "holds {} images, expected {}",
                    images.len(),
                    file.count
                ));
            }
            if (images.rows(), images.cols()) != (rows, cols) {
                return Err(format!(
                    "images are {}x{}, expected {rows}x{cols}",
                    images.rows(),
                    images.cols()
                ));
            }
        }
        Kind::Labels => {
            let labels = mnist_idx::Labels::open(path).map_err(|e| e.to_string())?;
            if labels.len() != file.count {
                return Err(format!(
                    "holds {} labels, expected {}",
                    labels.len(),
                    file.count
                ));
            }
        }
    }
    Ok(())
}

/// A temporary file in the output folder, removed when dropped unless
/// persisted under its final name.
struct Part {
    path: PathBuf,
    keep: bool,
}

impl Part {
    fn name(final_name: &str, pid: u32) -> String {
        format!(".{final_name}.part-{pid}")
    }

    fn create(dir: &Path, final_name: &str) -> Result<(Self, File), Failure> {
        let path = dir.join(Self::name(final_name, std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Failure::local(format!("cannot create {}: {e}", path.display())))?;
        Ok((Self { path, keep: false }, file))
    }

    fn write_failure(&self, error: &io::Error) -> Failure {
        Failure::local(format!("cannot write {}: {error}", self.path.display()))
    }

    fn persist(mut self, target: &Path) -> Result<(), Failure> {
        fs::rename(&self.path, target).map_err(|e| {
            Failure::local(format!(
                "cannot rename {} to {}: {e}",
                self.path.display(),
                target.display()
            ))
        })?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort: the error that got us here matters more.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Removes temporary files of `spec`'s files left by runs that were killed.
/// A run is known dead when `/proc` exists and shows its process gone or a
/// zombie; elsewhere the files are left alone.
fn remove_stale_parts(dir: &Path, spec: &DatasetSpec) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some((stem, pid)) = name.rsplit_once(".part-") else {
            continue;
        };
        let ours = spec
            .files
            .iter()
            .any(|f| stem == format!(".{}", f.name) || stem == format!(".{}", f.gz_name()));
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if ours && !alive(proc, pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether `pid` is a live process; a zombie (killed, not yet reaped) is not.
fn alive(proc: &Path, pid: u32) -> bool {
    match fs::read_to_string(proc.join(pid.to_string()).join("stat")) {
        // `pid (comm) S ...`: the state follows the last `)`.
        Ok(stat) => !matches!(
            stat.rsplit_once(')'),
            Some((_, state)) if state.trim_start().starts_with('Z')
        ),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_order_is_cli_env_builtin_without_duplicates() {
        let spec = DatasetSpec::mnist();
        let cli = [Mirror::Dir(PathBuf::from("/a"))];
        let list = mirrors(
            &spec,
            &cli,
            Some("https://ossci-datasets.s3.amazonaws.com/mnist"),
        );
        assert_eq!(
            list,
            Ok(vec![
                Mirror::Dir(PathBuf::from("/a")),
                Mirror::Http("https://ossci-datasets.s3.amazonaws.com/mnist/".to_owned()),
                Mirror::Http("https://storage.googleapis.com/cvdf-datasets/mnist/".to_owned()),
            ])
        );
        assert_eq!(mirrors(&spec, &[], Some("  ")).map(|l| l.len()), Ok(2));
        assert!(mirrors(&spec, &[], Some("ftp://x/")).is_err());
    }

    #[test]
    fn part_names_are_hidden_and_carry_the_pid() {
        assert_eq!(Part::name("a.gz", 42), ".a.gz.part-42");
    }

    #[test]
    fn stale_parts_of_dead_runs_are_removed() -> Result<(), Box<dyn std::error::Error>> {
        if !Path::new("/proc/self").exists() {
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let spec = DatasetSpec::mnist();
        let own = std::process::id();
        // Larger than any pid Linux hands out (pid_max <= 2^22).
        let dead = 4_294_967_000_u32;
        let names = [
            format!(".train-images-idx3-ubyte.gz.part-{dead}"),
            format!(".train-images-idx3-ubyte.part-{own}"),
            format!(".unrelated.part-{dead}"),
        ];
        for name in &names {
            fs::write(dir.path().join(name), b"x")?;
        }
        remove_stale_parts(dir.path(), &spec);
        let mut left: Vec<_> = fs::read_dir(dir.path())?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        left.sort();
        assert_eq!(left, [names[1].clone(), names[2].clone()]);
        Ok(())
    }
}
