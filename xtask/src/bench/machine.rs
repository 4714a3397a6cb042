//! The state of the machine around the runs: load average and how the
//! training images are mapped.

use std::fs;
use std::path::Path;

/// `line` without its first `n` whitespace-separated fields and the
/// whitespace around them; `None` if nothing is left.
pub(super) fn after_fields(line: &str, n: usize) -> Option<&str> {
    let mut rest = line.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace)?;
        rest = rest.get(end..)?.trim_start();
    }
    Some(rest.trim_end()).filter(|r| !r.is_empty())
}

/// How much of a file a memory map of it gets in 2 MiB pages.
///
/// That depends on the page cache's folios, that is on how the file was
/// written (see `cargo xtask fetch-data`), and it changes the trainer's
/// time by 7% to 14% here: so each bench says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HugePages {
    /// KiB of the map in 2 MiB pages (`FilePmdMapped`).
    pub huge_kib: u64,
    /// KiB of the map (`Size`).
    pub size_kib: u64,
}

impl HugePages {
    /// Maps `path` as the trainer does (through `mnist-idx`, which asks for
    /// huge pages), touches every page, and reads what the kernel made of
    /// it. `None` where `/proc/self/smaps` is missing or the file does not
    /// open.
    pub fn of(path: &Path) -> Option<Self> {
        let file = mnist_idx::IdxFile::open(path).ok()?;
        if !file.is_mapped() {
            return None;
        }
        let data = file.data();
        let touched = data
            .iter()
            .step_by(4096)
            .fold(0u8, |acc, &b| acc.wrapping_add(b));
        std::hint::black_box(touched);
        let smaps = fs::read_to_string("/proc/self/smaps").ok()?;
        let path = fs::canonicalize(path).ok()?;
        Self::parse(&smaps, &path)
    }

    /// The figures of the mappings of `path` in the text of a
    /// `/proc/PID/smaps`, summed over its mappings.
    pub fn parse(smaps: &str, path: &Path) -> Option<Self> {
        let mut found = None::<Self>;
        let mut inside = false;
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or_default();
            if !first.ends_with(':') {
                // A mapping's header: `start-end perms offset dev inode
                // path`, the path possibly with spaces.
                inside = after_fields(line, 5).is_some_and(|name| Path::new(name) == path);
                if inside && found.is_none() {
                    found = Some(Self {
                        huge_kib: 0,
                        size_kib: 0,
                    });
                }
                continue;
            }
            let (Some(sum), true) = (found.as_mut(), inside) else {
                continue;
            };
            let kib = fields
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            match first {
                "Size:" => sum.size_kib += kib,
                "FilePmdMapped:" => sum.huge_kib += kib,
                _ => {}
            }
        }
        found
    }

    /// The line `bench` prints, with advice when under half is in huge
    /// pages.
    pub fn describe(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let mut line = format!(
            "training images: {:.0} of {:.0} MiB mapped with 2 MiB pages",
            mib(self.huge_kib),
            mib(self.size_kib)
        );
        if self.huge_kib * 2 < self.size_kib {
            line.push_str(
                " (the page cache holds the file in small folios, as files written in small pieces are; \
                 `cargo xtask fetch-data --force` rewrites it in 2 MiB pieces, which took 6% to 12% off the training time here)",
            );
        }
        line
    }
}

pub(super) fn loadavg() -> Option<String> {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// The CPU's model name: `/proc/cpuinfo`'s `model name`, else `lscpu`'s
/// `Model name`; `None` where neither tells.
pub fn cpu_model() -> Option<String> {
    if let Some(name) = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| model_name(&t))
    {
        return Some(name);
    }
    let out = std::process::Command::new("lscpu")
        .env("LC_ALL", "C")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    model_name(&String::from_utf8_lossy(&out.stdout))
}

/// The first `model name` (any case) value of `/proc/cpuinfo` or `lscpu`
/// text.
pub fn model_name(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let value = value.trim();
        (key.trim().eq_ignore_ascii_case("model name") && !value.is_empty())
            .then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_are_read_from_the_mapping_of_the_file() {
        let smaps = "\
55d0c0000000-55d0c0001000 r--p 00000000 fd:01 42 /usr/bin/xtask
Size:                  4 kB
FilePmdMapped:         0 kB
7f0000000000-7f0002cdc000 r--s 00000000 fd:01 1234 /data/my mnist/train-images-idx3-ubyte
Size:              45940 kB
Rss:               45940 kB
FilePmdMapped:     45056 kB
VmFlags: rd sh mr mw me ms hg
7f0003000000-7f0003001000 rw-p 00000000 00:00 0
Size:                  4 kB
FilePmdMapped:      2048 kB
";
        let file = Path::new("/data/my mnist/train-images-idx3-ubyte");
        assert_eq!(
            HugePages::parse(smaps, file),
            Some(HugePages {
                huge_kib: 45056,
                size_kib: 45940
            })
        );
        assert_eq!(HugePages::parse(smaps, Path::new("/data/other")), None);
        assert_eq!(after_fields("a b  c ", 2), Some("c"));
        assert_eq!(after_fields("a b", 2), None);
    }

    #[test]
    fn small_pages_come_with_advice() {
        let huge = HugePages {
            huge_kib: 45056,
            size_kib: 45940,
        };
        assert_eq!(
            huge.describe(),
            "training images: 44 of 45 MiB mapped with 2 MiB pages"
        );
        let small = HugePages {
            huge_kib: 0,
            ..huge
        };
        assert!(small
            .describe()
            .contains("`cargo xtask fetch-data --force` rewrites it"));
    }

    #[test]
    fn reads_the_cpu_model_name() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 17\nmodel name\t: AMD EPYC 9R14\n";
        assert_eq!(model_name(cpuinfo), Some("AMD EPYC 9R14".into()));
        let lscpu = "Vendor ID:   ARM\nModel name:  Neoverse-N1\nModel:  1\n";
        assert_eq!(model_name(lscpu), Some("Neoverse-N1".into()));
        assert_eq!(model_name("model name\t:\nmodel: 3\n"), None);
    }
}
