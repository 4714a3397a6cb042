//! The fetcher against local HTTP servers and directories.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use mnist_fetch::checksum::sha256_hex;
use mnist_fetch::{
    AllMirrorsFailed, DatasetSpec, Error, Event, Options, Outcome, Progress, Report, Silent,
    SHA256SUMS,
};

use crate::fixture::{all_final, listing, Fixture, TestResult, NAMES};
use crate::server::{Reply, Server};

/// Serves `files` by name and `sums` as `SHA256SUMS` (404 without).
fn serve(files: BTreeMap<String, Vec<u8>>, sums: Option<String>) -> std::io::Result<Server> {
    Server::start(move |path| {
        if path == SHA256SUMS {
            return sums
                .clone()
                .map_or(Reply::Status(404), |s| Reply::Ok(s.into_bytes()));
        }
        files
            .get(path)
            .map_or(Reply::Status(404), |bytes| Reply::Ok(bytes.clone()))
    })
}

/// Serves the `.gz` files through `reply(bytes)` and 404 for `SHA256SUMS`.
fn serve_with(
    fixture: &Fixture,
    reply: impl Fn(Vec<u8>) -> Reply + Send + Sync + 'static,
) -> std::io::Result<Server> {
    let files = fixture.gz.clone();
    Server::start(move |path| match files.get(path) {
        Some(bytes) => reply(bytes.clone()),
        None => Reply::Status(404),
    })
}

fn assert_fetched_from(report: &Report, mirror: &str) {
    for (name, outcome) in &report.files {
        assert_eq!(outcome, &Outcome::Fetched(mirror.to_owned()), "{name}");
    }
}

fn assert_contents(fixture: &Fixture, dir: &Path) -> TestResult {
    assert_eq!(listing(dir), all_final());
    for (name, bytes) in &fixture.idx {
        assert!(fs::read(dir.join(name))? == *bytes, "{name} differs");
    }
    Ok(())
}

/// Fetches with no progress shown.
fn fetch(spec: &DatasetSpec, options: &Options) -> Result<Report, Error> {
    mnist_fetch::fetch(spec, options, &Silent)
}

fn all_failed(error: &Error) -> &AllMirrorsFailed {
    match error {
        Error::AllMirrorsFailed(failed) => failed,
        _ => panic!("expected AllMirrorsFailed, got: {error}"),
    }
}

#[test]
fn good_http_mirror() -> TestResult {
    let fixture = Fixture::new();
    let server = serve(fixture.gz.clone(), None)?;
    let out = tempfile::tempdir()?;
    let report = fetch(
        &fixture.spec,
        &fixture.options(out.path(), &[server.url()])?,
    )?;
    assert_eq!(report.dir, out.path().join("tiny"));
    assert_fetched_from(&report, server.url());
    assert_contents(&fixture, &report.dir)?;
    let mut expected = vec![SHA256SUMS.to_owned()];
    expected.extend(NAMES.iter().map(|n| format!("{n}.gz")));
    assert_eq!(server.requests(), expected);
    Ok(())
}

#[test]
fn mirror_sha256sums_vouches_for_repacked_files() -> TestResult {
    let fixture = Fixture::new();
    let (repacked, sums) = fixture.repacked();
    assert_ne!(repacked, fixture.gz);
    let server = serve(repacked, Some(sums))?;
    let out = tempfile::tempdir()?;
    let report = fetch(
        &fixture.spec,
        &fixture.options(out.path(), &[server.url()])?,
    )?;
    assert_fetched_from(&report, server.url());
    assert_contents(&fixture, &report.dir)
}

#[test]
fn mirror_sha256sums_mismatch_names_file_expected_and_found() -> TestResult {
    let fixture = Fixture::new();
    let (repacked, _) = fixture.repacked();
    let wrong = "0".repeat(64);
    let sums: String = NAMES.iter().map(|n| format!("{wrong}  {n}.gz\n")).collect();
    let server = serve(repacked.clone(), Some(sums))?;
    let out = tempfile::tempdir()?;
    let error = fetch(
        &fixture.spec,
        &fixture.options(out.path(), &[server.url()])?,
    )
    .err()
    .ok_or("fetch succeeded")?;
    let failed = all_failed(&error);
    assert_eq!(failed.file, "train-images-idx3-ubyte.gz");
    let found = sha256_hex(&repacked["train-images-idx3-ubyte.gz"]);
    let (_, reason) = &failed.attempts[0];
    assert!(
        reason.contains("checksum mismatch for train-images-idx3-ubyte.gz"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("expected sha256 {wrong}, found {found}")),
        "{reason}"
    );
    assert_eq!(listing(&out.path().join("tiny")), Vec::<String>::new());
    Ok(())
}

#[test]
fn not_found_falls_back_to_the_next_mirror() -> TestResult {
    let fixture = Fixture::new();
    let missing = Server::always(Reply::Status(404))?;
    let good = serve(fixture.gz.clone(), None)?;
    let out = tempfile::tempdir()?;
    let options = fixture.options(out.path(), &[missing.url(), good.url()])?;
    let report = fetch(&fixture.spec, &options)?;
    assert_fetched_from(&report, good.url());
    assert_contents(&fixture, &report.dir)?;
    // The missing files are asked for each time: a 404 is about one file.
    assert_eq!(missing.requests().len(), 1 + NAMES.len());
    Ok(())
}

fn corrupt(mut bytes: Vec<u8>) -> Vec<u8> {
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    bytes
}

#[test]
fn corrupted_bytes_fall_back_to_the_next_mirror() -> TestResult {
    let fixture = Fixture::new();
    let bad = serve_with(&fixture, |bytes| Reply::Ok(corrupt(bytes)))?;
    let good = serve(fixture.gz.clone(), None)?;
    let out = tempfile::tempdir()?;
    let report = fetch(
        &fixture.spec,
        &fixture.options(out.path(), &[bad.url(), good.url()])?,
    )?;
    assert_fetched_from(&report, good.url());
    assert_contents(&fixture, &report.dir)
}

#[test]
fn corrupted_bytes_error_names_expected_and_found() -> TestResult {
    let fixture = Fixture::new();
    let bad = serve_with(&fixture, |bytes| Reply::Ok(corrupt(bytes)))?;
    let out = tempfile::tempdir()?;
    let error = fetch(&fixture.spec, &fixture.options(out.path(), &[bad.url()])?)
        .err()
        .ok_or("fetch succeeded")?;
    let name = "train-images-idx3-ubyte.gz";
    let expected = sha256_hex(&fixture.gz[name]);
    let found = sha256_hex(&corrupt(fixture.gz[name].clone()));
    let message = format!("{error:#}");
    assert!(
        message.contains(&format!("checksum mismatch for {name}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("expected sha256 {expected}, found {found}")),
        "{message}"
    );
    assert_eq!(listing(&out.path().join("tiny")), Vec::<String>::new());
    Ok(())
}

#[test]
fn connection_closed_mid_body_falls_back() -> TestResult {
    let fixture = Fixture::new();
    let cut = serve_with(&fixture, |bytes| Reply::Cut {
        sent: bytes.len() / 2,
        body: bytes,
    })?;
    let good = serve(fixture.gz.clone(), None)?;
    let out = tempfile::tempdir()?;
    let report = fetch(
        &fixture.spec,
        &fixture.options(out.path(), &[cut.url(), good.url()])?,
    )?;
    assert_fetched_from(&report, good.url());
    assert_contents(&fixture, &report.dir)?;

    let alone = tempfile::tempdir()?;
    let error = fetch(&fixture.spec, &fixture.options(alone.path(), &[cut.url()])?)
        .err()
        .ok_or("fetch succeeded")?;
    let (_, reason) = &all_failed(&error).attempts[0];
    assert!(reason.contains("closed"), "{reason}");
    assert_eq!(listing(&alone.path().join("tiny")), Vec::<String>::new());
    Ok(())
}

#[test]
fn more_bytes_than_announced_size_is_rejected() -> TestResult {
    let fixture = Fixture::new();
    let announced = serve_with(&fixture, |mut bytes| {
        bytes.extend_from_slice(&[0; 100]);
        Reply::Announce {
            announced: bytes.len() as u64,
            body: bytes,
        }
    })?;
    let out = tempfile::tempdir()?;
    let error = fetch(
        &fixture.spec,
        &fixture.options(out.path(), &[announced.url()])?,
    )
    .err()
    .ok_or("fetch succeeded")?;
    let (_, reason) = &all_failed(&error).attempts[0];
    assert!(
        reason.contains("size mismatch for train-images-idx3-ubyte.gz"),
        "{reason}"
    );
    assert_eq!(listing(&out.path().join("tiny")), Vec::<String>::new());
    Ok(())
}

#[test]
fn more_bytes_than_known_size_without_length_is_cut_off() -> TestResult {
    let fixture = Fixture::new();
    // Far more than the expected size, with no Content-Length to go by.
    let endless = serve_with(&fixture, |mut bytes| {
        bytes.resize(bytes.len() + (8 << 20), 0);
        Reply::Unsized(bytes)
    })?;
    let out = tempfile::tempdir()?;
    let error = fetch(
        &fixture.spec,
        &fixture.options(out.path(), &[endless.url()])?,
    )
    .err()
    .ok_or("fetch succeeded")?;
    let expected = fixture.spec.files[0].gz_size;
    let (_, reason) = &all_failed(&error).attempts[0];
    assert!(
        reason.contains(&format!("more than the expected {expected} bytes")),
        "{reason}"
    );
    assert_eq!(listing(&out.path().join("tiny")), Vec::<String>::new());
    Ok(())
}

#[test]
fn silent_mirror_times_out_and_is_not_asked_again() -> TestResult {
    let fixture = Fixture::new();
    let silent = Server::always(Reply::Silent)?;
    let out = tempfile::tempdir()?;
    let mut options = fixture.options(out.path(), &[silent.url()])?;
    options.timeout = Duration::from_secs(1);
    // The server stays silent until the client hangs up: only the client's
    // time-out ends the wait.
    let error = fetch(&fixture.spec, &options)
        .err()
        .ok_or("fetch succeeded")?;
    let (_, reason) = &all_failed(&error).attempts[0];
    assert!(reason.contains("timed out after 1 s"), "{reason}");

    let silent = Server::always(Reply::Silent)?;
    let good = serve(fixture.gz.clone(), None)?;
    let mut options = fixture.options(out.path(), &[silent.url(), good.url()])?;
    options.timeout = Duration::from_secs(1);
    let report = fetch(&fixture.spec, &options)?;
    assert_fetched_from(&report, good.url());
    assert_contents(&fixture, &report.dir)?;
    assert_eq!(silent.requests(), [SHA256SUMS]);
    Ok(())
}

#[test]
fn stall_mid_body_times_out_and_falls_back() -> TestResult {
    let fixture = Fixture::new();
    let stalling = serve_with(&fixture, |bytes| Reply::StallAfter {
        sent: bytes.len() / 2,
        body: bytes,
    })?;
    let good = serve(fixture.gz.clone(), None)?;
    let out = tempfile::tempdir()?;
    let mut options = fixture.options(out.path(), &[stalling.url()])?;
    options.timeout = Duration::from_secs(1);
    let error = fetch(&fixture.spec, &options)
        .err()
        .ok_or("fetch succeeded")?;
    let (_, reason) = &all_failed(&error).attempts[0];
    assert!(reason.contains("timed out after 1 s"), "{reason}");
    assert_eq!(listing(&out.path().join("tiny")), Vec::<String>::new());

    let out = tempfile::tempdir()?;
    let mut options = fixture.options(out.path(), &[stalling.url(), good.url()])?;
    options.timeout = Duration::from_secs(1);
    let report = fetch(&fixture.spec, &options)?;
    assert_fetched_from(&report, good.url());
    assert_contents(&fixture, &report.dir)
}

fn write_all(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

#[test]
fn directory_mirror() -> TestResult {
    let fixture = Fixture::new();
    let mirror = tempfile::tempdir()?;
    write_all(mirror.path(), &fixture.gz)?;
    let path = mirror.path().to_str().ok_or("temp path is not UTF-8")?;
    for given in [path.to_owned(), format!("file://{path}")] {
        let out = tempfile::tempdir()?;
        let report = fetch(&fixture.spec, &fixture.options(out.path(), &[&given])?)?;
        assert_fetched_from(&report, path);
        assert_contents(&fixture, &report.dir)?;
    }
    Ok(())
}

#[test]
fn directory_mirror_with_its_own_sha256sums() -> TestResult {
    let fixture = Fixture::new();
    let (repacked, sums) = fixture.repacked();
    let mirror = tempfile::tempdir()?;
    write_all(mirror.path(), &repacked)?;
    fs::write(mirror.path().join(SHA256SUMS), sums)?;
    let path = mirror.path().to_str().ok_or("temp path is not UTF-8")?;
    let out = tempfile::tempdir()?;
    let report = fetch(&fixture.spec, &fixture.options(out.path(), &[path])?)?;
    assert_contents(&fixture, &report.dir)
}

#[test]
fn checksum_valid_but_wrong_content_is_rejected() -> TestResult {
    let fixture = Fixture::new();
    // The mirror vouches for a label file of 5 labels where 3 are expected.
    let mut files = fixture.gz.clone();
    let mut five = vec![0, 0, 8, 1, 0, 0, 0, 5];
    five.extend([1, 2, 3, 4, 5]);
    let packed = crate::fixture::gzip(&five, 6);
    let mut sums = String::new();
    for (name, bytes) in &fixture.gz {
        sums.push_str(&format!("{}  {name}\n", sha256_hex(bytes)));
    }
    sums = sums.replace(
        &sha256_hex(&fixture.gz["train-labels-idx1-ubyte.gz"]),
        &sha256_hex(&packed),
    );
    files.insert("train-labels-idx1-ubyte.gz".to_owned(), packed);
    let server = serve(files, Some(sums))?;
    let out = tempfile::tempdir()?;
    let error = fetch(
        &fixture.spec,
        &fixture.options(out.path(), &[server.url()])?,
    )
    .err()
    .ok_or("fetch succeeded")?;
    let failed = all_failed(&error);
    assert_eq!(failed.file, "train-labels-idx1-ubyte.gz");
    assert!(
        failed.attempts[0].1.contains("decompresses to"),
        "{error:#}"
    );
    // The file before it is complete and stays; nothing else is left.
    assert_eq!(
        listing(&out.path().join("tiny")),
        ["train-images-idx3-ubyte"]
    );
    Ok(())
}

#[test]
fn all_mirrors_failing_lists_each_and_leaves_nothing() -> TestResult {
    let fixture = Fixture::new();
    let missing = Server::always(Reply::Status(404))?;
    let broken = Server::always(Reply::Status(500))?;
    let bad = serve_with(&fixture, |bytes| Reply::Ok(corrupt(bytes)))?;
    let cut = serve_with(&fixture, |bytes| Reply::Cut {
        sent: 3,
        body: bytes,
    })?;
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        format!("http://{}/", listener.local_addr()?)
    };
    let nowhere = tempfile::tempdir()?.path().join("absent");
    let nowhere = nowhere.to_str().ok_or("temp path is not UTF-8")?.to_owned();
    let mirrors = [
        missing.url(),
        broken.url(),
        bad.url(),
        cut.url(),
        &refused,
        &nowhere,
    ];
    let out = tempfile::tempdir()?;
    let error = fetch(&fixture.spec, &fixture.options(out.path(), &mirrors)?)
        .err()
        .ok_or("fetch succeeded")?;
    let failed = all_failed(&error);
    let tried: Vec<&str> = failed.attempts.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(tried, mirrors);
    let reasons: Vec<&str> = failed.attempts.iter().map(|(_, r)| r.as_str()).collect();
    for (reason, expected) in reasons.iter().zip([
        "HTTP 404 Not Found",
        "SHA256SUMS: HTTP 500 Internal Server Error",
        "checksum mismatch",
        "closed",
        "connection failed",
        "is not a directory",
    ]) {
        assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
    }
    let message = error.to_string();
    assert!(message.starts_with("could not fetch train-images-idx3-ubyte.gz from any mirror:"));
    assert!(
        message.contains("`--mirror DIR|URL` or `TINY_MIRROR=DIR|URL`"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1 + mirrors.len() + 1, "{message}");
    assert_eq!(listing(&out.path().join("tiny")), Vec::<String>::new());
    Ok(())
}

#[test]
fn second_run_skips_and_force_redoes() -> TestResult {
    let fixture = Fixture::new();
    let server = serve(fixture.gz.clone(), None)?;
    let out = tempfile::tempdir()?;
    let mut options = fixture.options(out.path(), &[server.url()])?;
    fetch(&fixture.spec, &options)?;
    let asked = server.requests().len();

    let again = fetch(&fixture.spec, &options)?;
    assert!(
        again.files.iter().all(|(_, o)| *o == Outcome::Present),
        "{again:?}"
    );
    assert_eq!(
        server.requests().len(),
        asked,
        "a second run asked the mirror"
    );

    // A damaged file is fetched again, the others are kept.
    let labels = again.dir.join("train-labels-idx1-ubyte");
    fs::write(&labels, b"\0\0\x08\x01\0\0\0\x03\x01")?;
    let repaired = fetch(&fixture.spec, &options)?;
    let outcomes: Vec<bool> = repaired
        .files
        .iter()
        .map(|(_, o)| *o == Outcome::Present)
        .collect();
    assert_eq!(outcomes, [true, false, true, true]);
    assert_contents(&fixture, &repaired.dir)?;

    options.force = true;
    let forced = fetch(&fixture.spec, &options)?;
    assert_fetched_from(&forced, server.url());
    assert_contents(&fixture, &forced.dir)?;
    assert!(server.requests().len() > asked + 1);
    Ok(())
}

#[test]
fn forced_run_that_fails_keeps_the_valid_files() -> TestResult {
    let fixture = Fixture::new();
    let server = serve(fixture.gz.clone(), None)?;
    let out = tempfile::tempdir()?;
    fetch(
        &fixture.spec,
        &fixture.options(out.path(), &[server.url()])?,
    )?;
    let missing = Server::always(Reply::Status(404))?;
    let mut options = fixture.options(out.path(), &[missing.url()])?;
    options.force = true;
    assert!(fetch(&fixture.spec, &options).is_err());
    assert_contents(&fixture, &out.path().join("tiny"))
}

/// Sends each event's line down a channel.
struct Lines(mpsc::Sender<String>);

impl Progress for Lines {
    fn event(&self, event: &Event<'_>) {
        let _ = self.0.send(event.to_string());
    }
}

#[test]
fn a_second_fetch_into_the_same_folder_waits_for_the_first() -> TestResult {
    let fixture = Fixture::new();
    let empty = Server::always(Reply::Status(404))?;
    let out = tempfile::tempdir()?;
    // Stand in for a first fetch that holds the folder's lock.
    let lock = fs::File::create(out.path().join(".tiny.lock"))?;
    lock.lock()?;
    let options = fixture.options(out.path(), &[empty.url()])?;
    let spec = fixture.spec.clone();
    let (sender, lines) = mpsc::channel();
    let second = std::thread::spawn(move || {
        mnist_fetch::fetch(&spec, &options, &Lines(sender)).map_err(|e| e.to_string())
    });
    let first_line = lines.recv()?;
    // While the lock is held the second fetch can only wait: it has said so,
    // and has written nothing.
    assert_eq!(
        first_line,
        format!(
            "another fetch is writing into {}; waiting for it to finish",
            out.path().join("tiny").display()
        )
    );
    assert!(!second.is_finished(), "the second fetch did not wait");
    assert!(listing(&out.path().join("tiny")).is_empty());
    assert_eq!(empty.requests(), Vec::<String>::new());
    drop(lock);
    // Once the lock is free, it goes on (and finds nothing on the mirror).
    let result = second.join().map_err(|_| "fetch thread panicked")?;
    assert!(result.is_err_and(|e| e.contains("could not fetch")));
    Ok(())
}

#[test]
fn a_fetch_that_waited_finds_the_files_the_first_wrote() -> TestResult {
    let fixture = Fixture::new();
    // A mirror that has nothing: the second fetch must not need it.
    let empty = Server::always(Reply::Status(404))?;
    let out = tempfile::tempdir()?;
    let lock = fs::File::create(out.path().join(format!(".{}.lock", fixture.spec.name)))?;
    lock.lock()?;
    let options = fixture.options(out.path(), &[empty.url()])?;
    let spec = fixture.spec.clone();
    let second = std::thread::spawn(move || fetch(&spec, &options).map_err(|e| format!("{e:#}")));
    // The first fetch's files, written while it holds the lock.
    let dir = out.path().join("tiny");
    fs::create_dir_all(&dir)?;
    write_all(&dir, &fixture.idx)?;
    drop(lock);
    let report = second.join().map_err(|_| "fetch thread panicked")??;
    assert!(report.files.iter().all(|(_, o)| *o == Outcome::Present));
    assert_eq!(empty.requests(), Vec::<String>::new());
    assert_contents(&fixture, &report.dir)
}

#[test]
fn a_recompressed_copy_is_accepted_by_its_content_checksum() -> TestResult {
    let mut fixture = Fixture::new();
    for file in &mut fixture.spec.files {
        file.content_sha256 = Some(sha256_hex(&fixture.idx[&file.name]));
    }
    // Recompressed: neither size nor checksum of the "official" .gz match,
    // and the mirror has no SHA256SUMS of its own.
    let (repacked, _sums) = fixture.repacked();
    let mirror = tempfile::tempdir()?;
    write_all(mirror.path(), &repacked)?;
    let path = mirror.path().to_str().ok_or("temp path is not UTF-8")?;
    let out = tempfile::tempdir()?;
    let report = fetch(&fixture.spec, &fixture.options(out.path(), &[path])?)?;
    assert_fetched_from(&report, path);
    assert_contents(&fixture, &report.dir)?;

    // The same copy with one file's content changed is rejected, naming the
    // expected and found content checksums, and nothing partial is left.
    let name = NAMES[1];
    let mut changed = fixture.idx[name].clone();
    if let Some(last) = changed.last_mut() {
        *last ^= 1;
    }
    let mut bad = repacked.clone();
    bad.insert(format!("{name}.gz"), crate::fixture::gzip(&changed, 9));
    let mirror = tempfile::tempdir()?;
    write_all(mirror.path(), &bad)?;
    let path = mirror.path().to_str().ok_or("temp path is not UTF-8")?;
    let out = tempfile::tempdir()?;
    let error = fetch(&fixture.spec, &fixture.options(out.path(), &[path])?).unwrap_err();
    let failed = all_failed(&error);
    let reason = &failed.attempts[0].1;
    assert!(
        reason.contains("nor, decompressed, the official content"),
        "{reason}"
    );
    assert!(reason.contains(&sha256_hex(&fixture.idx[name])), "{reason}");
    assert_eq!(listing(&out.path().join("tiny")), [NAMES[0]]);
    Ok(())
}
