//! "Are our programs attached at the tree root?" Raw bpf(2) only (see sys.rs): BPF_PROG_QUERY
//! on the root's directory for each of the six attach types, then each program's name, so a
//! foreign program at the same hook does not count as ours (`missing_programs`: doctor). The
//! login's check is `empty_hooks`: the marker init leaves in the fence map, else the queries.

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{sys, Hook, HOOKS};
use crate::error::{IoContext, Result};

/// The programs attached directly at a cgroup for one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedProgram {
    pub hook: Hook,
    /// Every program attached at this hook, ours or not.
    pub ids: Vec<u32>,
    /// Those whose kernel name is ours (`hook.prog_name`).
    pub ours: Vec<u32>,
}

/// How many times a hook is queried again when one of its programs vanished between the
/// query and the look-up: `cgroupctl init` swapping programs (bpf_link_update) frees the old
/// one, and that must not read as "nothing attached".
const RACE_RETRIES: usize = 3;

fn open_dir(dir: &Path) -> Result<Option<File>> {
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx("open", dir),
    }
}

fn query_hook(dir: &File, tree_root: &Path, hook: Hook) -> Result<AttachedProgram> {
    let mut attempt = 0;
    'again: loop {
        let ids =
            sys::prog_query(dir.as_fd(), hook.attach_type).ctx("BPF_PROG_QUERY", tree_root)?;
        let mut ours = Vec::new();
        for &id in &ids {
            let fd = match sys::prog_fd_by_id(id) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && attempt < RACE_RETRIES => {
                    attempt += 1;
                    continue 'again;
                }
                Err(e) => return Err(e).ctx("BPF_PROG_GET_FD_BY_ID for a program at", tree_root),
            };
            let info = sys::prog_info(fd.as_fd())
                .ctx("BPF_OBJ_GET_INFO_BY_FD for a program at", tree_root)?;
            if info.name == hook.prog_name {
                ours.push(id);
            }
        }
        return Ok(AttachedProgram { hook, ids, ours });
    }
}

/// What is attached at `tree_root` for each of the private-IP hooks. A missing root has
/// nothing attached.
pub fn attached_programs(tree_root: &Path) -> Result<Vec<AttachedProgram>> {
    attached_programs_of(tree_root, &HOOKS)
}

/// What is attached at `tree_root` for each of `hooks` (`HOOKS`, or the traffic counters'
/// `NET_HOOKS`).
pub fn attached_programs_of(tree_root: &Path, hooks: &[Hook]) -> Result<Vec<AttachedProgram>> {
    let Some(dir) = open_dir(tree_root)? else {
        return Ok(hooks
            .iter()
            .map(|&hook| AttachedProgram {
                hook,
                ids: Vec::new(),
                ours: Vec::new(),
            })
            .collect());
    };
    hooks
        .iter()
        .map(|&hook| query_hook(&dir, tree_root, hook))
        .collect()
}

/// Names of our programs that are not attached at `tree_root` (empty: all six are).
pub fn missing_programs(tree_root: &Path) -> Result<Vec<&'static str>> {
    Ok(attached_programs(tree_root)?
        .into_iter()
        .filter(|a| a.ours.is_empty())
        .map(|a| a.hook.prog_name)
        .collect())
}

/// The login-time check: the hooks with no program at all at `tree_root`. First the marker
/// `cgroupctl init` leaves in the fence map once it attached all six at this very cgroup
/// (`fence::marked_attached`): one map look-up, no cgroup lock. Without it (a tree attached
/// by a version that left none, until the next init), one BPF_PROG_QUERY per hook and nothing
/// else (the full `missing_programs` also looks every program up by id to check its name:
/// four times the syscalls, for `cgroupctl doctor`); each BPF_PROG_QUERY takes cgroup_mutex,
/// which a migration elsewhere holds while it waits for an RCU grace period. `cgroupctl init`
/// attaches all six together and `deinit` removes all six, so an empty hook is what "not
/// initialised" looks like.
pub fn empty_hooks(tree_root: &Path) -> Result<Vec<&'static str>> {
    if super::fence::marked_attached(tree_root)? {
        return Ok(Vec::new());
    }
    query_empty_hooks(tree_root)
}

/// `empty_hooks` without the marker: one BPF_PROG_QUERY per hook.
pub fn query_empty_hooks(tree_root: &Path) -> Result<Vec<&'static str>> {
    let Some(dir) = open_dir(tree_root)? else {
        return Ok(HOOKS.iter().map(|h| h.prog_name).collect());
    };
    let mut empty = Vec::new();
    for hook in HOOKS {
        let ids =
            sys::prog_query(dir.as_fd(), hook.attach_type).ctx("BPF_PROG_QUERY", tree_root)?;
        if ids.is_empty() {
            empty.push(hook.prog_name);
        }
    }
    Ok(empty)
}

/// True when all six policy programs are attached at `tree_root` (the PAM module's check).
/// A root that does not exist yet answers false, not an error. Errors: the root cannot be
/// opened, or bpf(2) refuses (e.g. EPERM without CAP_NET_ADMIN / CAP_SYS_ADMIN).
pub fn programs_attached(tree_root: &Path) -> Result<bool> {
    Ok(missing_programs(tree_root)?.is_empty())
}
