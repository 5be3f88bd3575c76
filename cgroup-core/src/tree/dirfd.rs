//! A cgroup directory held open: every operation on what is inside it goes through `*at()`
//! calls relative to the descriptor, never through a path that could be resolved again. The
//! directory is opened with O_NOFOLLOW and checked to be a cgroup2 directory, so what root
//! writes in a user's tree is exactly the cgroup it opened once, whatever happens to names.
//!
//! std has no `*at()` API; nix's thin wrappers are used instead of hand-written syscalls.

use std::ffi::{CString, OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::sys::statfs::{fstatfs, CGROUP2_SUPER_MAGIC};
use nix::unistd::{fchown, fchownat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::error::{Error, IoContext, Result};

/// An open cgroup directory and the path it was opened at (for messages only).
#[derive(Debug)]
pub struct CgroupDir {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl CgroupDir {
    /// Opens `path` (a directory on cgroup2; a symlink or anything else is refused).
    pub fn open(path: &Path) -> Result<CgroupDir> {
        let raw = openat(None, path, DIR_FLAGS, Mode::empty()).ctx("open", path)?;
        Self::adopt(raw, path.to_path_buf())
    }

    /// Opens any directory as a cgroup: for the unit tests' fake hierarchies in a tempdir.
    #[cfg(test)]
    pub(crate) fn open_unchecked(path: &Path) -> Result<CgroupDir> {
        let raw = openat(None, path, DIR_FLAGS, Mode::empty()).ctx("open", path)?;
        // SAFETY: `raw` was just returned by openat and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(CgroupDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    fn adopt(raw: RawFd, path: PathBuf) -> Result<CgroupDir> {
        // SAFETY: `raw` was just returned by openat and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let fs = fstatfs(&fd).ctx("statfs", &path)?;
        if fs.filesystem_type() != CGROUP2_SUPER_MAGIC {
            return Err(Error::NotCgroup2 { path });
        }
        Ok(CgroupDir { fd, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The directory's own status (owner, mode).
    pub fn stat(&self) -> Result<FileStat> {
        fstat(self.raw()).ctx("stat", &self.path)
    }

    /// Opens the child cgroup `name`. A directory of a cgroup2 directory is a cgroup2
    /// directory (only root can mount over one, and O_NOFOLLOW refuses a symlink): no second
    /// statfs.
    pub fn open_child(&self, name: &(impl AsRef<OsStr> + ?Sized)) -> Result<CgroupDir> {
        let name = name.as_ref();
        let path = self.path.join(name);
        let raw = openat(Some(self.raw()), name, DIR_FLAGS, Mode::empty()).ctx("open", &path)?;
        // SAFETY: `raw` was just returned by openat and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(CgroupDir { fd, path })
    }

    /// mkdirat; `Ok(false)` when it existed already.
    pub fn make_child(&self, name: &str, mode: u32) -> Result<bool> {
        match mkdirat(Some(self.raw()), name, Mode::from_bits_truncate(mode)) {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(Error::io("mkdir", self.path.join(name), e)),
        }
    }

    /// mkdirat that fails when the child exists, with the raw errno for the caller to judge.
    pub fn make_new_child(&self, name: &str, mode: u32) -> std::result::Result<(), Errno> {
        mkdirat(Some(self.raw()), name, Mode::from_bits_truncate(mode))
    }

    /// rmdir of the child `name`; the errno is the caller's to judge (EBUSY, ENOENT...).
    pub fn remove_child(
        &self,
        name: &(impl AsRef<OsStr> + ?Sized),
    ) -> std::result::Result<(), Errno> {
        let name = name.as_ref();
        unlinkat(Some(self.raw()), name, UnlinkatFlags::RemoveDir)
    }

    /// Opens the entry `name` with `flags`, never following a symlink and never creating it.
    fn open_entry(&self, name: &OsStr, flags: OFlag) -> nix::Result<std::fs::File> {
        let raw = openat(
            Some(self.raw()),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: `raw` was just returned by openat and is owned by nobody else.
        Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    /// Opens the existing control file `name` for a write made later: by a child between
    /// fork and exec, which may only make async-signal-safe calls (`cgroupctl run` moving
    /// itself into its leaf). Never creates a file and never follows a symlink.
    pub fn open_for_write(&self, name: &str) -> Result<std::fs::File> {
        self.open_entry(name.as_ref(), OFlag::O_WRONLY)
            .map_err(|e| Error::io("open", self.path.join(name), e))
    }

    /// Writes one value to the existing control file `name` in a single write(2). Never
    /// creates a file and never follows a symlink.
    pub fn write(&self, name: &str, data: &str) -> Result<()> {
        let path = self.path.join(name);
        let wrap = |source| Error::Write {
            path: path.clone(),
            data: data.to_string(),
            source,
        };
        let mut file = self
            .open_entry(name.as_ref(), OFlag::O_WRONLY)
            .map_err(|e| wrap(std::io::Error::from(e)))?;
        file.write_all(data.as_bytes()).map_err(wrap)
    }

    /// Reads the control file `name`.
    pub fn read(&self, name: &str) -> Result<String> {
        let path = self.path.join(name);
        let file = self
            .open_entry(name.as_ref(), OFlag::O_RDONLY)
            .ctx("read", &path)?;
        std::io::read_to_string(file).ctx("read", path)
    }

    /// Is the control file `name` there (its controller enabled)?
    pub fn has(&self, name: &str) -> bool {
        fstatat(
            Some(self.raw()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok()
    }

    /// fchown of the directory itself.
    pub fn chown_self(&self, uid: u32, gid: u32) -> Result<()> {
        fchown(
            self.raw(),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
        )
        .ctx("chown", &self.path)
    }

    /// fchmod of the directory itself.
    pub fn chmod_self(&self, mode: u32) -> Result<()> {
        fchmod(self.raw(), Mode::from_bits_truncate(mode)).ctx("chmod", &self.path)
    }

    /// fchownat of the entry `name`, never following a symlink. The errno is returned raw
    /// for the caller's table (a missing optional file is fine).
    pub fn chown_entry(&self, name: &str, uid: u32, gid: u32) -> std::result::Result<(), Errno> {
        fchownat(
            Some(self.raw()),
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
    }

    /// Removes the group and other write bits of the regular file `name`, if it has any, and
    /// says whether `name` is a regular file (anything else is left as it is: where a
    /// controller is not enabled, a user may have made a sub-cgroup named like one of its
    /// files). cgroupfs (kernfs) makes no symlinks and lets nobody link or rename a file, so
    /// `name` is the interface file itself and fchmodat may follow (Linux's cannot refuse
    /// to). The errno is returned raw for the caller's table (a missing optional file is
    /// fine).
    pub fn drop_others_write(&self, name: &str) -> std::result::Result<bool, Errno> {
        let st = fstatat(
            Some(self.raw()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Ok(false);
        }
        if st.st_mode & 0o022 != 0 {
            nix::sys::stat::fchmodat(
                Some(self.raw()),
                name,
                Mode::from_bits_truncate(st.st_mode & 0o7755),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )?;
        }
        Ok(true)
    }

    /// Removes the group and other permission bits of the regular file `name`
    /// (open O_NOFOLLOW, then fchmod: fchmodat cannot refuse symlinks on Linux).
    pub fn restrict_entry(&self, name: &(impl AsRef<OsStr> + ?Sized)) -> Result<()> {
        let name = name.as_ref();
        let path = self.path.join(name);
        let fd = self
            .open_entry(name, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
            .ctx("open", &path)?;
        let st = fstat(fd.as_raw_fd()).ctx("stat", &path)?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Ok(());
        }
        let mode = st.st_mode & 0o700;
        if st.st_mode & 0o077 != 0 {
            fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode)).ctx("chmod", &path)?;
        }
        Ok(())
    }

    /// Names of the entries of the directory: (name, is a directory). Names are the kernel's
    /// bytes: a customer may name its cgroups anything, and a name skipped here would be a
    /// cgroup (and its processes) hidden from every walk.
    pub fn entries(&self) -> Result<Vec<(OsString, bool)>> {
        // A second descriptor: reading a directory moves its offset.
        let dir = nix::dir::Dir::openat(Some(self.raw()), ".", DIR_FLAGS, Mode::empty())
            .ctx("read directory", &self.path)?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.ctx("read directory", &self.path)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let is_dir = entry.file_type() == Some(nix::dir::Type::Directory);
            out.push((OsStr::from_bytes(name).to_os_string(), is_dir));
        }
        out.sort();
        Ok(out)
    }

    /// Reads the extended attribute `name`; `None` when absent or unreadable.
    pub fn get_xattr(&self, name: &str) -> Option<String> {
        self.read_xattr(name, 512)
    }

    /// Reads the extended attribute `name` of up to 4 KiB (a session's mark); `None` when
    /// absent or unreadable.
    pub fn get_xattr_large(&self, name: &str) -> Option<String> {
        self.read_xattr(name, 4096)
    }

    fn read_xattr(&self, name: &str, capacity: usize) -> Option<String> {
        read_xattr(self.fd.as_fd(), name, capacity)
    }

    /// Writes the extended attribute `name`.
    pub fn set_xattr(&self, name: &str, value: &str) -> Result<()> {
        write_xattr(self.fd.as_fd(), &self.path, name, value)
    }

    /// Removes the extended attribute `name` if it is there: `true` when this call removed it,
    /// `false` when it was absent. The kernel removes an attribute once, so of two callers
    /// racing for it exactly one gets `true` (a spare leaf's claim, `tree::spare`).
    pub fn take_xattr(&self, name: &str) -> Result<bool> {
        let cname = CString::new(name).map_err(|_| Error::Other(format!("bad xattr {name}")))?;
        // SAFETY: cname is NUL-terminated.
        let rc = unsafe { libc::fremovexattr(self.raw(), cname.as_ptr()) };
        match Errno::result(rc) {
            Ok(_) => Ok(true),
            Err(Errno::ENODATA) => Ok(false),
            Err(e) => Err(Error::io("removexattr", &self.path, e)),
        }
    }

    /// Sets the directory's modification time to now: what `gc` reads as a leaf's age.
    pub fn touch(&self) -> Result<()> {
        // SAFETY: a null `times` means "now" for both timestamps.
        let rc = unsafe { libc::futimens(self.raw(), std::ptr::null()) };
        Errno::result(rc)
            .map(drop)
            .map_err(|e| Error::io("futimens", &self.path, e))
    }

    /// Removes the extended attribute `name` (absent is fine).
    pub fn remove_xattr(&self, name: &str) -> Result<()> {
        let cname = CString::new(name).map_err(|_| Error::Other(format!("bad xattr {name}")))?;
        // SAFETY: cname is NUL-terminated.
        let rc = unsafe { libc::fremovexattr(self.raw(), cname.as_ptr()) };
        match Errno::result(rc) {
            Ok(_) | Err(Errno::ENODATA) => Ok(()),
            Err(e) => Err(Error::io("removexattr", &self.path, e)),
        }
    }
}

/// fgetxattr into a buffer of `capacity` bytes (nix has no xattr API); `None` when absent or
/// unreadable. For a directory open elsewhere too (`stats::carry` on a plain one in its tests).
pub fn read_xattr(fd: BorrowedFd<'_>, name: &str, capacity: usize) -> Option<String> {
    let name = CString::new(name).ok()?;
    let mut buf = vec![0u8; capacity];
    // SAFETY: name is NUL-terminated; buf is valid for buf.len() bytes; fd is open.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    String::from_utf8(buf).ok()
}

/// fsetxattr (nix has no xattr API): every extended attribute root writes below `users/`
/// (stamp, session mark, carried counts) is written here. `path` is for the error.
pub fn write_xattr(fd: BorrowedFd<'_>, path: &Path, name: &str, value: &str) -> Result<()> {
    let cname = CString::new(name).map_err(|_| Error::Other(format!("bad xattr {name}")))?;
    // SAFETY: cname is NUL-terminated; value is valid for value.len() bytes; fd is open.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(Error::io("setxattr", path, Errno::last()));
    }
    Ok(())
}
