//! Delegation of a leaf: the leaf directory and exactly the files the kernel lists in
//! /sys/kernel/cgroup/delegate are chowned to the user, never a resource file or a cap (else a
//! user raises its own limits). A table says which chowns are fatal (systemd's habit). Taking
//! a directory back (a 0.1.0 user cgroup, a dead leaf before it is trimmed) is the reverse; a
//! closed session's leaf has its files taken back and keeps its directory the user's.
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

/// The memory controller's file a user may set on its leaf: an OOM in the leaf's subtree kills
/// all of it.
const OOM_GROUP: &str = "memory.oom.group";

/// Mode of a delegated leaf: its owner only. Other customers sharing the user's primary group
/// must not read the leaf's PIDs or enter it.
pub const LEAF_MODE: u32 = 0o700;

/// The kernel's list as a login of this boot read it, kept on a user cgroup (`recall`): a
/// `trusted.` attribute, which only CAP_SYS_ADMIN can write, on a directory that is root's.
/// It goes with the cgroup at reboot, so it is always this kernel's list.
pub const DELEGATE_XATTR: &str = "trusted.pam_cgroup.delegate";

static FILES: OnceLock<Vec<String>> = OnceLock::new();

/// The kernel's list, read once per process (it is fixed for a running kernel). Falls back to
/// the three files every cgroup v2 kernel delegates.
pub fn delegate_files() -> &'static [String] {
    FILES.get_or_init(|| {
        kernel_list().unwrap_or_else(|| REQUIRED.iter().map(|s| s.to_string()).collect())
    })
}

fn kernel_list() -> Option<Vec<String>> {
    super::fs::read_proc_file(std::path::Path::new(crate::paths::DELEGATE_LIST))
        .ok()
        .map(|t| t.split_whitespace().map(str::to_string).collect())
}

/// `delegate_files`, taken from `user_dir`'s `DELEGATE_XATTR` when a login of this boot kept
/// it there, else read from sysfs and kept: libpam loads the module anew for each
/// transaction, and one getxattr on a descriptor the login holds anyway costs less than
/// opening and reading the sysfs file each time. A kept value that is not a list of plain
/// interface file names naming the required three is ignored (and replaced).
pub(super) fn recall(user_dir: &CgroupDir) -> &'static [String] {
    if let Some(files) = FILES.get() {
        return files;
    }
    if let Some(kept) = user_dir
        .get_xattr(DELEGATE_XATTR)
        .and_then(|text| parse_kept(&text))
    {
        return FILES.get_or_init(|| kept);
    }
    match kernel_list() {
        Some(list) => {
            // Without it the next login reads the file again: nothing else depends on it.
            let _ = user_dir.set_xattr(DELEGATE_XATTR, &list.join(" "));
            FILES.get_or_init(|| list)
        }
        None => delegate_files(),
    }
}

fn parse_kept(text: &str) -> Option<Vec<String>> {
    let names: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    let plain = |n: &String| {
        !n.starts_with('.')
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
    };
    let complete = REQUIRED.iter().all(|r| names.iter().any(|n| n == r));
    (complete && names.iter().all(plain)).then_some(names)
}

fn chown_files(dir: &CgroupDir, uid: u32, gid: u32) -> Result<()> {
    for name in delegate_files() {
        chown_file(dir, name, uid, gid)?;
    }
    Ok(())
}

/// Chowns the delegated file `name` of `dir`: false when it is an optional file whose
/// controller is not enabled here (nothing to chown).
fn chown_file(dir: &CgroupDir, name: &str, uid: u32, gid: u32) -> Result<bool> {
    match dir.chown_entry(name, uid, gid) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) if !REQUIRED.contains(&name) => Ok(false),
        Err(e) => Err(Error::io("chown", dir.path().join(name), e)),
    }
}

/// The delegated files of `dir` root's again: root:root, then no group or other write bit.
/// While they were the user's it could chmod them (`chmod 666 cgroup.procs`), and the kernel
/// checks a cgroup.procs write against the file's owner and mode as they are at the write,
/// with the credentials of whoever opened it: chowned and restricted, the file refuses the
/// user, a descriptor it opened before included. Owner first: once root's, the user can no
/// longer chmod it back between the two. With `oom_group_off`, `memory.oom.group` is also set
/// to 0 where it is there (`end_of_session`). One pass, so that a file whose controller is not
/// enabled costs one failed chown and nothing more (a logout pays this). Where that controller
/// is not enabled the user may have named a sub-cgroup like the file: the chown makes it
/// root's and nothing else is done to it (its processes stay where they are, and the user,
/// whose directory holds it, may still remove it once empty).
fn take_back_files(dir: &CgroupDir, oom_group_off: bool) -> Result<()> {
    for name in delegate_files() {
        if !chown_file(dir, name, 0, 0)? {
            continue;
        }
        let is_file = dir
            .drop_others_write(name)
            .map_err(|e| Error::io("chmod", dir.path().join(name), e))?;
        if is_file && oom_group_off && name == OOM_GROUP {
            dir.write(OOM_GROUP, "0")?;
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
    take_back_files(dir, false)
}

/// A closed session's leaf (`user_cgroup::close_leaf`): its delegated files are taken back
/// (`take_back_files`), the directory stays the user's. cgroup v2 lets a process move any
/// process, root's too, between two cgroups when it may write the cgroup.procs of their
/// common ancestor: with the leaf's cgroup.procs the user's, a caller that outlives its close
/// (Dovecot's auth worker) could be pulled from the leaf's login/ into a sub-cgroup of the
/// user's and frozen or killed there. Once closed, nothing in the leaf can be moved across its
/// top, by its user or its processes left behind; in a sub-cgroup of its own the user still
/// arranges what is there, and the directory being its own, it may still remove its empty
/// sub-cgroups. The leaf's `memory.oom.group` goes back to 0 (the user may have set it while
/// it was its: an OOM of its processes would then kill every process of the leaf, the caller
/// left there among them); nothing to do where the memory controller is not enabled.
pub fn end_of_session(dir: &CgroupDir) -> Result<()> {
    take_back_files(dir, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_list_is_used_only_when_it_is_plain_names_with_the_required_three() {
        let kernel = "cgroup.procs\ncgroup.threads\ncgroup.subtree_control\nmemory.oom.group\n";
        assert_eq!(parse_kept(kernel).unwrap().len(), 4);
        assert!(parse_kept("cgroup.procs cgroup.threads").is_none());
        assert!(parse_kept("cgroup.procs cgroup.threads cgroup.subtree_control ../x").is_none());
        assert!(parse_kept("cgroup.procs cgroup.threads cgroup.subtree_control a/b").is_none());
        assert!(parse_kept("cgroup.procs cgroup.threads cgroup.subtree_control .x").is_none());
        assert!(parse_kept("").is_none());
    }
}
