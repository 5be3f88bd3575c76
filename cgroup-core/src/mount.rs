//! Discovery of cgroup2 mounts from /proc/self/mountinfo.
//!
//! Unified hosts mount cgroup2 at /sys/fs/cgroup, hybrid hosts at /sys/fs/cgroup/unified, and
//! containers anywhere: the path is never assumed. Hand-written because the format is one line
//! per mount with a fixed field layout (proc(5)); the crates that parse it (procfs, mountinfo)
//! would add a dependency tree to a module loaded into sshd for ~30 lines of parsing.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::paths::MOUNTINFO;

/// One mount of the cgroup2 filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup2Mount {
    /// Where it is mounted, e.g. /sys/fs/cgroup/unified.
    pub mount_point: PathBuf,
    /// The cgroup this mount shows as its root (`/` unless mounted inside a cgroup namespace
    /// or bind-mounted from a subtree).
    pub root: PathBuf,
}

/// Unescapes the octal escapes (`\040` for space, `\011`, `\012`, `\134`) the kernel uses in
/// mountinfo path fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text and returns every cgroup2 mount, in order. Malformed lines are
/// skipped: the file is the kernel's, and one odd line must not hide the others.
pub fn parse_cgroup2_mounts(text: &str) -> Vec<Cgroup2Mount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut fs_fields = right.split(' ');
        if fs_fields.next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = left.split(' ').collect();
        if fields.len() < 5 {
            continue;
        }
        mounts.push(Cgroup2Mount {
            root: PathBuf::from(unescape(fields[3])),
            mount_point: PathBuf::from(unescape(fields[4])),
        });
    }
    mounts
}

/// Reads /proc/self/mountinfo and returns the cgroup2 mounts.
pub fn cgroup2_mounts() -> Result<Vec<Cgroup2Mount>> {
    let text = std::fs::read_to_string(MOUNTINFO).ctx("read", MOUNTINFO)?;
    Ok(parse_cgroup2_mounts(&text))
}

/// The cgroup2 mount a path lies in (the longest mount point that is a prefix of it).
pub fn mount_containing<'a>(mounts: &'a [Cgroup2Mount], path: &Path) -> Option<&'a Cgroup2Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
}

/// The first cgroup2 mount, or a clear error when there is none.
pub fn primary_cgroup2() -> Result<Cgroup2Mount> {
    cgroup2_mounts()?
        .into_iter()
        .next()
        .ok_or_else(|| Error::NoCgroup2 {
            mountinfo: PathBuf::from(MOUNTINFO),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_host_finds_unified() {
        let mounts = parse_cgroup2_mounts(HYBRID);
        assert_eq!(
            mounts,
            vec![Cgroup2Mount {
                mount_point: "/sys/fs/cgroup/unified".into(),
                root: "/".into()
            }]
        );
    }

    #[test]
    fn unified_host_with_optional_fields() {
        let text = "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let mounts = parse_cgroup2_mounts(text);
        assert_eq!(mounts[0].mount_point, PathBuf::from("/sys/fs/cgroup"));
    }

    #[test]
    fn escaped_mount_point() {
        let text = "1 2 0:1 / /mnt/my\\040cg rw - cgroup2 none rw\n";
        assert_eq!(
            parse_cgroup2_mounts(text)[0].mount_point,
            PathBuf::from("/mnt/my cg")
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text =
            "garbage\n1 2 - cgroup2\n\n - cgroup2 x\n41 31 0:38 / /cg rw - cgroup2 cgroup2 rw\n";
        let mounts = parse_cgroup2_mounts(text);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_point, PathBuf::from("/cg"));
    }

    #[test]
    fn none_when_only_v1() {
        let text = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert!(parse_cgroup2_mounts(text).is_empty());
    }

    #[test]
    fn longest_prefix_wins() {
        let mounts = vec![
            Cgroup2Mount {
                mount_point: "/sys/fs/cgroup".into(),
                root: "/".into(),
            },
            Cgroup2Mount {
                mount_point: "/sys/fs/cgroup/unified".into(),
                root: "/".into(),
            },
        ];
        let m = mount_containing(&mounts, Path::new("/sys/fs/cgroup/unified/x")).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert!(mount_containing(&mounts, Path::new("/etc")).is_none());
    }
}
