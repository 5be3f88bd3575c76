//! What lives in the tree right now: user cgroups, their leaves (sessions and service leaves)
//! and the processes in them. Read-only; used by `cgroupctl list/show/stats/gc` and the daemon.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::tree::{tree_key, Tree, SESSION_PREFIX};

/// One user cgroup directory as found under `users/` (read-only; root's handle that acts on
/// one is `crate::tree::user_cgroup::UserCgroup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundUserCgroup {
    /// The user's name (the directory's name carries the keyed tag).
    pub name: String,
    pub path: PathBuf,
    /// `users/<user>` of a version before the keyed names, kept while its sessions live.
    pub legacy: bool,
}

/// Child cgroup directories of `dir`, sorted by name. A directory that vanished meanwhile
/// has no children.
pub fn child_cgroups(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(child_cgroups_with_inodes(dir)?
        .into_iter()
        .map(|(path, _)| path)
        .collect())
}

/// `child_cgroups` with each one's inode (from the listing itself: no stat).
pub fn child_cgroups_with_inodes(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    use std::os::unix::fs::DirEntryExt;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("read directory", dir),
    };
    let mut out: Vec<(PathBuf, u64)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| (e.path(), e.ino()))
        .collect();
    out.sort();
    Ok(out)
}

/// Every user cgroup under `<root>/users`, sorted by user name, a user's own before its legacy
/// one. Directories that are no user's (made by hand: not `<user>.<tag>` under this host's key
/// and not a valid user name) are skipped: nothing we do may act on them.
pub fn user_cgroups(tree: &Tree) -> Result<Vec<FoundUserCgroup>> {
    let children = child_cgroups(&tree.users_dir())?;
    if children.is_empty() {
        // No tree yet: nothing to name, no key to make.
        return Ok(Vec::new());
    }
    let key = tree_key()?;
    let mut out: Vec<FoundUserCgroup> = children
        .into_iter()
        .filter_map(|path| {
            let entry = key.classify(path.file_name()?.to_str()?)?;
            Some(FoundUserCgroup {
                name: entry.user().to_string(),
                legacy: entry.is_legacy(),
                path,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.name, a.legacy).cmp(&(&b.name, b.legacy)));
    Ok(out)
}

/// What a leaf is, by where it sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "service")]
pub enum LeafKind {
    /// `users/<u>/session-*`: a PAM session.
    Session,
    /// `users/<u>/<service>/...`: a service's cgroup.
    Service(String),
}

/// The kind of the cgroup at `rel` (relative to its user cgroup).
pub fn leaf_kind(rel: &Path) -> LeafKind {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    // A session's leaf and everything in it (its login/, the customer's own cgroups).
    if first.starts_with(SESSION_PREFIX) {
        LeafKind::Session
    } else {
        LeafKind::Service(first)
    }
}

/// The leaves root made under a user cgroup: its session leaves and the leaves of its service
/// dirs (not what the customer made inside them).
pub fn first_level_leaves(user_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for child in child_cgroups(user_dir).unwrap_or_default() {
        let is_service = !child
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(SESSION_PREFIX))
            && owner_uid(&child) == Some(0);
        if is_service {
            out.extend(child_cgroups(&child).unwrap_or_default());
        } else {
            out.push(child);
        }
    }
    out
}

/// Counts of a user cgroup's first-level children: sessions and distinct services.
pub fn session_and_service_counts(user_dir: &Path) -> Result<(usize, usize)> {
    let mut sessions = 0;
    let mut services = 0;
    for child in child_cgroups(user_dir)? {
        let name = child
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(SESSION_PREFIX) {
            // A leaf made ahead for a login to come is no session (crate::tree::spare).
            let spare = crate::tree::dirfd::CgroupDir::open(&child)
                .is_ok_and(|d| crate::tree::spare::is_spare(&d));
            sessions += usize::from(!spare);
        } else {
            services += 1;
        }
    }
    Ok((sessions, services))
}

/// A process as `show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcInfo {
    pub pid: u32,
    /// Real uid and gid; `None` when the process exited meanwhile.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The command line, or `[comm]` for kernel-style processes without one.
    pub command: String,
}

/// Real, effective, saved and filesystem ids from a /proc/PID/status `Uid:`/`Gid:` line.
pub fn status_ids(status: &str, key: &str) -> Option<[u32; 4]> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    let ids: Vec<u32> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    Some([*ids.first()?, *ids.get(1)?, *ids.get(2)?, *ids.get(3)?])
}

/// Reads what /proc says about a process; fields are empty when it exited meanwhile.
pub fn proc_info(proc_root: &Path, pid: u32) -> ProcInfo {
    let dir = proc_root.join(pid.to_string());
    // Not strict UTF-8: the process's name in status is its owner's choice (`read_proc_file`).
    let status = crate::tree::fs::read_proc_file(&dir.join("status")).unwrap_or_default();
    let uid = status_ids(&status, "Uid:").map(|ids| ids[0]);
    let gid = status_ids(&status, "Gid:").map(|ids| ids[0]);
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let command = if cmdline.is_empty() {
        let comm = crate::tree::fs::read_proc_file(&dir.join("comm")).unwrap_or_default();
        format!("[{}]", comm.trim())
    } else {
        cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    ProcInfo {
        pid,
        uid,
        gid,
        command,
    }
}

/// Owner uid of a path (`None` when it is gone).
pub fn owner_uid(path: &Path) -> Option<u32> {
    std::fs::symlink_metadata(path).ok().map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_position() {
        assert_eq!(leaf_kind(Path::new("session-12")), LeafKind::Session);
        assert_eq!(
            leaf_kind(Path::new("web/run-1")),
            LeafKind::Service("web".into())
        );
        // Everything in a session's leaf is the session's: its login/, the customer's cgroups.
        assert_eq!(leaf_kind(Path::new("session-x/login")), LeafKind::Session);
        assert_eq!(leaf_kind(Path::new("session-x/web/a")), LeafKind::Session);
    }

    #[test]
    fn status_lines() {
        let s = "Name:\tsh\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t5\t5\t5\n";
        assert_eq!(status_ids(s, "Uid:"), Some([1000, 1001, 1002, 1003]));
        assert_eq!(status_ids(s, "Gid:"), Some([5, 5, 5, 5]));
        assert_eq!(status_ids(s, "Groups:"), None);
    }
}
