//! The bpffs mount that holds the pins. Debian does not mount it by default outside systemd's
//! early boot, so `cgroupctl init` mounts it when the directory is a plain directory.

use std::path::Path;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, MsFlags};
use nix::sys::statfs::{statfs, BPF_FS_MAGIC};

use crate::error::{Error, IoContext, Result};
use crate::paths::BPFFS_MOUNT_LOCK;

pub use crate::paths::DEFAULT_BPFFS;

/// What `ensure_bpffs` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BpffsState {
    AlreadyMounted,
    Mounted,
}

/// Is `path` the root (or inside) of a bpffs mount?
pub fn is_bpffs(path: &Path) -> Result<bool> {
    match statfs(path) {
        Ok(fs) => Ok(fs.filesystem_type() == BPF_FS_MAGIC),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(Error::Io {
            op: "statfs",
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

/// Mounts bpffs at `path` unless it is already there. Mode 0700: pins are root's business.
pub fn ensure_bpffs(path: &Path) -> Result<BpffsState> {
    if is_bpffs(path)? {
        return Ok(BpffsState::AlreadyMounted);
    }
    // Serializes check-then-mount between concurrent `cgroupctl init` runs: two mounts stacked
    // on one directory would hide the pins made in the lower one. Opened with O_NOFOLLOW, and
    // it must be a regular file of root's.
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(BPFFS_MOUNT_LOCK)
        .ctx("open", BPFFS_MOUNT_LOCK)?;
    let meta = file.metadata().ctx("fstat", BPFFS_MOUNT_LOCK)?;
    if !meta.is_file() || std::os::unix::fs::MetadataExt::uid(&meta) != 0 {
        return Err(Error::Other(format!(
            "{BPFFS_MOUNT_LOCK} is not a regular file owned by root: refusing to use it"
        )));
    }
    let _lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
        op: "flock",
        path: BPFFS_MOUNT_LOCK.into(),
        source: e.into(),
    })?;
    // Again under the lock: another init may have mounted it meanwhile.
    if is_bpffs(path)? {
        return Ok(BpffsState::AlreadyMounted);
    }
    mount(
        Some("bpf"),
        path,
        Some("bpf"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| Error::Io {
        op: "mount bpffs at",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    Ok(BpffsState::Mounted)
}
