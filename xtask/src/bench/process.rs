//! Running one child process and measuring it: wall time, exit, peak RSS
//! from `wait4`, and the peaks of `/proc/<pid>/status` sampled meanwhile.

use std::fs;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A value in kB of a `/proc/<pid>/status` line such as `RssAnon:  1234 kB`.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// One finished process.
#[derive(Debug, Clone, Default)]
pub(super) struct Measured {
    pub(super) wall_s: f64,
    pub(super) failure: Option<String>,
    pub(super) stdout: String,
    pub(super) stderr: String,
    pub(super) max_rss_kib: Option<u64>,
    pub(super) peak_anon_kib: Option<u64>,
    pub(super) peak_file_kib: Option<u64>,
}

/// Peaks of `RssAnon` and `RssFile` seen while sampling.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Peaks {
    anon: Option<u64>,
    file: Option<u64>,
}

pub(super) fn sample_status(pid: u32, stop: &AtomicBool) -> Peaks {
    let path = format!("/proc/{pid}/status");
    let mut peaks = Peaks::default();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(text) = fs::read_to_string(&path) {
            // A zombie's status has no Rss lines; max keeps what was seen.
            if let Some(v) = status_kib(&text, "RssAnon") {
                peaks.anon = Some(peaks.anon.map_or(v, |p| p.max(v)));
            }
            if let Some(v) = status_kib(&text, "RssFile") {
                peaks.file = Some(peaks.file.map_or(v, |p| p.max(v)));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    peaks
}

/// Waits for `child` and returns how it ended and its peak RSS in KiB.
#[cfg(unix)]
pub(super) fn wait_child(child: &mut Child) -> anyhow::Result<(Option<String>, Option<u64>)> {
    let pid = libc::pid_t::try_from(child.id()).context("child pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a C struct of integers; all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped (std's `Child` only
        // reaps in `wait`/`try_wait`, which are not called); both pointers
        // are to live locals of the right types.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("cannot wait for the child process");
        }
    }
    let failure = if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        (code != 0).then(|| format!("exit status {code}"))
    } else if libc::WIFSIGNALED(status) {
        Some(format!("killed by signal {}", libc::WTERMSIG(status)))
    } else {
        Some(format!("ended with wait status {status}"))
    };
    // Linux reports KiB, macOS bytes.
    let scale = if cfg!(target_os = "macos") { 1024 } else { 1 };
    let max_rss = u64::try_from(usage.ru_maxrss).ok().map(|v| v / scale);
    Ok((failure, max_rss))
}

#[cfg(not(unix))]
pub(super) fn wait_child(child: &mut Child) -> anyhow::Result<(Option<String>, Option<u64>)> {
    let status = child.wait().context("cannot wait for the child process")?;
    Ok(((!status.success()).then(|| status.to_string()), None))
}

pub(super) fn read_all(pipe: Option<impl Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        // A read error leaves what was read; the exit status tells the rest.
        let _ = pipe.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

pub(super) fn measure(command: &mut Command) -> anyhow::Result<Measured> {
    let shown = format!("{command:?}");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    let pid = child.id();
    let out_pipe = child.stdout.take();
    let err_pipe = child.stderr.take();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let out = scope.spawn(move || read_all(out_pipe));
        let err = scope.spawn(move || read_all(err_pipe));
        let sampler = scope.spawn(|| sample_status(pid, &stop));
        let waited = wait_child(&mut child);
        let wall_s = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let peaks = sampler.join().unwrap_or_default();
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        let (failure, max_rss_kib) = waited?;
        Ok(Measured {
            wall_s,
            failure,
            stdout,
            stderr,
            max_rss_kib,
            peak_anon_kib: peaks.anon,
            peak_file_kib: peaks.file,
        })
    })
}

pub(super) fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_status_values() {
        let status =
            "Name:\tmnist\nVmHWM:\t  81234 kB\nRssAnon:\t   5120 kB\nRssFile:\t  48000 kB\n";
        assert_eq!(status_kib(status, "RssAnon"), Some(5120));
        assert_eq!(status_kib(status, "RssFile"), Some(48000));
        assert_eq!(status_kib(status, "RssShmem"), None);
    }
}
