//! Lock files only root can open, and the one way root takes a lock. A lock a customer can
//! open is a lock a customer can hold: every lock root takes (`cgroupctl set`, a login
//! counting its user's sessions, carrying fault counts, mounting bpffs) is a root-owned 0600
//! regular file, created without following a symlink and checked after opening (here, or
//! fd-relative in `crate::state_dir::StateDir::lock`), then taken with `lock`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, IoContext, Result};

/// How often a waiting `lock` tries again. The locks are held for milliseconds.
const RETRY: Duration = Duration::from_millis(5);

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
        return Err(Error::UnsafeLockFile {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

/// Why `lock` did not take the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFailed {
    /// Another process still held it when the wait ran out.
    StillHeld,
    /// flock(2) itself failed.
    Flock(Errno),
}

/// Takes an exclusive flock on an opened root-only lock file, waiting at most `wait`: a
/// holder that never lets go is reported, never waited for forever. Held until the returned
/// value drops.
pub fn lock(file: File, wait: Duration) -> std::result::Result<Flock<File>, LockFailed> {
    let deadline = Instant::now() + wait;
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((back, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = back;
                std::thread::sleep(RETRY);
            }
            Err((_, Errno::EWOULDBLOCK)) => return Err(LockFailed::StillHeld),
            Err((_, e)) => return Err(LockFailed::Flock(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_after_the_wait_and_taken_once_released() {
        let dir = std::env::temp_dir().join(format!("root-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.lock");
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let held = lock(open(), Duration::ZERO).unwrap();
        let started = Instant::now();
        let wait = Duration::from_millis(30);
        assert_eq!(lock(open(), wait).err(), Some(LockFailed::StillHeld));
        assert!(started.elapsed() >= wait);
        drop(held);
        assert!(lock(open(), Duration::ZERO).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
