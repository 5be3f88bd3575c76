//! Where the links of a tree are pinned: `<bpffs>/pam_cgroup/<escaped tree root>/<hook>`.
//! One directory per tree root, so several trees (and parallel tests) never share pins.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Directory under the bpffs mount that holds every tree's pin directory.
pub const PIN_BASE: &str = "pam_cgroup";

/// A file name for a tree root, escaped like `systemd-escape --path`: the leading `/` is
/// dropped, `/` becomes `-`, and every byte outside `[A-Za-z0-9_.]` (including `-` itself and
/// a leading `.`) becomes `\xNN`. Injective, so two roots never share a pin directory.
pub fn pin_dir_name(tree_root: &Path) -> Result<String> {
    let bad = |reason| Error::BadRoot {
        root: tree_root.to_path_buf(),
        reason,
    };
    let text = tree_root
        .to_str()
        .ok_or_else(|| bad("must be valid UTF-8 to name its bpffs pin directory"))?;
    let trimmed = text.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(bad("must not be '/'"));
    }
    let mut out = String::with_capacity(trimmed.len());
    for byte in trimmed.bytes() {
        match byte {
            b'/' => out.push('-'),
            // bpffs refuses every name with a dot in it (EPERM: dots are reserved for its own
            // files), so unlike systemd-escape a dot is always escaped.
            b if b.is_ascii_alphanumeric() || b == b'_' => out.push(char::from(b)),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    // NAME_MAX: a longer name cannot be a directory in bpffs.
    if out.len() > 255 {
        return Err(bad(
            "is too long to name its bpffs pin directory (255 bytes escaped)",
        ));
    }
    Ok(out)
}

/// The pin directory of a tree under the bpffs mounted at `bpffs`.
pub fn pin_dir(bpffs: &Path, tree_root: &Path) -> Result<PathBuf> {
    Ok(bpffs.join(PIN_BASE).join(pin_dir_name(tree_root)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_style() {
        assert_eq!(
            pin_dir_name(Path::new("/sys/fs/cgroup/unified/pam_cgroup")).unwrap(),
            "sys-fs-cgroup-unified-pam_cgroup"
        );
    }

    #[test]
    fn dashes_are_escaped_so_names_stay_distinct() {
        let a = pin_dir_name(Path::new("/cg/a-b")).unwrap();
        let b = pin_dir_name(Path::new("/cg/a/b")).unwrap();
        assert_eq!(a, "cg-a\\x2db");
        assert_eq!(b, "cg-a-b");
        assert_ne!(a, b);
    }

    #[test]
    fn odd_bytes_and_root() {
        assert_eq!(
            pin_dir_name(Path::new("/x/.h y")).unwrap(),
            "x-\\x2eh\\x20y"
        );
        // The packaged tree root: no dot may reach bpffs.
        assert_eq!(
            pin_dir_name(Path::new(
                "/sys/fs/cgroup/system.slice/pam-cgroup.service/tree"
            ))
            .unwrap(),
            "sys-fs-cgroup-system\\x2eslice-pam\\x2dcgroup\\x2eservice-tree"
        );
        assert_eq!(pin_dir_name(Path::new("/.x")).unwrap(), "\\x2ex");
        assert!(pin_dir_name(Path::new("/")).is_err());
        let long = format!("/{}", "a".repeat(300));
        assert!(pin_dir_name(Path::new(&long)).is_err());
    }

    #[test]
    fn dir_is_under_the_base() {
        let d = pin_dir(Path::new("/sys/fs/bpf"), Path::new("/cg/t")).unwrap();
        assert_eq!(d, PathBuf::from("/sys/fs/bpf/pam_cgroup/cg-t"));
    }
}
