//! cgroupfs primitives. cgroupfs is plain files, so std::fs with care: a control file is never
//! created (a typo is an error, not a stray file), PIDs are written as "PID\n", and EEXIST /
//! ENOENT / EBUSY are tolerated where they mean "already done" (systemd's cgroup-setup habit).

use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::error::{IoContext, Result};

/// What `create_dir` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    Existed,
}

/// What `remove_dir` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    Removed,
    /// Somebody removed it first.
    AlreadyGone,
    /// Still holds processes or child cgroups: left in place.
    Busy,
}

/// How a log line says it (an admin reads it in the journal).
impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Removed::Removed => "removed",
            Removed::AlreadyGone => "already gone",
            Removed::Busy => "left in place: still holds processes or cgroups",
        })
    }
}

/// mkdir that treats "already exists" as success: concurrent logins race here.
pub fn create_dir(path: &Path) -> Result<Created> {
    match std::fs::DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => Ok(Created::Created),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(Created::Existed),
        Err(e) => Err(e).ctx("mkdir", path),
    }
}

/// mkdir that fails when the directory exists (a leaf must be ours alone).
pub fn create_new_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().mode(0o755).create(path)
}

/// rmdir that tolerates "gone already" and "still in use".
pub fn remove_dir(path: &Path) -> Result<Removed> {
    match std::fs::remove_dir(path) {
        Ok(()) => Ok(Removed::Removed),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Removed::AlreadyGone),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) => {
            Ok(Removed::Busy)
        }
        Err(e) => Err(e).ctx("rmdir", path),
    }
}

pub fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).ctx("read", path)
}

/// Reads a small procfs file (/proc/PID/cgroup, /proc/PID/stat). procfs reports a size of 0,
/// so `read_to_string` would grow its buffer from 32 bytes in five or six read(2) calls; a
/// page-sized buffer takes such a file in one read (plus the one that sees the end). Both
/// run on every login.
pub fn read_proc_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    // Plain read(2)s into a page-sized buffer until end of file: read_to_string first asks
    // statx for a size hint and lseek for the position, two syscalls a procfs file (size 0)
    // answers with nothing useful, at every login.
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Moves a process (all its threads) into the cgroup at `dir`, through a descriptor of the
/// directory (a cgroup2 one, its last component never a symlink).
pub fn move_pid(dir: &Path, pid: u32) -> Result<()> {
    super::dirfd::CgroupDir::open(dir)?.write(crate::cgroup_files::PROCS, &format!("{pid}\n"))
}

/// A process's cgroup v2 path as the kernel shows it (`/a/b`, from the `0::` line of
/// /proc/PID/cgroup); `None` when the process has no v2 entry.
pub fn cgroup_v2_of(pid: u32) -> Result<Option<String>> {
    let path = format!("/proc/{pid}/cgroup");
    let text = read_proc_file(Path::new(&path)).ctx("read", Path::new(&path))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|rel| rel.trim().to_string()))
}

pub fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).ctx("chown", path)
}

/// chmod of a directory root made (never a customer's).
pub fn chmod(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).ctx("chmod", path)
}
