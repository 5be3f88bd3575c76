//! The processes of a cgroup subtree, read through directory descriptors: what the levers
//! signal, what `show` lists, and what is counted before a user cgroup is removed.

use std::path::{Path, PathBuf};

use super::dirfd::CgroupDir;
use super::fs;
use crate::cgroup_files;
use crate::error::{Error, Result};

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

/// Every process with a thread in the subtree at `dir`, each once, sorted: `subtree_pids`,
/// and each process whose main thread exited elsewhere while other threads run here.
/// cgroup.procs lists such a process only in the cgroup its main thread exited in (a
/// `pthread_exit()` in main leaves a zombie leader there), and the safety net moves the
/// threads of one it finds outside its fence into the fence. What the levers signal: each
/// thread is mapped to its process (a /proc read per thread not a listed process's main
/// one), which `show` and the counts do not pay.
pub fn subtree_thread_groups(dir: &CgroupDir) -> Vec<u32> {
    let mut pids = subtree_pids(dir);
    let mut tids = Vec::new();
    walk_threads(dir, 0, &mut tids);
    let listed: std::collections::HashSet<u32> = pids.iter().copied().collect();
    pids.extend(
        tids.into_iter()
            .filter(|tid| !listed.contains(tid))
            .filter_map(thread_group_of)
            .filter(|tgid| !listed.contains(tgid)),
    );
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The threads of every cgroup of the subtree at `dir` (what could be read).
fn walk_threads(dir: &CgroupDir, depth: usize, out: &mut Vec<u32>) {
    if let Ok(text) = dir.read(cgroup_files::THREADS) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if depth >= MAX_WALK_DEPTH {
        return;
    }
    for (name, is_dir) in dir.entries().unwrap_or_default() {
        if let (true, Ok(child)) = (is_dir, dir.open_child(&name)) {
            walk_threads(&child, depth + 1, out);
        }
    }
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
    let kind = dir.read(cgroup_files::TYPE)?;
    if !matches!(kind.trim(), "threaded" | "domain threaded") {
        match dir.read(cgroup_files::PROCS) {
            Ok(text) => return Ok(sorted_ids(&text)),
            // Made threaded since cgroup.type was read.
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {}
            Err(e) => return Err(e),
        }
    }
    let threads = dir.read(cgroup_files::THREADS)?;
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
