//! Lock files only root can open. A lock a customer can open is a lock a customer can hold:
//! every lock root takes (`cgroupctl set`, carrying fault counts) is a root-owned 0600 regular
//! file, created without following a symlink and checked after opening.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Opens (creating it 0600) the lock file `path`, refusing anything but a regular file owned
/// by root without group or other access. Its directory must be root's.
pub fn open_root_only(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ctx("open", path)?;
    let meta = file.metadata().ctx("stat", path)?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o077 != 0 {
        return Err(Error::Other(format!(
            "lock file {} must be a regular file owned by root with mode 0600",
            path.display()
        )));
    }
    Ok(file)
}
