//! The fence map (`pcg_fences` in bpf/private_ip.bpf.c, pinned as `<pin dir>/fences`): which
//! cgroups are users' fences and each user's private address. The programs decide confinement
//! and the address from the calling process's ancestor at the depth of `users/<user>`
//! (bpf_get_current_ancestor_cgroup_id), never from its gid, so `sg`, `newgrp` and setgid
//! programs change nothing.
//!
//! Root writes the map whenever it creates or re-applies `users/<user>` (`register_fence`:
//! the PAM module at login, cgroupctl set/reload/run/classify, `cgroupctl init` for every
//! existing user directory) and drops an entry when it removes a user directory
//! (`forget_fence`). Raw bpf(2) (sys.rs), no libbpf: pam_cgroup.so calls this. Cost: a stat
//! of the user directory and of users/, BPF_OBJ_GET, two BPF_MAP_UPDATE_ELEM, a close.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::{address::private_address, pins, sys, DEFAULT_BPFFS};
use crate::config::PrivateIpConfig;
use crate::error::{Error, IoContext, Result};
use crate::nss::UserInfo;
use crate::tree::Tree;

/// File name of the map's pin in the tree's pin directory (bpffs refuses dots).
pub const FENCE_MAP_PIN: &str = "fences";

/// `struct fence.kind` values of the C file.
pub(super) const KIND_FENCE: u32 = 1;
pub(super) const KIND_USERS: u32 = 2;
/// The tree root itself, keyed by its cgroup id: "all six policy programs are attached at
/// this cgroup" (`mark_attached`). The programs never look at the root's depth, and check the
/// kind of what they find, so they ignore this entry.
pub(super) const KIND_ROOT: u32 = 3;

/// `struct fence` of bpf/fence.h: the value of one map entry. `uid` was appended after 0.2's
/// two fields, so writing it into a map made by 0.2 (value size 8) stores the same first two
/// fields (the kernel copies the map's value size); `cgroupctl init` then replaces that map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FenceValue {
    /// The private address in network byte order (its bytes are the octets); 0: none.
    pub ip4: u32,
    pub kind: u32,
    /// The fence's user: the key of its traffic counters (bpf/net_traffic.bpf.c).
    pub uid: u32,
}

impl FenceValue {
    /// The entry of a user's fence: its address, or none when its gid has none.
    pub fn of_user(user: &UserInfo, policy: &PrivateIpConfig) -> FenceValue {
        let ip4 = private_address(user.gid, policy.min_gid)
            .map(|a| u32::from_ne_bytes(a.octets()))
            .unwrap_or(0);
        FenceValue {
            ip4,
            kind: KIND_FENCE,
            uid: user.uid,
        }
    }

    /// The marker of a tree root whose six programs `cgroupctl init` attached.
    pub fn root_marker() -> FenceValue {
        FenceValue {
            ip4: 0,
            kind: KIND_ROOT,
            uid: 0,
        }
    }

    pub fn users_dir() -> FenceValue {
        FenceValue {
            ip4: 0,
            kind: KIND_USERS,
            uid: 0,
        }
    }

    /// The address this entry gives, if any.
    pub fn address(&self) -> Option<Ipv4Addr> {
        (self.ip4 != 0).then(|| Ipv4Addr::from(self.ip4.to_ne_bytes()))
    }
}

/// Where the fence map of a tree is pinned.
pub fn fence_map_pin(tree: &Tree) -> Result<PathBuf> {
    Ok(pins::pin_dir(Path::new(DEFAULT_BPFFS), &tree.root)?.join(FENCE_MAP_PIN))
}

/// The cgroup id of a cgroup2 directory, as bpf_get_current_cgroup_id() and
/// bpf_get_current_ancestor_cgroup_id() return it: the kernfs node id, which is the
/// directory's inode number on 64-bit kernels (kernfs_ino() is the id itself there; checked by
/// tests/root/private_ip.rs, whose confinement depends on it).
pub fn cgroup_id(dir: &Path) -> Result<u64> {
    Ok(std::fs::metadata(dir).ctx("stat", dir)?.ino())
}

/// Depth of `users/<user>` in the cgroup2 hierarchy (the hierarchy's root cgroup is at 0):
/// the programs' `fence_level`. The mount shows the hierarchy from `mount.root` (`/` on the
/// host; cgroupctl and the PAM module run in the initial cgroup namespace).
pub fn fence_level(tree: &Tree) -> Result<u32> {
    let normal = |p: &Path| {
        p.components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .count()
    };
    let below_mount = tree
        .root
        .strip_prefix(&tree.mount.mount_point)
        .map_err(|_| Error::BadRoot {
            root: tree.root.clone(),
            reason: "is not below its cgroup2 mount point",
        })?;
    let level = normal(&tree.mount.root) + normal(below_mount) + 2;
    u32::try_from(level).map_err(|_| Error::BadRoot {
        root: tree.root.clone(),
        reason: "is too deep",
    })
}

/// The pinned map of a tree, opened for writing. No pin while private IPs are enabled means
/// `cgroupctl init` has not run since the upgrade from 0.1.0 (whose programs had no map):
/// reported like unattached programs, a fault outside every customer's reach.
fn open_map(tree: &Tree) -> Result<OwnedFd> {
    let pin = fence_map_pin(tree)?;
    let cpath = CString::new(pin.as_os_str().as_bytes())
        .map_err(|_| Error::Other(format!("{}: path contains NUL", pin.display())))?;
    match sys::obj_get(&cpath) {
        Ok(fd) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(Error::PrivateIpNotAttached {
            root: tree.root.clone(),
            missing: format!("fence map ({} is missing)", pin.display()),
        }),
        Err(e) => Err(Error::Bpf {
            op: "BPF_OBJ_GET",
            target: pin.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

/// The map pinned at `pin`, or None when there is no pin.
fn open_map_at(pin: &Path) -> Result<Option<OwnedFd>> {
    let cpath = CString::new(pin.as_os_str().as_bytes())
        .map_err(|_| Error::Other(format!("{}: path contains NUL", pin.display())))?;
    match sys::obj_get(&cpath) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(Error::Bpf {
            op: "BPF_OBJ_GET",
            target: pin.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

fn update(map: &OwnedFd, tree: &Tree, dir: &Path, id: u64, value: FenceValue) -> Result<()> {
    sys::map_update(map.as_fd(), &id, &value).map_err(|e| Error::Bpf {
        op: "BPF_MAP_UPDATE_ELEM",
        target: format!(
            "fence map of {} for {} (cgroup id {id})",
            tree.root.display(),
            dir.display()
        ),
        reason: e.to_string(),
    })
}

/// Records `user_dir` (an existing cgroup of `user`: its own, or a legacy one) as that user's fence, with its
/// address (none when its primary gid is below min_gid), and users/ as the users directory.
/// Idempotent and cheap; returns the address the fence gives.
pub fn register_fence(
    tree: &Tree,
    policy: &PrivateIpConfig,
    user_dir: &Path,
    user: &UserInfo,
) -> Result<Option<Ipv4Addr>> {
    let users = tree.users_dir();
    let user_id = cgroup_id(user_dir)?;
    let users_id = cgroup_id(&users)?;
    let map = open_map(tree)?;
    let value = FenceValue::of_user(user, policy);
    // users/ first: a fence found only through it is confined with no address (fail closed).
    update(&map, tree, &users, users_id, FenceValue::users_dir())?;
    update(&map, tree, user_dir, user_id, value)?;
    Ok(value.address())
}

/// Records in the fence map that all six policy programs are attached at the tree root, as
/// it is now (keyed by its cgroup id). `cgroupctl init` calls it after it attached them; the
/// login's check (`empty_hooks`) then costs one map look-up, which takes no cgroup lock,
/// instead of six BPF_PROG_QUERY, each taken under cgroup_mutex (which a migration holds
/// while it waits for an RCU grace period). The marker cannot outlive what it says: a removed
/// and re-made root has another id; `uninstall` deletes the marker before it detaches
/// anything; a reboot empties bpffs. Only root can write the map (its pin is in root's
/// bpffs directory) or detach a link.
/// `fence_pin`: the map's pin (`<pin dir>/fences`).
pub fn mark_attached(tree_root: &Path, fence_pin: &Path) -> Result<()> {
    let id = cgroup_id(tree_root)?;
    let map = open_map_at(fence_pin)?.ok_or_else(|| Error::PrivateIpNotAttached {
        root: tree_root.to_path_buf(),
        missing: format!("fence map ({} is missing)", fence_pin.display()),
    })?;
    sys::map_update(map.as_fd(), &id, &FenceValue::root_marker()).map_err(|e| Error::Bpf {
        op: "BPF_MAP_UPDATE_ELEM",
        target: format!("fence map of {} (its marker)", tree_root.display()),
        reason: e.to_string(),
    })
}

/// Deletes the marker of `mark_attached`, if the root and the map are there.
pub fn unmark_attached(tree_root: &Path, fence_pin: &Path) -> Result<()> {
    let id = match std::fs::metadata(tree_root) {
        Ok(m) => m.ino(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("stat", tree_root),
    };
    let Some(map) = open_map_at(fence_pin)? else {
        return Ok(());
    };
    sys::map_delete(map.as_fd(), &id).map_err(|e| Error::Bpf {
        op: "BPF_MAP_DELETE_ELEM",
        target: format!("fence map of {} (its marker)", tree_root.display()),
        reason: e.to_string(),
    })
}

/// True when the fence map holds the marker of `mark_attached` for the tree root as it is
/// now. False (never an error) when anything is missing: no root, no pin, no entry. The pin
/// must be root's: on a bpffs others can write, a map a customer pinned there first could
/// otherwise claim anything. Cost: a stat of the root and of the pin, BPF_OBJ_GET,
/// BPF_MAP_LOOKUP_ELEM, a close.
pub fn marked_attached(tree_root: &Path) -> Result<bool> {
    let id = match std::fs::metadata(tree_root) {
        Ok(m) => m.ino(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).ctx("stat", tree_root),
    };
    let pin = pins::pin_dir(Path::new(DEFAULT_BPFFS), tree_root)?.join(FENCE_MAP_PIN);
    match std::fs::symlink_metadata(&pin) {
        Ok(m) if m.file_type().is_file() && m.uid() == 0 => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).ctx("lstat", &pin),
    }
    let Some(map) = open_map_at(&pin)? else {
        return Ok(false);
    };
    let mut value = FenceValue::default();
    let found = sys::map_lookup(map.as_fd(), &id, &mut value).map_err(|e| Error::Bpf {
        op: "BPF_MAP_LOOKUP_ELEM",
        target: pin.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(found && value == FenceValue::root_marker())
}

/// Drops the entry of a removed user directory, by the cgroup id it had (`cgroup_id` before
/// the rmdir). Absent map or entry: nothing to do. Ids are never reused, so a forgotten entry
/// only costs memory; `cgroupctl init` also prunes entries of vanished directories.
pub fn forget_fence(tree: &Tree, user_dir_id: u64) -> Result<()> {
    let map = match open_map(tree) {
        Ok(map) => map,
        Err(Error::PrivateIpNotAttached { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    sys::map_delete(map.as_fd(), &user_dir_id).map_err(|e| Error::Bpf {
        op: "BPF_MAP_DELETE_ELEM",
        target: format!(
            "fence map of {} (cgroup id {user_dir_id})",
            tree.root.display()
        ),
        reason: e.to_string(),
    })
}

/// What `sync_fences` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FenceSync {
    /// User directories registered, with their address (`None`: gid below min_gid).
    pub registered: Vec<(String, Option<Ipv4Addr>)>,
    /// User directories whose user NSS does not know (left unregistered: their processes are
    /// confined with no address through users/, the fail-closed case), and why.
    pub unknown: Vec<(String, String)>,
    /// Entries dropped because their cgroup is gone.
    pub pruned: usize,
}

/// Makes the map match the tree: registers every existing user cgroup (after a fresh map,
/// a changed min_gid, or a user whose gid changed) and drops entries of cgroups that are gone.
/// The keys are read *before* the directories are listed, so a fence a login registers
/// meanwhile is never dropped.
pub fn sync_fences(tree: &Tree, policy: &PrivateIpConfig) -> Result<FenceSync> {
    let map = open_map(tree)?;
    let pin = fence_map_pin(tree)?;
    let old_keys = sys::map_keys_u64(map.as_fd()).map_err(|e| Error::Bpf {
        op: "BPF_MAP_GET_NEXT_KEY",
        target: pin.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut out = FenceSync::default();
    let users = tree.users_dir();
    let users_id = cgroup_id(&users)?;
    // The root's own marker (`mark_attached`) stays while the root is the same cgroup; one of
    // a removed root (its id is never reused) goes with the other dead entries.
    let root_id = cgroup_id(&tree.root)?;
    let mut live = std::collections::HashSet::from([users_id, root_id]);
    update(&map, tree, &users, users_id, FenceValue::users_dir())?;
    let children = crate::inventory::child_cgroups(&users)?;
    let key = match children.is_empty() {
        true => None,
        false => Some(crate::tree::tree_key()?),
    };
    for dir in children {
        let Some(dir_name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        let id = cgroup_id(&dir)?;
        live.insert(id);
        // The user of `<user>.<tag>`, or of a legacy `users/<user>` whose sessions still run.
        let entry = key.as_ref().and_then(|k| k.classify(&dir_name));
        let name = entry.map_or(dir_name.clone(), |e| e.user().to_string());
        let user = match entry {
            Some(e) => crate::nss::lookup_user(e.user()),
            None => Err(Error::Other(format!("{dir_name}: no user's cgroup"))),
        };
        match user {
            Ok(user) => {
                let value = FenceValue::of_user(&user, policy);
                update(&map, tree, &dir, id, value)?;
                out.registered.push((name, value.address()));
            }
            Err(e) => {
                // Not a fence we can give an address: make sure no stale one stays.
                sys::map_delete(map.as_fd(), &id).map_err(|e| Error::Bpf {
                    op: "BPF_MAP_DELETE_ELEM",
                    target: pin.display().to_string(),
                    reason: e.to_string(),
                })?;
                out.unknown.push((name, e.to_string()));
            }
        }
    }
    for key in old_keys {
        if !live.contains(&key) {
            sys::map_delete(map.as_fd(), &key).map_err(|e| Error::Bpf {
                op: "BPF_MAP_DELETE_ELEM",
                target: pin.display().to_string(),
                reason: e.to_string(),
            })?;
            out.pruned += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::Cgroup2Mount;

    fn tree(mount: &str, mount_root: &str, root: &str) -> Tree {
        Tree {
            mount: Cgroup2Mount {
                mount_point: mount.into(),
                root: mount_root.into(),
            },
            root: root.into(),
        }
    }

    #[test]
    fn levels() {
        // <root>/users/<user>: the default root is at depth 1.
        let t = tree(
            "/sys/fs/cgroup/unified",
            "/",
            "/sys/fs/cgroup/unified/pam_cgroup",
        );
        assert_eq!(fence_level(&t).unwrap(), 3);
        let t = tree(
            "/sys/fs/cgroup",
            "/",
            "/sys/fs/cgroup/system.slice/pam-cgroup.service/tree",
        );
        assert_eq!(fence_level(&t).unwrap(), 5);
        // A mount showing a subtree: its own depth counts.
        let t = tree("/cg", "/a/b", "/cg/pc");
        assert_eq!(fence_level(&t).unwrap(), 5);
        assert!(fence_level(&tree("/cg", "/", "/elsewhere")).is_err());
    }

    #[test]
    fn values() {
        let policy = PrivateIpConfig::default();
        let user = |gid| UserInfo {
            name: "u".into(),
            uid: 5000,
            gid,
        };
        let v = FenceValue::of_user(&user(2001), &policy);
        assert_eq!(v.kind, KIND_FENCE);
        assert_eq!(v.ip4.to_ne_bytes(), [127, 0, 7, 209]);
        assert_eq!(v.address(), Some(Ipv4Addr::new(127, 0, 7, 209)));
        let low = FenceValue::of_user(&user(100), &policy);
        assert_eq!((low.ip4, low.address()), (0, None));
        assert_eq!(FenceValue::users_dir().kind, KIND_USERS);
        assert_eq!(v.uid, 5000);
        // The C struct is three u32s.
        assert_eq!(std::mem::size_of::<FenceValue>(), 12);
    }
}
