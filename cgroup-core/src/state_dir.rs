//! pam_cgroup's root-only state directory (`/var/lib/pam_cgroup`, root:root 0700): what must
//! outlive a broken config or a removed cgroup (the last valid policy) is kept here, out of
//! every customer's reach.
//!
//! Every access goes through a directory fd opened with O_NOFOLLOW and checked (root-owned,
//! no access for group or others), then *at() calls with O_NOFOLLOW: a symlink planted
//! anywhere on the way is refused, never followed. Files are written whole under a temporary
//! name and renamed into place, so a reader sees the old file or the new one, never half.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::error::StateError;

/// Larger state files are refused: ours are a few hundred bytes.
const MAX_STATE_BYTES: u64 = 64 * 1024;

fn err(path: &Path, reason: impl Into<String>) -> StateError {
    StateError {
        path: path.to_path_buf(),
        reason: reason.into(),
        errno: None,
    }
}

fn os_err(path: &Path, reason: impl Into<String>, errno: nix::errno::Errno) -> StateError {
    StateError {
        errno: Some(errno as i32),
        ..err(path, reason)
    }
}

fn io_err(path: &Path, reason: impl Into<String>, e: &std::io::Error) -> StateError {
    StateError {
        errno: e.raw_os_error(),
        ..err(path, reason)
    }
}

/// An opened and checked state directory.
pub struct StateDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl StateDir {
    /// Opens `dir` (creating it 0700 when `create`), refusing anything but a root-owned
    /// directory without group or other access. `Ok(None)`: it does not exist.
    pub fn open(dir: &Path, create: bool) -> Result<Option<StateDir>, StateError> {
        let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
        // Opened first: it exists at every login but the first, so the mkdir (and its EEXIST)
        // is paid only when it does not.
        let mut opened = openat(None, dir, flags, Mode::empty());
        if create && opened == Err(nix::errno::Errno::ENOENT) {
            use std::os::unix::fs::DirBuilderExt;
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(dir, format!("cannot create: {e}"), &e)),
            }
            opened = openat(None, dir, flags, Mode::empty());
        }
        let raw = match opened {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => {
                return Err(os_err(
                    dir,
                    format!("cannot open (symlinks refused): {e}"),
                    e,
                ))
            }
        };
        // SAFETY: openat just returned this fd and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // fstat on the descriptor itself (no dup, no File): this runs on every login.
        let meta = nix::sys::stat::fstat(fd.as_raw_fd())
            .map_err(|e| os_err(dir, format!("cannot stat: {e}"), e))?;
        check_root_only(dir, meta.st_uid, meta.st_mode)?;
        Ok(Some(StateDir {
            path: dir.to_path_buf(),
            fd,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a root-only regular file of the directory. `Ok(None)`: it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.read_at_most(name, MAX_STATE_BYTES)
    }

    /// `read`, for files up to `max` bytes (kept copies of config files).
    pub fn read_at_most(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.path.join(name);
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let raw = match openat(Some(self.fd.as_raw_fd()), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => {
                return Err(os_err(
                    &path,
                    format!("cannot open (symlinks refused): {e}"),
                    e,
                ))
            }
        };
        // SAFETY: openat just returned this fd and nothing else owns it.
        let file = unsafe { File::from_raw_fd(raw) };
        let meta = file
            .metadata()
            .map_err(|e| io_err(&path, format!("cannot stat: {e}"), &e))?;
        if !meta.is_file() {
            return Err(err(&path, "is not a regular file"));
        }
        check_root_only(&path, meta.uid(), meta.mode())?;
        // Sized from the fstat: one read(2) takes the file, one more sees its end.
        let mut bytes = Vec::with_capacity(
            usize::try_from(meta.len().min(max))
                .unwrap_or(0)
                .saturating_add(1),
        );
        (&file)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_err(&path, format!("cannot read: {e}"), &e))?;
        if bytes.len() as u64 > max {
            return Err(err(&path, "is too large"));
        }
        Ok(Some(bytes))
    }

    /// Takes an exclusive flock on the root-only lock file `name` (created 0600, never through
    /// a symlink), waiting at most `wait`. The lock is held until the returned value drops.
    pub fn lock(
        &self,
        name: &str,
        wait: std::time::Duration,
    ) -> Result<nix::fcntl::Flock<File>, StateError> {
        use crate::root_lock::LockFailed;
        let path = self.path.join(name);
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let raw = openat(
            Some(self.fd.as_raw_fd()),
            name,
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| err(&path, format!("cannot open (symlinks refused): {e}")))?;
        // SAFETY: openat just returned this fd and nothing else owns it.
        let file = unsafe { File::from_raw_fd(raw) };
        let meta = file
            .metadata()
            .map_err(|e| err(&path, format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(err(&path, "is not a regular file"));
        }
        check_root_only(&path, meta.uid(), meta.mode())?;
        crate::root_lock::lock(file, wait).map_err(|failed| match failed {
            LockFailed::StillHeld => {
                err(&path, format!("still locked after {} ms", wait.as_millis()))
            }
            LockFailed::Flock(e) => err(&path, format!("flock: {e}")),
        })
    }

    /// Modification time (seconds, nanoseconds) of a file, without following a symlink.
    pub fn mtime(&self, name: &str) -> Option<(i64, i64)> {
        let st = nix::sys::stat::fstatat(
            Some(self.fd.as_raw_fd()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok()?;
        Some((st.st_mtime, st.st_mtime_nsec))
    }

    /// A root-only subdirectory (created 0700 when `create`), opened and checked like the
    /// directory itself, never through a symlink. `Ok(None)`: it does not exist.
    pub fn subdir(&self, name: &str, create: bool) -> Result<Option<StateDir>, StateError> {
        let path = self.path.join(name);
        if create {
            match nix::sys::stat::mkdirat(
                Some(self.fd.as_raw_fd()),
                name,
                Mode::from_bits_truncate(0o700),
            ) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(err(&path, format!("cannot create: {e}"))),
            }
        }
        let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
        let raw = match openat(Some(self.fd.as_raw_fd()), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(err(&path, format!("cannot open (symlinks refused): {e}"))),
        };
        // SAFETY: openat just returned this fd and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let meta = nix::sys::stat::fstat(fd.as_raw_fd())
            .map_err(|e| err(&path, format!("cannot stat: {e}")))?;
        check_root_only(&path, meta.st_uid, meta.st_mode)?;
        Ok(Some(StateDir { path, fd }))
    }

    /// Replaces `name` with `bytes` (0600), atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        self.write_stamped(name, bytes, None)
    }

    /// `write`, with the file's modification time set to `mtime` (seconds, nanoseconds)
    /// before it is renamed into place: a reader that finds the file finds its stamp too.
    pub fn write_stamped(
        &self,
        name: &str,
        bytes: &[u8],
        mtime: Option<(i64, i64)>,
    ) -> Result<(), StateError> {
        let path = self.path.join(name);
        let (tmp, written) = self.write_temp(name, "", bytes, mtime)?;
        let renamed = written.map_err(|e| e.to_string()).and_then(|()| {
            renameat(
                Some(self.fd.as_raw_fd()),
                tmp.as_str(),
                Some(self.fd.as_raw_fd()),
                name,
            )
            .map_err(|e| e.to_string())
        });
        if let Err(reason) = renamed {
            let _ = unlinkat(
                Some(self.fd.as_raw_fd()),
                tmp.as_str(),
                UnlinkatFlags::NoRemoveDir,
            );
            return Err(err(&path, format!("cannot write: {reason}")));
        }
        Ok(())
    }

    /// Checks a file of the directory without opening it (fstatat, no symlink followed): a
    /// root-only regular file. `Ok(false)`: it does not exist. For files another part of this
    /// process may hold open with POSIX record locks (SQLite's database and its -shm): closing
    /// any descriptor of a file drops every such lock the process holds on it (fcntl(2)), so
    /// they are never opened here.
    pub fn check_file(&self, name: &str) -> Result<bool, StateError> {
        let path = self.path.join(name);
        let st = match nix::sys::stat::fstatat(
            Some(self.fd.as_raw_fd()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(os_err(&path, format!("cannot stat: {e}"), e)),
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(err(&path, "is not a regular file (symlinks refused)"));
        }
        check_root_only(&path, st.st_uid, st.st_mode)?;
        Ok(true)
    }

    /// Creates an empty root-only file (0600) unless `name` exists; never opens an existing
    /// file (see `check_file`), never through a symlink. Whether it created it.
    pub fn create_empty(&self, name: &str) -> Result<bool, StateError> {
        let path = self.path.join(name);
        let flags = OFlag::O_RDWR
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NONBLOCK;
        match openat(
            Some(self.fd.as_raw_fd()),
            name,
            flags,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(raw) => {
                // SAFETY: openat just returned this fd and nothing else owns it. A new inode:
                // no lock of this process can be on it yet.
                drop(unsafe { OwnedFd::from_raw_fd(raw) });
                Ok(true)
            }
            Err(nix::errno::Errno::EEXIST) => Ok(false),
            Err(e) => Err(os_err(&path, format!("cannot create: {e}"), e)),
        }
    }

    /// Opens a root-only regular file of the directory for reading and writing (created 0600
    /// when `create`), never through a symlink. `Ok(None)`: it does not exist. For files a
    /// caller keeps open and bounds itself (the event history), unlike `read`/`write`.
    pub fn open_file(&self, name: &str, create: bool) -> Result<Option<File>, StateError> {
        let path = self.path.join(name);
        let mut flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        if create {
            flags |= OFlag::O_CREAT;
        }
        let raw = match openat(
            Some(self.fd.as_raw_fd()),
            name,
            flags,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) if !create => return Ok(None),
            Err(e) => return Err(err(&path, format!("cannot open (symlinks refused): {e}"))),
        };
        // SAFETY: openat just returned this fd and nothing else owns it.
        let file = unsafe { File::from_raw_fd(raw) };
        let meta = file
            .metadata()
            .map_err(|e| err(&path, format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(err(&path, "is not a regular file"));
        }
        check_root_only(&path, meta.uid(), meta.mode())?;
        Ok(Some(file))
    }

    /// Creates `name` with `bytes` (0600) unless it exists: written whole under a temporary
    /// name, then linked into place, which fails if `name` exists. Of several concurrent
    /// creators exactly one wins (`true`); a loser reads the winner's file, never half of it.
    pub fn create_new(&self, name: &str, bytes: &[u8]) -> Result<bool, StateError> {
        let path = self.path.join(name);
        let (tmp, written) = self.write_temp(name, ".new", bytes, None)?;
        let linked = match written {
            Err(e) => Err(io_err(&path, format!("cannot write {tmp}: {e}"), &e)),
            Ok(()) => match nix::unistd::linkat(
                Some(self.fd.as_raw_fd()),
                tmp.as_str(),
                Some(self.fd.as_raw_fd()),
                name,
                // No AT_SYMLINK_FOLLOW: a symlink is linked, never followed.
                nix::fcntl::AtFlags::empty(),
            ) {
                Ok(()) => Ok(true),
                Err(nix::errno::Errno::EEXIST) => Ok(false),
                Err(e) => Err(os_err(
                    &path,
                    format!("cannot link {tmp} into place: {e}"),
                    e,
                )),
            },
        };
        let _ = unlinkat(
            Some(self.fd.as_raw_fd()),
            tmp.as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
        linked
    }

    /// Writes `bytes` to a fresh temporary file (0600) for `name`, its modification time set to
    /// `mtime` when given: its name, and whether the write and sync worked (the caller removes
    /// it either way once done).
    fn write_temp(
        &self,
        name: &str,
        kind: &str,
        bytes: &[u8],
        mtime: Option<(i64, i64)>,
    ) -> Result<(String, std::io::Result<()>), StateError> {
        let tmp = format!(".{name}{kind}.{}.{}", std::process::id(), now_nanos());
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let raw = openat(
            Some(self.fd.as_raw_fd()),
            tmp.as_str(),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| {
            os_err(
                &self.path.join(name),
                format!("cannot create {tmp}: {e}"),
                e,
            )
        })?;
        // SAFETY: openat just returned this fd and nothing else owns it.
        let mut file = unsafe { File::from_raw_fd(raw) };
        let written = file
            .write_all(bytes)
            .and_then(|()| match mtime {
                Some((sec, nsec)) => {
                    let at = nix::sys::time::TimeSpec::new(sec, nsec);
                    nix::sys::stat::futimens(file.as_raw_fd(), &at, &at).map_err(Into::into)
                }
                None => Ok(()),
            })
            .and_then(|()| file.sync_all());
        Ok((tmp, written))
    }

    /// The names of the directory's entries (not `.` and `..`).
    pub fn names(&self) -> Result<Vec<String>, StateError> {
        let mut dir = nix::dir::Dir::openat(
            Some(self.fd.as_raw_fd()),
            ".",
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(&self.path, format!("cannot list: {e}")))?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| err(&self.path, format!("cannot list: {e}")))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Removes the empty subdirectory `name`; gone already is fine.
    pub fn remove_dir(&self, name: &str) -> Result<(), StateError> {
        match unlinkat(Some(self.fd.as_raw_fd()), name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(err(&self.path.join(name), format!("cannot remove: {e}"))),
        }
    }

    /// Removes `name`; gone already is fine.
    pub fn remove(&self, name: &str) -> Result<(), StateError> {
        match unlinkat(Some(self.fd.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(err(&self.path.join(name), format!("cannot remove: {e}"))),
        }
    }
}

/// Sub-second part of now: with the pid, a temporary name no other writer uses.
fn now_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

fn check_root_only(path: &Path, uid: u32, mode: u32) -> Result<(), StateError> {
    if uid != 0 {
        return Err(err(path, format!("owned by uid {uid}, not root: refused")));
    }
    if mode & 0o077 != 0 {
        return Err(err(
            path,
            format!(
                "mode {:o} gives access to group or others: refused (chmod go= {})",
                mode & 0o7777,
                path.display()
            ),
        ));
    }
    Ok(())
}

/// A file name for a path (`/etc/pam_cgroup/config.toml` -> `%2Fetc%2Fpam_cgroup%2Fconfig.toml`):
/// bytes outside `[A-Za-z0-9._-]` as %XX. `None` when the name would be too long.
pub fn escape_path(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    (out.len() <= 200).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_paths_are_one_component() {
        assert_eq!(
            escape_path(Path::new("/etc/pam_cgroup/config.toml")).unwrap(),
            "%2Fetc%2Fpam_cgroup%2Fconfig.toml"
        );
        assert_eq!(escape_path(Path::new("/a b/..")).unwrap(), "%2Fa%20b%2F..");
        assert!(escape_path(Path::new(&"x".repeat(300))).is_none());
    }

    #[test]
    fn write_read_and_refusals() {
        if !nix::unistd::geteuid().is_root() {
            return; // ownership checks need root-owned files
        }
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        let state = StateDir::open(&dir, true).unwrap().unwrap();
        state.write("f", b"hello").unwrap();
        assert_eq!(state.read("f").unwrap().unwrap(), b"hello");
        assert!(state.read("none").unwrap().is_none());
        std::os::unix::fs::symlink("/etc/passwd", dir.join("l")).unwrap();
        assert!(state.read("l").is_err(), "symlinks are not followed");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(StateDir::open(&dir, false).is_err());
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(StateDir::open(&link, false).is_err());
    }
}
