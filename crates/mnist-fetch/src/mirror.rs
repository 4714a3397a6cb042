//! Where the `.gz` files come from: an HTTP(S) base URL or a local directory.

use std::error::Error as _;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use crate::checksum::Sha256Sums;

/// Name of the optional checksum list a mirror may carry next to the files.
pub const SHA256SUMS: &str = "SHA256SUMS";

/// A `SHA256SUMS` larger than this is not a checksum list of four files.
const SHA256SUMS_LIMIT: u64 = 64 * 1024;

/// One place that holds the `.gz` files of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// An `http://` or `https://` base URL, always ending in `/`.
    Http(String),
    /// A local directory (given as a path or a `file://` URL).
    Dir(PathBuf),
}

/// A mirror argument that is neither an HTTP(S) URL nor a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The argument as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid mirror `{}`: {}", self.input, self.reason)
    }
}

impl std::error::Error for ParseError {}

impl Mirror {
    /// Reads a mirror argument: `http(s)://host/path/`, `file:///path` or a
    /// plain directory path.
    ///
    /// # Errors
    ///
    /// [`ParseError`] for an empty argument, another URL scheme, or a
    /// `file://` URL naming a remote host.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let error = |reason| ParseError {
            input: input.to_owned(),
            reason,
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(error("empty"));
        }
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Ok(Self::Dir(PathBuf::from(trimmed)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => {
                if rest.is_empty() || rest.starts_with('/') {
                    return Err(error("the URL has no host"));
                }
                let mut base = trimmed.to_owned();
                if !base.ends_with('/') {
                    base.push('/');
                }
                Ok(Self::Http(base))
            }
            "file" => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(error("a file:// URL must name an absolute local path"));
                }
                Ok(Self::Dir(PathBuf::from(path)))
            }
            _ => Err(error(
                "expected an http:// or https:// URL, a file:// URL or a directory",
            )),
        }
    }

    /// Where `name` lives on this mirror, for messages.
    pub fn location(&self, name: &str) -> String {
        match self {
            Self::Http(base) => format!("{base}{name}"),
            Self::Dir(dir) => dir.join(name).display().to_string(),
        }
    }

    /// Opens `name` for reading.
    pub(crate) fn open(&self, name: &str, client: &Client) -> Result<Source, Failure> {
        match self {
            Self::Http(base) => client.get(&format!("{base}{name}")),
            Self::Dir(dir) => {
                if !dir.is_dir() {
                    return Err(Failure::mirror(format!(
                        "{} is not a directory",
                        dir.display()
                    )));
                }
                let path = dir.join(name);
                let file = File::open(&path).map_err(|e| {
                    let message = format!("cannot open {}: {e}", path.display());
                    if e.kind() == io::ErrorKind::NotFound {
                        Failure::missing(message)
                    } else {
                        Failure::file(message)
                    }
                })?;
                let len = file.metadata().ok().map(|m| m.len());
                Ok(Source {
                    reader: Box::new(file),
                    len,
                })
            }
        }
    }

    /// The mirror's own checksum list, `None` if it has none.
    pub(crate) fn sha256sums(&self, client: &Client) -> Result<Option<Sha256Sums>, Failure> {
        let source = match self.open(SHA256SUMS, client) {
            Ok(source) => source,
            Err(failure) if failure.scope == Scope::Missing => return Ok(None),
            Err(failure) if failure.scope == Scope::Mirror => return Err(failure),
            Err(failure) => {
                return Err(Failure::file(format!("{SHA256SUMS}: {}", failure.message)))
            }
        };
        let mut bytes = Vec::new();
        source
            .reader
            .take(SHA256SUMS_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| client.read_failure(SHA256SUMS, &e))?;
        if bytes.len() as u64 > SHA256SUMS_LIMIT {
            return Err(Failure::file(format!(
                "{SHA256SUMS} is larger than {SHA256SUMS_LIMIT} bytes"
            )));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| Failure::file(format!("{SHA256SUMS} is not UTF-8 text")))?;
        Sha256Sums::parse(&text)
            .map(Some)
            .map_err(|e| Failure::file(format!("{SHA256SUMS}: {e}")))
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(base) => f.write_str(base),
            Self::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// An open file on a mirror.
pub(crate) struct Source {
    pub(crate) reader: Box<dyn Read + Send>,
    /// The announced length (`Content-Length`, or the file size).
    pub(crate) len: Option<u64>,
}

/// How far a failure reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The mirror does not have the file.
    Missing,
    /// Something is wrong with this file on this mirror.
    File,
    /// The mirror cannot be reached (refused, timed out, no directory): it is
    /// not asked again during this run.
    Mirror,
    /// The problem is on our side (the output folder); no mirror can help.
    Local,
}

/// Why one attempt failed, as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) scope: Scope,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn missing(message: String) -> Self {
        Self {
            scope: Scope::Missing,
            message,
        }
    }

    pub(crate) fn file(message: String) -> Self {
        Self {
            scope: Scope::File,
            message,
        }
    }

    pub(crate) fn mirror(message: String) -> Self {
        Self {
            scope: Scope::Mirror,
            message,
        }
    }

    pub(crate) fn local(message: String) -> Self {
        Self {
            scope: Scope::Local,
            message,
        }
    }
}

/// The HTTP agent, with the timeouts that go into messages.
#[derive(Debug)]
pub(crate) struct Client {
    agent: ureq::Agent,
    timeout: Duration,
}

impl Client {
    /// An agent whose connect and per-read timeouts are `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout)
            .timeout_read(timeout)
            .timeout_write(timeout)
            .user_agent(concat!("mnist-fetch/", env!("CARGO_PKG_VERSION")))
            .build();
        Self { agent, timeout }
    }

    fn get(&self, url: &str) -> Result<Source, Failure> {
        // The files are gzip already; `identity` keeps a server from
        // re-encoding them and the client from transparently decoding them,
        // which would defeat the size and checksum checks.
        match self
            .agent
            .get(url)
            .set("Accept-Encoding", "identity")
            .call()
        {
            Ok(response) => {
                let len = response
                    .header("Content-Length")
                    .and_then(|v| v.trim().parse::<u64>().ok());
                Ok(Source {
                    reader: Box::new(response.into_reader()),
                    len,
                })
            }
            Err(ureq::Error::Status(code, response)) => {
                let message = format!("HTTP {code} {}", response.status_text());
                // S3 answers 403 for a missing key when listing is not allowed.
                if matches!(code, 403 | 404 | 410) {
                    Err(Failure::missing(message))
                } else {
                    Err(Failure::file(message))
                }
            }
            Err(ureq::Error::Transport(transport)) => {
                Err(Failure::mirror(self.describe_transport(&transport)))
            }
        }
    }

    fn describe_transport(&self, transport: &ureq::Transport) -> String {
        if is_timeout(transport) {
            return format!("timed out after {} s", self.timeout.as_secs_f32());
        }
        let mut message = transport.kind().to_string().to_lowercase();
        if let Some(detail) = transport.message() {
            message.push_str(": ");
            message.push_str(detail);
        }
        if let Some(source) = transport.source() {
            message.push_str(": ");
            message.push_str(&source.to_string());
        }
        message
    }

    /// Classifies an error while reading the body of `name`.
    pub(crate) fn read_failure(&self, name: &str, error: &io::Error) -> Failure {
        match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Failure::mirror(format!(
                "timed out after {} s while reading {name}",
                self.timeout.as_secs_f32()
            )),
            io::ErrorKind::UnexpectedEof => {
                Failure::file(format!("connection closed before the end of {name}"))
            }
            _ => Failure::file(format!("error reading {name}: {error}")),
        }
    }
}

fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<io::Error>() {
            if matches!(
                io.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) {
                return true;
            }
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_directories() {
        assert_eq!(
            Mirror::parse("https://example.org/mnist"),
            Ok(Mirror::Http("https://example.org/mnist/".to_owned()))
        );
        assert_eq!(
            Mirror::parse("HTTP://example.org/"),
            Ok(Mirror::Http("HTTP://example.org/".to_owned()))
        );
        assert_eq!(
            Mirror::parse("file:///srv/mnist"),
            Ok(Mirror::Dir(PathBuf::from("/srv/mnist")))
        );
        assert_eq!(
            Mirror::parse("file://localhost/srv/mnist"),
            Ok(Mirror::Dir(PathBuf::from("/srv/mnist")))
        );
        assert_eq!(
            Mirror::parse("../shared/mnist"),
            Ok(Mirror::Dir(PathBuf::from("../shared/mnist")))
        );
    }

    #[test]
    fn rejects_other_schemes() {
        for bad in ["", "  ", "ftp://example.org/", "https://", "file://host/x"] {
            assert!(Mirror::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn locations_join_the_name() {
        let http = Mirror::Http("http://h/m/".to_owned());
        assert_eq!(http.location("a.gz"), "http://h/m/a.gz");
        let dir = Mirror::Dir(PathBuf::from("/m"));
        assert_eq!(dir.location("a.gz"), "/m/a.gz");
    }
}
