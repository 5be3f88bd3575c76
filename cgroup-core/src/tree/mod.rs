//! The cgroup tree of DESIGN.md:
//!
//! ```text
//! <root>/
//!   users/                        root:root 0711
//!     <user>.<tag>/               root's: aggregate limits and caps, never delegated; the tag
//!                                 is keyed (`tag`): no customer can name a neighbour's
//!       session-<pid>[-<n>]/      one leaf per PAM session, made by root, then delegated
//!       <service>/<leaf>/         cgroupctl run/classify; the leaf delegated the same way
//!   unconfined/session-<pid>/     exempt sessions started from inside a fence (su - root)
//! ```
//!
//! Nothing is ever created outside `<root>`: every component below it is a validated name.
//! Root's writes inside a user cgroup all go through `user_cgroup` (one directory descriptor,
//! then `*at()` calls); handing a leaf over goes through `delegation`.

mod controllers;
mod delegation;
pub mod dirfd;
pub mod freezer;
pub mod fs;
pub mod key;
pub mod processes;
pub mod spare;
pub mod stamp;
pub mod tag;
pub mod user_cgroup;

use std::path::{Path, PathBuf};

pub use controllers::{already_enabled, enable_down, offered, ControllerReport};
pub use delegation::{delegate_files, DELEGATE_XATTR, LEAF_MODE};
pub use fs::{Created, Removed};
pub use tag::{TreeKey, UserEntry};

use crate::error::{Error, Result};
use crate::mount::{cgroup2_mounts, mount_containing, Cgroup2Mount};
use crate::names::validate_user_name;
use crate::paths::{check_root_syntax, DEFAULT_ROOT_NAME, MOUNTINFO};

pub const USERS_DIR: &str = "users";
pub const UNCONFINED_DIR: &str = "unconfined";
pub const SESSION_PREFIX: &str = "session-";

/// A located tree: its cgroup2 mount and its root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub mount: Cgroup2Mount,
    pub root: PathBuf,
}

impl Tree {
    /// Finds the tree of a configured root (`[tree] root`; a broken config may still name
    /// one): the root, checked to be strictly inside a cgroup2 mount, or, with none,
    /// `<first cgroup2 mount>/pam_cgroup`.
    pub fn locate_root(root: Option<&Path>) -> Result<Tree> {
        if let Some(root) = root {
            // The login path: a few statfs(2) calls instead of reading all of mountinfo.
            return Self::locate_by_statfs(root);
        }
        let mounts = cgroup2_mounts()?;
        Self::locate_in(&mounts, None)
    }

    /// Finds the cgroup2 mount of a configured root with statfs(2): the root (or its deepest
    /// existing ancestor) must be on cgroup2, and the mount point is the highest ancestor
    /// still on cgroup2. Assumes the mount shows the hierarchy's (or the cgroup namespace's)
    /// root, as every normal mount does; `locate_in` reads mountinfo for the general case.
    pub fn locate_by_statfs(root: &Path) -> Result<Tree> {
        use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
        check_root_syntax(root).map_err(|reason| Error::BadRoot {
            root: root.to_path_buf(),
            reason,
        })?;
        let on_cgroup2 = |p: &Path| match statfs(p) {
            Ok(s) => Ok(s.filesystem_type() == CGROUP2_SUPER_MAGIC),
            Err(e) => Err(e),
        };
        let outside = || Error::RootOutsideCgroup2 {
            root: root.to_path_buf(),
            mounts: "statfs found no cgroup2 filesystem there".to_string(),
        };
        // The deepest existing directory on the way to the root.
        let mut probe = Some(root);
        let mut existing = None;
        while let Some(p) = probe {
            match on_cgroup2(p) {
                Ok(true) => {
                    existing = Some(p);
                    break;
                }
                Ok(false) => return Err(outside()),
                Err(nix::errno::Errno::ENOENT) => probe = p.parent(),
                Err(e) => return Err(Error::io("statfs", p, e)),
            }
        }
        let mut mount_point = existing.ok_or_else(outside)?;
        while let Some(parent) = mount_point.parent() {
            if on_cgroup2(parent).unwrap_or(false) {
                mount_point = parent;
            } else {
                break;
            }
        }
        if mount_point == root {
            return Err(outside());
        }
        Ok(Tree {
            mount: Cgroup2Mount {
                mount_point: mount_point.to_path_buf(),
                root: PathBuf::from("/"),
            },
            root: root.to_path_buf(),
        })
    }

    pub fn locate_in(mounts: &[Cgroup2Mount], root: Option<&Path>) -> Result<Tree> {
        let Some(first) = mounts.first() else {
            return Err(Error::NoCgroup2 {
                mountinfo: PathBuf::from(MOUNTINFO),
            });
        };
        let root = match root {
            Some(r) => r.to_path_buf(),
            None => first.mount_point.join(DEFAULT_ROOT_NAME),
        };
        check_root_syntax(&root).map_err(|reason| Error::BadRoot {
            root: root.clone(),
            reason,
        })?;
        let mount = mount_containing(mounts, &root)
            .filter(|m| m.mount_point != root)
            .ok_or_else(|| Error::RootOutsideCgroup2 {
                root: root.clone(),
                mounts: mounts
                    .iter()
                    .map(|m| m.mount_point.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(Tree {
            mount: mount.clone(),
            root,
        })
    }

    pub fn users_dir(&self) -> PathBuf {
        self.root.join(USERS_DIR)
    }

    pub fn unconfined_dir(&self) -> PathBuf {
        self.root.join(UNCONFINED_DIR)
    }

    /// The cgroup directory of `user`, `users/<user>.<tag>`, after validating the name. The one
    /// place that names it (the tree key is read, or made, on first use).
    pub fn user_dir(&self, user: &str) -> Result<PathBuf> {
        self.user_dir_with(&tree_key()?, user)
    }

    /// The same under a given key.
    pub fn user_dir_with(&self, key: &TreeKey, user: &str) -> Result<PathBuf> {
        validate_user_name(user)?;
        Ok(self.users_dir().join(key.dir_name(user)))
    }

    /// `users/<user>`, where versions before the tags put the user: an upgraded host keeps it
    /// while its sessions live (levers reach it, gc removes it once empty).
    pub fn legacy_user_dir(&self, user: &str) -> Result<PathBuf> {
        validate_user_name(user)?;
        Ok(self.users_dir().join(user))
    }

    /// The user cgroup holding `path` (a cgroup anywhere inside it, or itself): its user, its
    /// directory and whether that is a legacy one. `None` outside `users/` or for a child of
    /// `users/` that is no user's.
    pub fn user_of(&self, path: &Path) -> Result<Option<(String, PathBuf, bool)>> {
        let Ok(rel) = path.strip_prefix(self.users_dir()) else {
            return Ok(None);
        };
        let Some(first) = rel.iter().next().and_then(|c| c.to_str()) else {
            return Ok(None);
        };
        Ok(tree_key()?.classify(first).map(|entry| {
            (
                entry.user().to_string(),
                self.users_dir().join(first),
                entry.is_legacy(),
            )
        }))
    }

    /// Directories from the mount point down to `dir` (inclusive), top first.
    pub fn chain_to(&self, dir: &Path) -> Vec<PathBuf> {
        let mut chain = Vec::new();
        let mut current = Some(dir);
        while let Some(d) = current {
            if !d.starts_with(&self.mount.mount_point) {
                break;
            }
            chain.push(d.to_path_buf());
            if d == self.mount.mount_point {
                break;
            }
            current = d.parent();
        }
        chain.reverse();
        chain
    }

    /// When this process sits in the tree root or one of its ancestors, controllers cannot be
    /// enabled below it (the "no internal processes" rule). That is where systemd starts the
    /// processes of a `Delegate=yes` unit whose cgroup holds the tree: move into a leaf
    /// `<own cgroup>/<name>` first. The top of the mount is exempt from the rule: nothing to do
    /// there. Returns the leaf moved into, if any.
    pub fn step_aside(&self, name: &str) -> Result<Option<PathBuf>> {
        crate::names::validate_service_name(name)?;
        let own = self.cgroup_of(std::process::id())?;
        if own == self.mount.mount_point || !self.root.starts_with(&own) {
            return Ok(None);
        }
        let leaf = own.join(name);
        fs::create_dir(&leaf)?;
        fs::move_pid(&leaf, std::process::id())?;
        Ok(Some(leaf))
    }

    /// Creates `<root>` and `<root>/users` (and the root's ancestors inside the mount).
    pub fn ensure_base(&self) -> Result<()> {
        // Ancestors between the mount point and the root (e.g. a configured nested root).
        for dir in self.chain_to(&self.root).iter().skip(1) {
            fs::create_dir(dir)?;
        }
        if fs::create_dir(&self.users_dir())? == Created::Created {
            // Traversable, not listable: nobody lists the customers.
            fs::chmod(&self.users_dir(), user_cgroup::USERS_MODE)?;
        }
        Ok(())
    }

    /// Creates `unconfined/` (root's sessions; nobody else's business).
    pub fn ensure_unconfined(&self) -> Result<PathBuf> {
        let dir = self.unconfined_dir();
        if fs::create_dir(&dir)? == Created::Created {
            fs::chmod(&dir, user_cgroup::UNCONFINED_MODE)?;
        }
        Ok(dir)
    }

    /// The cgroup of a process, as a path under this tree's mount, from /proc/PID/cgroup.
    pub fn cgroup_of(&self, pid: u32) -> Result<PathBuf> {
        let rel = fs::cgroup_v2_of(pid)?.ok_or_else(|| Error::Proc {
            path: format!("/proc/{pid}/cgroup").into(),
            reason: "no cgroup v2 entry",
        })?;
        Ok(self.path_of(&rel))
    }

    /// Turns a cgroup path as the kernel shows it (`/a/b`, relative to the root of the
    /// hierarchy) into a filesystem path under this tree's mount. Component by component, as
    /// bytes: a customer's sub-cgroup may be named in any bytes.
    pub fn path_of(&self, cgroup: impl AsRef<Path>) -> PathBuf {
        let cgroup = cgroup.as_ref();
        // A mount of a sub-tree (in a cgroup namespace) shows paths from the hierarchy's root.
        let rel = cgroup.strip_prefix(&self.mount.root).unwrap_or(cgroup);
        let mut path = self.mount.mount_point.clone();
        path.extend(
            rel.components()
                .filter(|c| matches!(c, std::path::Component::Normal(_))),
        );
        path
    }

    /// Is `path` inside `<root>/users`?
    pub fn is_in_users(&self, path: &Path) -> bool {
        path.starts_with(self.users_dir()) && path != self.users_dir()
    }

    /// Moves `pid` (an exempt caller leaving a user's fence: `su -` from a customer's shell)
    /// into a new root-owned leaf `unconfined/session-<pid>`. Nothing is left behind when the
    /// move fails.
    pub fn enter_unconfined(&self, pid: u32) -> Result<PathBuf> {
        let parent = dirfd::CgroupDir::open(&self.ensure_unconfined()?)?;
        let leaf = user_cgroup::new_child(&parent, &format!("{SESSION_PREFIX}{pid}"), 0o755)?;
        if let Err(e) = leaf.write(crate::cgroup_files::PROCS, &format!("{pid}\n")) {
            if let Some(name) = leaf.path().file_name() {
                let _ = parent.remove_child(name);
            }
            return Err(e);
        }
        Ok(leaf.path().to_path_buf())
    }
}

/// This host's tree key (`key`), as a cgroup-core error.
pub fn tree_key() -> Result<TreeKey> {
    key::current().map_err(Error::TreeKey)
}

/// A short random hex string (from getrandom; never blocks after boot).
pub(crate) fn random_suffix() -> String {
    let mut buf = [0u8; 4];
    // SAFETY: buf is a valid, writable buffer of buf.len() bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    if n != buf.len() as isize {
        // Entropy not available: fall back to the clock, good enough for a name suffix.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        buf = nanos.to_le_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts() -> Vec<Cgroup2Mount> {
        vec![Cgroup2Mount {
            mount_point: "/sys/fs/cgroup/unified".into(),
            root: "/".into(),
        }]
    }

    #[test]
    fn default_root_is_in_first_mount() {
        let t = Tree::locate_in(&mounts(), None).unwrap();
        assert_eq!(t.root, PathBuf::from("/sys/fs/cgroup/unified/pam_cgroup"));
    }

    #[test]
    fn root_outside_cgroup2_is_refused() {
        for bad in [
            "/sys/fs/cgroup/memory/x",
            "/etc/x",
            "/sys/fs/cgroup/unified",
        ] {
            let e = Tree::locate_in(&mounts(), Some(Path::new(bad))).unwrap_err();
            assert!(matches!(e, Error::RootOutsideCgroup2 { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn no_mount_is_an_error() {
        assert!(matches!(
            Tree::locate_in(&[], None),
            Err(Error::NoCgroup2 { .. })
        ));
    }

    #[test]
    fn kernel_paths_map_under_the_mount() {
        let t = Tree::locate_in(&mounts(), None).unwrap();
        assert_eq!(t.path_of("/"), PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(
            t.path_of("/pam_cgroup/users/a"),
            PathBuf::from("/sys/fs/cgroup/unified/pam_cgroup/users/a")
        );
        assert!(t.is_in_users(&t.users_dir().join("a/session-1")));
        assert!(!t.is_in_users(&t.users_dir()));
        assert!(!t.is_in_users(&t.unconfined_dir()));
    }

    #[test]
    fn chain_runs_from_the_mount_down() {
        let t = Tree::locate_in(&mounts(), None).unwrap();
        let chain = t.chain_to(&t.users_dir().join("alice"));
        assert_eq!(
            chain.first().unwrap(),
            &PathBuf::from("/sys/fs/cgroup/unified")
        );
        assert_eq!(chain.last().unwrap(), &t.users_dir().join("alice"));
        assert_eq!(chain.len(), 4);
    }

    #[test]
    fn user_dir_validates_and_is_tagged() {
        let t = Tree::locate_in(&mounts(), None).unwrap();
        let key = TreeKey::from_bytes([1; 16]);
        assert!(t.user_dir_with(&key, "../x").is_err());
        let dir = t.user_dir_with(&key, "alice").unwrap();
        assert_eq!(dir.parent(), Some(t.users_dir().as_path()));
        assert_eq!(
            dir.file_name().and_then(|n| n.to_str()),
            Some(format!("alice.{}", key.tag("alice")).as_str())
        );
        assert_eq!(
            t.legacy_user_dir("alice").unwrap(),
            t.users_dir().join("alice")
        );
    }
}
