//! What a fetch tells whoever shows its progress. The crate prints nothing
//! itself: a program passes a [`Progress`] that renders the events (a line
//! each, a progress bar, or nothing at all).

use std::fmt;
use std::path::Path;

/// One thing that happened during a fetch. Its `Display` is the line a
/// program prints for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A valid file was in place already; it is kept.
    Present {
        /// The decompressed file name.
        file: &'a str,
    },
    /// A file was in place but failed the checks; it is fetched again.
    Invalid {
        /// The decompressed file name.
        file: &'a str,
        /// What is wrong with it.
        problem: &'a str,
    },
    /// A download starts.
    Fetching {
        /// The decompressed file name.
        file: &'a str,
        /// Where it comes from (a URL or a path).
        location: &'a str,
    },
    /// A file passed every check and is in place.
    Fetched {
        /// The decompressed file name.
        file: &'a str,
        /// Bytes downloaded (the `.gz`).
        bytes: u64,
        /// The mirror it came from.
        mirror: &'a str,
        /// What the download was checked against.
        checked_against: &'a str,
    },
    /// One mirror failed for a file; the next one is tried.
    MirrorFailed {
        /// The decompressed file name.
        file: &'a str,
        /// The mirror.
        mirror: &'a str,
        /// Why it failed.
        reason: &'a str,
    },
    /// Another process is fetching into the same folder; this one waits for
    /// it to finish.
    Waiting {
        /// The dataset folder.
        dir: &'a Path,
    },
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Present { file } => write!(f, "{file}: ok (already present)"),
            Self::Invalid { file, problem } => write!(
                f,
                "{file}: present but invalid ({problem}), fetching it again"
            ),
            Self::Fetching { file, location } => write!(f, "{file}: fetching {location}"),
            Self::Fetched {
                file,
                bytes,
                mirror,
                checked_against,
            } => write!(
                f,
                "{file}: ok ({} from {mirror}, checked against {checked_against})",
                human_bytes(*bytes)
            ),
            Self::MirrorFailed {
                file,
                mirror,
                reason,
            } => write!(f, "{file}: {mirror} failed: {reason}"),
            Self::Waiting { dir } => write!(
                f,
                "another fetch is writing into {}; waiting for it to finish",
                dir.display()
            ),
        }
    }
}

/// Receives a fetch's events and the progress of each download.
///
/// Every method has a default that ignores it, so a program implements
/// only what it shows.
pub trait Progress {
    /// Something happened; see [`Event`].
    fn event(&self, event: &Event<'_>) {
        let _ = event;
    }

    /// A download of `file` starts; `total` is its size in bytes, if known.
    fn download_started(&self, file: &str, total: Option<u64>) {
        let _ = (file, total);
    }

    /// `bytes` more bytes of the current download arrived.
    fn downloaded(&self, bytes: u64) {
        let _ = bytes;
    }

    /// The current download ended (complete or not).
    fn download_ended(&self) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Silent;

impl Progress for Silent {}

/// Ends the current download when dropped, on every path out of it.
pub(crate) struct Download<'a>(pub(crate) &'a dyn Progress);

impl<'a> Download<'a> {
    pub(crate) fn start(progress: &'a dyn Progress, file: &str, total: Option<u64>) -> Self {
        progress.download_started(file, total);
        Self(progress)
    }
}

impl Drop for Download<'_> {
    fn drop(&mut self) {
        self.0.download_ended();
    }
}

/// `9.45 MiB`-style sizes, in binary units with two decimals.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS.get(unit).copied().unwrap_or("TiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(9_912_422), "9.45 MiB");
        assert_eq!(human_bytes(4_542), "4.44 KiB");
        assert_eq!(human_bytes(3 << 30), "3.00 GiB");
    }

    #[test]
    fn events_read_as_lines() {
        let event = Event::Waiting {
            dir: Path::new("data/mnist"),
        };
        assert_eq!(
            event.to_string(),
            "another fetch is writing into data/mnist; waiting for it to finish"
        );
        let event = Event::MirrorFailed {
            file: "a",
            mirror: "http://m/",
            reason: "HTTP 404 Not Found",
        };
        assert_eq!(event.to_string(), "a: http://m/ failed: HTTP 404 Not Found");
    }
}
