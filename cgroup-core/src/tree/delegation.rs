//! Delegation of a user cgroup: the directory and exactly the files the kernel lists in
//! /sys/kernel/cgroup/delegate are chowned to the user, never the resource files (else a user
//! raises its own limits). A table says which chowns are fatal (systemd's habit).

use std::path::Path;
use std::sync::OnceLock;

use super::fs::chown;
use crate::error::Result;

pub const DELEGATE_LIST: &str = "/sys/kernel/cgroup/delegate";

/// Files whose delegation is required: without them the user cannot manage its subtree.
const REQUIRED: &[&str] = &["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"];

/// The kernel's list, read once per process (it is fixed for a running kernel). Falls back to
/// the three files every cgroup v2 kernel delegates.
pub fn delegate_files() -> &'static [String] {
    static FILES: OnceLock<Vec<String>> = OnceLock::new();
    FILES.get_or_init(|| {
        std::fs::read_to_string(DELEGATE_LIST)
            .map(|t| t.split_whitespace().map(str::to_string).collect())
            .unwrap_or_else(|_| REQUIRED.iter().map(|s| s.to_string()).collect())
    })
}

/// Hands `dir` over to uid:gid. Optional files that do not exist (their controller is not
/// enabled) are skipped.
pub fn delegate(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    chown(dir, uid, gid)?;
    for name in delegate_files() {
        let path = dir.join(name);
        match chown(&path, uid, gid) {
            Ok(()) => {}
            Err(e) if !REQUIRED.contains(&name.as_str()) && e.errno() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
