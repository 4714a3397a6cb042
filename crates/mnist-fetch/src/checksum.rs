//! SHA-256 helpers and the `SHA256SUMS` list format of `sha256sum`.

use std::fmt;

use sha2::{Digest, Sha256};

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// SHA-256 of a byte slice, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A parsed `SHA256SUMS` file: `<64 hex digits>  <name>` per line, as
/// `sha256sum` writes it (a `*` before the name, for binary mode, is
/// accepted). Blank lines and `#` comments are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sha256Sums {
    entries: Vec<(String, String)>,
}

/// A line of a `SHA256SUMS` file that is not `<hex>  <name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} is not `<64 hex digits>  <file name>`",
            self.line
        )
    }
}

impl std::error::Error for ParseError {}

impl Sha256Sums {
    /// Parses the text of a `SHA256SUMS` file.
    ///
    /// # Errors
    ///
    /// [`ParseError`] names the first line that is neither blank, a comment
    /// nor a checksum line.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.trim_start().is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = ParseError { line: index + 1 };
            let (digest, name) = line.split_once(char::is_whitespace).ok_or(bad.clone())?;
            let name = name.trim_start();
            let name = name.strip_prefix('*').unwrap_or(name);
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad);
            }
            if name.is_empty() {
                return Err(bad);
            }
            entries.push((name.to_owned(), digest.to_ascii_lowercase()));
        }
        Ok(Self { entries })
    }

    /// The listed checksum of `name` (lowercase hex), if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, digest)| digest.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b";

    #[test]
    fn parses_sha256sum_output() {
        let text = format!(
            "{A}  t10k-images-idx3-ubyte.gz\n\n# comment\n{}  *bin.gz\r\n",
            A.to_uppercase()
        );
        let sums = Sha256Sums::parse(&text);
        assert_eq!(
            sums.as_ref().map(|s| s.get("t10k-images-idx3-ubyte.gz")),
            Ok(Some(A))
        );
        assert_eq!(sums.as_ref().map(|s| s.get("bin.gz")), Ok(Some(A)));
        assert_eq!(sums.as_ref().map(|s| s.get("missing.gz")), Ok(None));
    }

    #[test]
    fn rejects_malformed_lines() {
        assert_eq!(
            Sha256Sums::parse(&format!("{A}  ok.gz\nnot a checksum line\n")),
            Err(ParseError { line: 2 })
        );
        assert_eq!(
            Sha256Sums::parse(&format!("{}  short.gz\n", &A[..63])),
            Err(ParseError { line: 1 })
        );
        assert_eq!(Sha256Sums::parse(A), Err(ParseError { line: 1 }));
    }

    #[test]
    fn hex_of_known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
