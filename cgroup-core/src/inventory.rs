//! What lives in the tree right now: user cgroups, their leaves (sessions and service leaves)
//! and the processes in them. Read-only; used by `cgroupctl list/show/stats/gc` and the daemon.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::tree::dirfd::CgroupDir;
use crate::tree::{fs, tree_key, Tree, SESSION_PREFIX};

/// One user cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCgroup {
    /// The user's name (the directory's name carries the keyed tag).
    pub name: String,
    pub path: PathBuf,
    /// `users/<user>` of a version before the keyed names, kept while its sessions live.
    pub legacy: bool,
}

/// Child cgroup directories of `dir`, sorted by name. A directory that vanished meanwhile
/// has no children.
pub fn child_cgroups(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("read directory", dir),
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// Every user cgroup under `<root>/users`, sorted by user name, a user's own before its legacy
/// one. Directories that are no user's (made by hand: not `<user>.<tag>` under this host's key
/// and not a valid user name) are skipped: nothing we do may act on them.
pub fn user_cgroups(tree: &Tree) -> Result<Vec<UserCgroup>> {
    let children = child_cgroups(&tree.users_dir())?;
    if children.is_empty() {
        // No tree yet: nothing to name, no key to make.
        return Ok(Vec::new());
    }
    let key = tree_key()?;
    let mut out: Vec<UserCgroup> = children
        .into_iter()
        .filter_map(|path| {
            let entry = key.classify(path.file_name()?.to_str()?)?;
            Some(UserCgroup {
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

/// The processes of one cgroup of a walked subtree.
#[derive(Debug)]
pub struct CgroupProcesses {
    /// Path relative to the walked cgroup (empty for that cgroup itself), in the kernel's
    /// bytes: a customer may name its cgroups anything.
    pub rel: PathBuf,
    pub has_children: bool,
    /// Processes with a thread in this cgroup itself (not its descendants), sorted.
    pub pids: Vec<u32>,
    /// Why this cgroup's processes or children could not be read: a view shows it for this
    /// cgroup and goes on with the others.
    pub error: Option<Error>,
}

/// cgroup.max.depth is at most 64 levels (config bounds): deeper is not a cgroup tree.
const MAX_WALK_DEPTH: usize = 70;

/// Every cgroup of the subtree at `dir` (itself first, then its descendants depth-first by
/// name) with its own processes. Every cgroup is visited, not only the childless ones: a
/// session leaf holds its opener beside `login/`, and a customer may leave a process in a
/// cgroup that has children. A cgroup removed meanwhile is left out (it has no processes).
pub fn subtree_processes(dir: &CgroupDir) -> Vec<CgroupProcesses> {
    let mut out = Vec::new();
    walk_processes(dir, PathBuf::new(), &mut out);
    out
}

fn walk_processes(dir: &CgroupDir, rel: PathBuf, out: &mut Vec<CgroupProcesses>) {
    let (pids, pids_error) = match own_processes(dir) {
        Ok(pids) => (pids, None),
        Err(e) if e.errno() == Some(libc::ENOENT) => return,
        Err(e) => (Vec::new(), Some(e)),
    };
    let (children, children_error) = if rel.components().count() >= MAX_WALK_DEPTH {
        (Vec::new(), None)
    } else {
        match dir.entries() {
            Ok(entries) => (
                entries
                    .into_iter()
                    .filter_map(|(name, is_dir)| is_dir.then_some(name))
                    .collect::<Vec<_>>(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e)),
        }
    };
    out.push(CgroupProcesses {
        rel: rel.clone(),
        has_children: !children.is_empty(),
        pids,
        error: pids_error.or(children_error),
    });
    for name in children {
        let child_rel = rel.join(&name);
        match dir.open_child(&name) {
            Ok(child) => walk_processes(&child, child_rel, out),
            Err(e) if e.errno() == Some(libc::ENOENT) => {}
            Err(e) => out.push(CgroupProcesses {
                rel: child_rel,
                has_children: false,
                pids: Vec::new(),
                error: Some(e),
            }),
        }
    }
}

/// Every process of the subtree at `dir`, each once, sorted. A cgroup that cannot be read
/// adds nothing: a caller that must not miss a process judges by `populated` (the kernel's
/// own count), not by this list.
pub fn subtree_pids(dir: &CgroupDir) -> Vec<u32> {
    let mut pids: Vec<u32> = subtree_processes(dir)
        .into_iter()
        .flat_map(|c| c.pids)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The processes with a thread in `dir` itself, sorted.
///
/// A threaded cgroup refuses to list cgroup.procs (EOPNOTSUPP): its processes belong to the
/// threaded domain above it, whose cgroup.procs lists every process of the whole threaded
/// subtree. That domain may lie above the subtree being walked (a session leaf that joined
/// a threaded subtree rooted at its user cgroup), where it would list other leaves'
/// processes too. So threaded cgroups and threaded domains are read through cgroup.threads,
/// each thread mapped to its process (Tgid in /proc/<tid>/status): exact for any subtree,
/// and each process is shown in the cgroups its threads are in.
pub fn own_processes(dir: &CgroupDir) -> Result<Vec<u32>> {
    let kind = dir.read("cgroup.type")?;
    if !matches!(kind.trim(), "threaded" | "domain threaded") {
        match dir.read("cgroup.procs") {
            Ok(text) => return Ok(sorted_ids(&text)),
            // Made threaded since cgroup.type was read.
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {}
            Err(e) => return Err(e),
        }
    }
    let threads = dir.read("cgroup.threads")?;
    let mut pids: Vec<u32> = threads
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        // A thread that exited meanwhile has no process left to list.
        .filter_map(thread_group_of)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn sorted_ids(text: &str) -> Vec<u32> {
    let mut ids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    ids.sort_unstable();
    ids
}

/// The process (thread group id) of thread `tid`; `None` when it is gone.
fn thread_group_of(tid: u32) -> Option<u32> {
    let status = fs::read_proc_file(Path::new(&format!("/proc/{tid}/status"))).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
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
            sessions += 1;
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
    let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
    let uid = status_ids(&status, "Uid:").map(|ids| ids[0]);
    let gid = status_ids(&status, "Gid:").map(|ids| ids[0]);
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let command = if cmdline.is_empty() {
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
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
