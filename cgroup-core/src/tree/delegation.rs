//! Delegation of a leaf: the leaf directory and exactly the files the kernel lists in
//! /sys/kernel/cgroup/delegate are chowned to the user, never a resource file or a cap (else a
//! user raises its own limits). A table says which chowns are fatal (systemd's habit). Taking
//! a directory back (a 0.1.0 user cgroup, a dead leaf before it is trimmed) is the reverse.
//!
//! Everything goes through the directory's descriptor (`CgroupDir`): the chowns land on the
//! cgroup that was opened, never on a name resolved again.

use std::sync::OnceLock;

use nix::errno::Errno;

use super::dirfd::CgroupDir;
use crate::cgroup_files;
use crate::error::{Error, Result};

/// Files whose delegation is required: without them the user cannot manage its subtree.
const REQUIRED: &[&str] = &[
    cgroup_files::PROCS,
    cgroup_files::THREADS,
    cgroup_files::SUBTREE_CONTROL,
];

/// Mode of a delegated leaf: its owner only. Other customers sharing the user's primary group
/// must not read the leaf's PIDs or enter it.
pub const LEAF_MODE: u32 = 0o700;

/// The kernel's list, read once per process (it is fixed for a running kernel). Falls back to
/// the three files every cgroup v2 kernel delegates.
pub fn delegate_files() -> &'static [String] {
    static FILES: OnceLock<Vec<String>> = OnceLock::new();
    FILES.get_or_init(|| {
        super::fs::read_proc_file(std::path::Path::new(crate::paths::DELEGATE_LIST))
            .map(|t| t.split_whitespace().map(str::to_string).collect())
            .unwrap_or_else(|_| REQUIRED.iter().map(|s| s.to_string()).collect())
    })
}

fn chown_files(dir: &CgroupDir, uid: u32, gid: u32) -> Result<()> {
    for name in delegate_files() {
        match dir.chown_entry(name, uid, gid) {
            Ok(()) => {}
            // An optional file whose controller is not enabled here.
            Err(Errno::ENOENT) if !REQUIRED.contains(&name.as_str()) => {}
            Err(e) => return Err(Error::io("chown", dir.path().join(name), e)),
        }
    }
    Ok(())
}

/// Hands the leaf `dir` over to uid:gid: its delegated files first, the directory last, so
/// the user never owns a directory whose files are still being handed over.
pub fn delegate(dir: &CgroupDir, uid: u32, gid: u32) -> Result<()> {
    chown_files(dir, uid, gid)?;
    dir.chmod_self(LEAF_MODE)?;
    dir.chown_self(uid, gid)
}

/// Takes `dir` back: the directory first (the user can no longer create anything in it by
/// name), then its delegated files, all root:root; the directory gets `mode` and group `gid`.
pub fn take_back(dir: &CgroupDir, gid: u32, mode: u32) -> Result<()> {
    dir.chown_self(0, gid)?;
    dir.chmod_self(mode)?;
    chown_files(dir, 0, 0)
}
