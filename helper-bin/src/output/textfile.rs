//! `cgroupctl stats --textfile PATH`: the metrics as a file for node_exporter's textfile
//! collector, written so that node_exporter never reads half of it and no other local user
//! reads it at all.
//!
//! - Atomic: a temporary file in the same directory (a name node_exporter skips: it reads only
//!   `*.prom`), written, synced, then renamed over PATH.
//! - Nothing followed: the directory is opened with O_NOFOLLOW and every name in it is reached
//!   through that descriptor; the temporary file is created with O_EXCL|O_NOFOLLOW, and the
//!   rename replaces whatever entry PATH is (a symlink planted there is replaced, never
//!   written through).
//! - Private: the file names every customer and its usage. It is 0644 so node_exporter reads
//!   it whatever its user, which is only safe in a directory that keeps other users out, so a
//!   directory that others may enter or write is refused, with the fix.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::exit::Usage;

/// node_exporter's textfile collector reads `*.prom` files only.
pub fn check_name(path: &Path) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.ends_with(".prom") || name.starts_with('.') {
        return Err(Usage(format!(
            "--textfile {}: the file name must end in .prom (node_exporter's textfile collector reads only those) and not start with a dot",
            path.display()
        ))
        .into());
    }
    Ok(())
}

/// Refuses a directory others may enter (they could read the file) or write (they could
/// replace it with metrics of their own making).
fn check_dir_mode(dir: &Path, mode: u32) -> Result<()> {
    if mode & 0o003 != 0 {
        bail!(
            "{} is open to every local user (mode {:04o}): the textfile names every customer and its usage, so it is written only where others have no access; \
             chmod o-rwx {} and give node_exporter's group access (chgrp prometheus {}; chmod 0750)",
            dir.display(),
            mode & 0o7777,
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` as described above.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    check_name(path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .context("--textfile names no file")?
        .to_owned();
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let raw = openat(None, dir, flags, Mode::empty())
        .with_context(|| format!("open {} (symlinks refused)", dir.display()))?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    let dirfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let st = fstat(dirfd.as_raw_fd()).with_context(|| format!("stat {}", dir.display()))?;
    check_dir_mode(dir, st.st_mode)?;

    let tmp = format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id());
    let create =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let raw = openat(
        Some(dirfd.as_raw_fd()),
        tmp.as_str(),
        create,
        Mode::from_bits_truncate(0o644),
    )
    .with_context(|| format!("create {}", dir.join(&tmp).display()))?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    let mut file = unsafe { File::from_raw_fd(raw) };
    let written = fchmod(file.as_raw_fd(), Mode::from_bits_truncate(0o644))
        .map_err(std::io::Error::from)
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all());
    drop(file);
    let done = written.map_err(anyhow::Error::from).and_then(|()| {
        renameat(
            Some(dirfd.as_raw_fd()),
            tmp.as_str(),
            Some(dirfd.as_raw_fd()),
            name.as_os_str(),
        )
        .map_err(anyhow::Error::from)
    });
    if let Err(e) = done {
        let _ = unlinkat(
            Some(dirfd.as_raw_fd()),
            tmp.as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
        return Err(e.context(format!("write {}", path.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn private_dir(tag: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("cgroupctl-textfile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o750)).unwrap();
        d
    }

    #[test]
    fn names_must_be_prom_files() {
        for bad in ["/x/metrics.txt", "/x/.hidden.prom", "/x/", "prom"] {
            let e = check_name(Path::new(bad)).unwrap_err();
            assert!(e.downcast_ref::<Usage>().is_some(), "{bad}: {e}");
        }
        check_name(Path::new(
            "/var/lib/prometheus/node-exporter/pam_cgroup.prom",
        ))
        .unwrap();
    }

    #[test]
    fn replaces_atomically_with_mode_0644_and_leaves_no_temporary() {
        let d = private_dir("ok");
        let path = d.join("pam_cgroup.prom");
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write(&path, b"new 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new 1\n");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o644);
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("pam_cgroup.prom")]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symlink_at_the_path_is_replaced_not_followed() {
        let d = private_dir("link");
        let target = d.join("victim");
        std::fs::write(&target, "keep\n").unwrap();
        let path = d.join("pam_cgroup.prom");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write(&path, b"m 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_directory_open_to_others_is_refused() {
        for mode in [0o755, 0o751, 0o1777] {
            let d = private_dir("open");
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
            let path = d.join("pam_cgroup.prom");
            let e = write(&path, b"m 1\n").unwrap_err();
            assert!(
                e.to_string().contains("open to every local user"),
                "{mode:o}: {e}"
            );
            assert!(!path.exists());
            std::fs::remove_dir_all(&d).unwrap();
        }
    }
}
