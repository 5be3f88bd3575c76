//! The bpffs mount that holds the pins. Debian does not mount it by default outside systemd's
//! early boot, so `cgroupctl init` mounts it when the directory is a plain directory.

use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sys::statfs::{statfs, BPF_FS_MAGIC};

use crate::error::{Error, IoContext, Result};
use crate::paths::BPFFS_MOUNT_LOCK;
use crate::root_lock::{self, LockFailed};

/// How long `init` waits for another `init` that is mounting bpffs (a statfs and a mount).
const MOUNT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

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
        Err(e) => Err(Error::io("statfs", path, e)),
    }
}

/// Mounts bpffs at `path` unless it is already there. Mode 0700: pins are root's business.
pub fn ensure_bpffs(path: &Path) -> Result<BpffsState> {
    if is_bpffs(path)? {
        return Ok(BpffsState::AlreadyMounted);
    }
    // Serializes check-then-mount between concurrent `cgroupctl init` runs: two mounts stacked
    // on one directory would hide the pins made in the lower one. Held for a statfs and a
    // mount, by root only.
    let lock_path = Path::new(BPFFS_MOUNT_LOCK);
    let file = root_lock::open_root_only(lock_path)?;
    let _lock = root_lock::lock(file, MOUNT_LOCK_WAIT).map_err(|failed| match failed {
        LockFailed::Flock(e) => Error::io("flock", lock_path, e),
        LockFailed::StillHeld => Error::LockHeld {
            path: lock_path.to_path_buf(),
            holder: "`cgroupctl init`",
            waited: MOUNT_LOCK_WAIT,
        },
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
    .ctx("mount bpffs at", path)?;
    Ok(BpffsState::Mounted)
}
