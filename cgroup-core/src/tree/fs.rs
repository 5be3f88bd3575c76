//! cgroupfs primitives. cgroupfs is plain files, so std::fs with care: a control file is never
//! created (a typo is an error, not a stray file), PIDs are written as "PID\n", and EEXIST /
//! ENOENT / EBUSY are tolerated where they mean "already done" (systemd's cgroup-setup habit).

use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

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

/// Reads a small procfs file (/proc/PID/cgroup, /proc/PID/stat) as bytes. procfs reports a
/// size of 0, so `std::fs::read` would grow its buffer from 32 bytes in five or six read(2)
/// calls, after a statx and an lseek that tell nothing here; a page-sized buffer takes such a
/// file in one read (plus the one that sees the end). Runs on every login.
pub fn read_proc_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
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
    Ok(buf)
}

/// A procfs text file, bytes that are not UTF-8 replaced (U+FFFD). Never strict: a process's
/// name (`Name:` in status, the parenthesised field of stat) is whatever its owner chose with
/// prctl(PR_SET_NAME) or the name of the file it ran, and /proc/PID/cgroup prints cgroup names
/// as made; a strict decode would turn one odd byte into "no such process" (a customer's
/// process invisible to the safety net, its opener's session uncounted). The numbers and
/// keywords parsed from these files are ASCII, so the replacement never changes them; cgroup
/// paths are taken as bytes instead (`cgroup_v2_entry`).
pub fn read_proc_file(path: &Path) -> std::io::Result<String> {
    read_proc_bytes(path).map(|bytes| match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Moves a process (all its threads) into the cgroup at `dir`, through a descriptor of the
/// directory (a cgroup2 one, its last component never a symlink).
pub fn move_pid(dir: &Path, pid: u32) -> Result<()> {
    super::dirfd::CgroupDir::open(dir)?.write(crate::cgroup_files::PROCS, &format!("{pid}\n"))
}

/// A process's cgroup v2 path as the kernel shows it (`/a/b`, from the `0::` line of
/// /proc/PID/cgroup); `None` when the process has no v2 entry.
pub fn cgroup_v2_of(pid: u32) -> Result<Option<PathBuf>> {
    let path = format!("/proc/{pid}/cgroup");
    let bytes = read_proc_bytes(Path::new(&path)).ctx("read", Path::new(&path))?;
    Ok(cgroup_v2_entry(&bytes))
}

/// The cgroup v2 path in the text of a /proc/PID/cgroup file, exactly as its bytes say: the
/// names below a customer's leaf are the customer's, any bytes but '/', NUL and a newline
/// (which the kernel refuses in a cgroup name, so lines split exactly).
pub fn cgroup_v2_entry(text: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    text.split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b"0::"))
        .map(|rel| PathBuf::from(std::ffi::OsStr::from_bytes(rel)))
}

pub fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).ctx("chown", path)
}

/// chmod of a directory root made (never a customer's).
pub fn chmod(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).ctx("chmod", path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn a_cgroup_path_in_bytes_that_are_not_utf8_is_taken_exactly() {
        let text = b"1:name=systemd:/x\n0::/pam_cgroup/users/a.t/session-1/odd-\xff \n";
        let path = cgroup_v2_entry(text).unwrap();
        assert_eq!(
            path.as_os_str().as_bytes(),
            b"/pam_cgroup/users/a.t/session-1/odd-\xff ".as_slice(),
            "every byte kept, the trailing space of the name too"
        );
        assert_eq!(cgroup_v2_entry(b"1:name=systemd:/x\n"), None);
    }

    #[test]
    fn a_proc_file_that_is_not_utf8_reads_with_its_numbers_intact() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("status");
        std::fs::write(&status, b"Name:\t\xff\nUid:\t5\t5\t5\t5\n".as_slice()).unwrap();
        let text = read_proc_file(&status).unwrap();
        assert!(text.contains("Uid:\t5\t5\t5\t5"), "{text:?}");
        assert!(text.starts_with("Name:\t\u{fffd}"), "{text:?}");
    }
}
