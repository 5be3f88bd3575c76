//! `cgroupctl init` / `deinit` for the private-IP and traffic programs: attach at the tree root with
//! BPF_LINK_CREATE, pin the links in bpffs (a pinned link outlives cgroupctl; removing the pin
//! detaches it), and on a later init swap programs in place with BPF_LINK_UPDATE, so there is
//! never a moment with no program attached. Same code and same config: nothing changes.

use std::fs::File;
use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use libbpf_rs::query::LinkTypeInfo;
use libbpf_rs::{Link, MapCore, ProgramMut};
use serde::Serialize;

use super::fence::{
    fence_level, mark_attached, sync_fences, unmark_attached, FenceSync, FenceValue, FENCE_MAP_PIN,
};
use super::loader::{self, bpf_err};
use super::sys;
use super::traffic::TRAFFIC_MAP_PIN;
use super::traffic_loader;
use super::{Hook, HOOKS, NET_HOOKS};
use crate::config::PrivateIpConfig;
use crate::error::{IoContext, Result};
use crate::tree::fs::{create_dir, remove_dir, Removed};
use crate::tree::Tree;

/// What `install` did for one hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing was attached: attached and pinned.
    Attached,
    /// Another program (other config or code) was attached: swapped in place.
    Updated,
    /// The same program with the same config is attached: left alone.
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramReport {
    pub program: &'static str,
    pub action: Action,
    /// The program attached now.
    pub prog_id: u32,
    /// The program it replaced (Updated only).
    pub previous_id: Option<u32>,
    pub pin: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallReport {
    pub tree_root: PathBuf,
    pub pin_dir: PathBuf,
    /// Whether the fence map was created (and pinned) by this run.
    pub fence_map_created: bool,
    /// Whether a fence map of an older layout (without uid) was unpinned and replaced.
    pub fence_map_replaced: bool,
    /// Whether the traffic counters map was created by this run (else its counts continue).
    pub traffic_map_created: bool,
    /// The fence map brought in line with users/ before any program was swapped in.
    pub fences: FenceSync,
    pub programs: Vec<ProgramReport>,
}

impl InstallReport {
    pub fn changed(&self) -> bool {
        self.programs.iter().any(|p| p.action != Action::Unchanged)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UninstallReport {
    pub tree_root: PathBuf,
    pub pin_dir: PathBuf,
    /// Programs whose link was detached and unpinned.
    pub detached: Vec<&'static str>,
    /// Whether the pin directory existed and was removed.
    pub pin_dir_removed: bool,
}

/// The cgroup ID of a cgroup2 directory: its inode number (kernfs node id).
fn cgroup_id(dir: &Path) -> Result<u64> {
    Ok(std::fs::metadata(dir).ctx("stat", dir)?.ino())
}

/// Pins live only in root's directories: a pin directory that is a symlink, not root's, or
/// writable by others (a bpffs mounted with a lax mode) is refused rather than trusted.
fn check_root_only(dir: &Path) -> Result<()> {
    for d in [dir.parent().unwrap_or(dir), dir] {
        let meta = std::fs::symlink_metadata(d).ctx("lstat", d)?;
        if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(crate::error::Error::Other(format!(
                "{} must be a directory of root's that nobody else can write: refusing to pin there",
                d.display()
            )));
        }
    }
    Ok(())
}

/// The pinned link of a hook, if there is one that is still attached to `cgroup`.
/// A pin whose link lost its cgroup (the tree root was removed and made again) is removed:
/// it enforces nothing.
fn live_link(pin: &Path, hook: Hook, cgroup: u64) -> Result<Option<Link>> {
    if !pin.exists() {
        return Ok(None);
    }
    let link =
        Link::open(pin).map_err(|e| bpf_err("open pinned link", pin.display().to_string(), e))?;
    let info = link
        .info()
        .map_err(|e| bpf_err("get info of link", pin.display().to_string(), e))?;
    let live = matches!(&info.info, LinkTypeInfo::Cgroup(c)
        if c.cgroup_id == cgroup && c.attach_type.clone() as u32 == hook.attach_type);
    if live {
        return Ok(Some(link));
    }
    std::fs::remove_file(pin).ctx("unpin stale link", pin)?;
    Ok(None)
}

fn install_hook(
    object: &libbpf_rs::Object,
    hook: Hook,
    root_dir: &File,
    cgroup: u64,
    pin_dir: &Path,
) -> Result<ProgramReport> {
    let pin = pin_dir.join(hook.pin_name);
    let prog: ProgramMut<'_> = loader::program(object, hook.prog_name)?;
    let new = loader::summary(&prog)?;
    let report = |action, previous_id| ProgramReport {
        program: hook.prog_name,
        action,
        prog_id: new.id,
        previous_id,
        pin: pin.clone(),
    };
    let Some(mut link) = live_link(&pin, hook, cgroup)? else {
        let mut link = prog
            .attach_cgroup(root_dir.as_raw_fd())
            .map_err(|e| bpf_err("attach", hook.prog_name, e))?;
        link.pin(&pin)
            .map_err(|e| bpf_err("pin link at", pin.display().to_string(), e))?;
        return Ok(report(Action::Attached, None));
    };
    let old_id = link
        .info()
        .map_err(|e| bpf_err("get info of link", pin.display().to_string(), e))?
        .prog_id;
    let old_fd = sys::prog_fd_by_id(old_id)
        .map_err(|e| bpf_err("open program", format!("id {old_id}"), e))?;
    let old = sys::prog_info(std::os::fd::AsFd::as_fd(&old_fd))
        .map_err(|e| bpf_err("get info of program", format!("id {old_id}"), e))?;
    if loader::same_program(&old, &new)? {
        return Ok(ProgramReport {
            prog_id: old_id,
            ..report(Action::Unchanged, None)
        });
    }
    link.update_prog(&prog)
        .map_err(|e| bpf_err("update link", pin.display().to_string(), e))?;
    Ok(report(Action::Updated, Some(old_id)))
}

/// A pinned fence map made by an older version (0.2's entries had no uid): unpinned, so that
/// this load makes a new one. The programs attached now keep the old map (they hold it) until
/// they are swapped, a few milliseconds later; a login meanwhile either finds no pin (and
/// follows on_error, as before the first init) or registers in the new map, whose fence the
/// old programs do not see yet: its processes are then confined with no address (the
/// fail-closed case) until the swap.
fn drop_old_fence_map(fence_pin: &Path) -> Result<bool> {
    if !fence_pin.exists() {
        return Ok(false);
    }
    let map = libbpf_rs::MapHandle::from_pinned_path(fence_pin)
        .map_err(|e| bpf_err("open pinned map", fence_pin.display().to_string(), e))?;
    if map.value_size() as usize == std::mem::size_of::<FenceValue>() {
        return Ok(false);
    }
    std::fs::remove_file(fence_pin).ctx("unpin old fence map", fence_pin)?;
    Ok(true)
}

/// Loads the programs with `policy`, then attaches (or swaps, or leaves) each one at the
/// tree root, pinned under `pin_dir` (a directory in a mounted bpffs; created here): the six
/// private-IP programs, then the two traffic counters, which share the fence map.
///
/// Order matters for a host running the 0.1.0 programs (gid-based, no map): the fence map is
/// created, pinned and filled for every existing `users/<user>` *before* the first program is
/// swapped in, so no confined process is ever judged by an empty map; each swap is a
/// BPF_LINK_UPDATE, so no hook is ever without a program. The counters map is reused when
/// pinned, so a later init (new config, new version) keeps every user's counts.
pub fn install(tree: &Tree, pin_dir: &Path, policy: &PrivateIpConfig) -> Result<InstallReport> {
    let tree_root = &tree.root;
    let root_dir = File::open(tree_root).ctx("open", tree_root)?;
    let cgroup = cgroup_id(tree_root)?;
    if let Some(base) = pin_dir.parent() {
        create_dir(base)?;
    }
    create_dir(pin_dir)?;
    check_root_only(pin_dir)?;
    let fence_pin = pin_dir.join(FENCE_MAP_PIN);
    let fence_map_replaced = drop_old_fence_map(&fence_pin)?;
    let fence_map_created = !fence_pin.exists();
    let traffic_pin = pin_dir.join(TRAFFIC_MAP_PIN);
    let traffic_map_created = !traffic_pin.exists();
    let level = fence_level(tree)?;
    let mut storage = MaybeUninit::uninit();
    let skel = loader::load(&mut storage, policy, level, &fence_pin)?;
    let mut net_storage = MaybeUninit::uninit();
    let net_skel = traffic_loader::load(&mut net_storage, level, &fence_pin, &traffic_pin)?;
    let fences = sync_fences(tree, policy)?;
    let mut programs = Vec::new();
    {
        use libbpf_rs::skel::Skel;
        for hook in HOOKS {
            programs.push(install_hook(
                skel.object(),
                hook,
                &root_dir,
                cgroup,
                pin_dir,
            )?);
        }
        for hook in NET_HOOKS {
            programs.push(install_hook(
                net_skel.object(),
                hook,
                &root_dir,
                cgroup,
                pin_dir,
            )?);
        }
    }
    // Last, once all six are attached at this cgroup: logins trust it instead of querying.
    mark_attached(tree_root, &fence_pin)?;
    Ok(InstallReport {
        tree_root: tree_root.to_path_buf(),
        pin_dir: pin_dir.to_path_buf(),
        fence_map_created,
        fence_map_replaced,
        traffic_map_created,
        fences,
        programs,
    })
}

/// Detaches and unpins every pinned link of the tree, then removes its pin directory.
/// Idempotent: nothing pinned is not an error.
pub fn uninstall(tree_root: &Path, pin_dir: &Path) -> Result<UninstallReport> {
    // First, before anything is detached: a login meanwhile (or after a failure below) goes
    // back to querying the hooks themselves.
    unmark_attached(tree_root, &pin_dir.join(FENCE_MAP_PIN))?;
    let mut detached = Vec::new();
    for hook in HOOKS.into_iter().chain(NET_HOOKS) {
        let pin = pin_dir.join(hook.pin_name);
        // Checked first so that libbpf does not log a warning for every absent pin.
        if !pin.exists() {
            continue;
        }
        match Link::open(&pin) {
            Ok(link) => {
                // Detach explicitly: a process still holding the link's fd would otherwise
                // keep it attached after the pin is gone.
                link.detach()
                    .map_err(|e| bpf_err("detach link", pin.display().to_string(), e))?;
                detached.push(hook.prog_name);
            }
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => continue,
            Err(e) => return Err(bpf_err("open pinned link", pin.display().to_string(), e)),
        }
        match std::fs::remove_file(&pin) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("unpin", &pin),
        }
    }
    // Unpinning a map frees it once the detached programs are gone: the traffic counters
    // restart from 0 after the next init (a counter reset, as after a reboot).
    for map in [FENCE_MAP_PIN, TRAFFIC_MAP_PIN] {
        let map_pin = pin_dir.join(map);
        match std::fs::remove_file(&map_pin) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("unpin", &map_pin),
        }
    }
    let pin_dir_removed = match remove_dir(pin_dir)? {
        Removed::Removed => true,
        Removed::AlreadyGone => false,
        Removed::Busy => {
            return Err(crate::error::Error::Other(format!(
                "{} still holds files that are not ours: left in place",
                pin_dir.display()
            )))
        }
    };
    // `<bpffs>/pam_cgroup/` too, once no other tree's pin directory is left in it: purge
    // must leave nothing of ours in bpffs (Busy: another tree still uses it).
    if let Some(base) = pin_dir
        .parent()
        .filter(|b| b.file_name() == Some(std::ffi::OsStr::new(super::pins::PIN_BASE)))
    {
        remove_dir(base)?;
    }
    Ok(UninstallReport {
        tree_root: tree_root.to_path_buf(),
        pin_dir: pin_dir.to_path_buf(),
        detached,
        pin_dir_removed,
    })
}
