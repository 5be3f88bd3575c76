//! Garbage collection of dead leaves: session leaves whose processes outlived the PAM session
//! (nohup) and then exited, service leaves left by `cgroupctl run`/`classify`, and what a 0.1.0
//! customer made directly in its user cgroup once it empties.
//!
//! What gc removes is decided by position, in the part of the tree only root writes:
//! - a leaf: a child of a user cgroup that is not a service dir (a session leaf, or a 0.1.0
//!   customer's cgroup), a child of a service dir, or `unconfined/session-*`;
//! - a service dir (`<user cgroup>/<service>`, root-owned, not `session-*`) once it has no
//!   leaf left;
//! - a legacy user cgroup (`users/<user>` of a version before the keyed names) once it has
//!   no leaf left: new logins go to `users/<user>.<tag>`, so it only empties.
//!
//! A leaf is dead when its `cgroup.events` says `populated 0`: nothing runs anywhere in its
//! subtree. It is then trimmed (`user_cgroup::trim`): taken back from the customer and removed
//! with the empty sub-cgroups the customer left in it. The user cgroup holds the limits and is
//! never removed, unless it is a legacy one.
//!
//! A leaf that was never populated may be in the instant between its mkdir and the write of
//! the first PID (a login in progress): such leaves are removed only once older than a minimum
//! age. A leaf seen going from populated to empty (the daemon's inotify event) goes at once.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::cgroup_files::{self, CgroupEvents};
use crate::error::Result;
use crate::tree::dirfd::CgroupDir;
use crate::tree::user_cgroup::{self, open_users, Trimmed};
use crate::tree::{spare, tree_key, Tree, SESSION_PREFIX};

/// Options of one collection pass.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Leaves younger than this are kept (see the module comment).
    pub min_age: Duration,
    /// Report what would be removed without removing it.
    pub dry_run: bool,
    /// Spare leaves (crate::tree::spare) younger than this are kept: `spare::MAX_AGE` with
    /// `[tree] spare_leaves` on; zero with it off, so spares go as any empty leaf does.
    pub spare_max_age: Duration,
}

impl GcOptions {
    /// A pass for this config: spares kept as long as its `[tree] spare_leaves` says.
    pub fn new(min_age: Duration, dry_run: bool, spare_leaves: bool) -> GcOptions {
        GcOptions {
            min_age,
            dry_run,
            spare_max_age: if spare_leaves {
                spare::MAX_AGE
            } else {
                Duration::ZERO
            },
        }
    }
}

/// One removed (or, in a dry run, removable) cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reaped {
    pub path: PathBuf,
    /// The user whose tree held it (`None`: `unconfined/`).
    pub user: Option<String>,
    /// Why the leaf's fault counts could not be carried to the user's record, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carry_error: Option<String>,
}

/// Where a cgroup sits in the part of the tree root writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// A leaf of `user` (`None`: `unconfined/session-*`).
    Leaf { user: Option<String> },
    /// `<user cgroup>/<service>`.
    ServiceDir { user: String },
}

/// Is `name` (a child of a user cgroup) a service dir? Root-owned and not the name of a
/// session's or a user manager's leaf.
fn is_service_dir(dir: &CgroupDir, name: &str) -> bool {
    !name.starts_with(SESSION_PREFIX)
        && !name.starts_with(crate::tree::user_cgroup::MANAGER_PREFIX)
        && dir
            .open_child(name)
            .and_then(|d| d.stat())
            .is_ok_and(|st| st.st_uid == 0)
}

/// Where `dir` sits, if root may remove it (see the module comment).
pub fn position(tree: &Tree, dir: &Path) -> Option<Position> {
    if let Ok(rel) = dir.strip_prefix(tree.users_dir()) {
        let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
        let (user_dir, user) = match parts.first() {
            Some(first) => {
                let user = tree_key().ok()?.classify(first)?.user().to_string();
                (tree.users_dir().join(first), user)
            }
            None => return None,
        };
        return match parts.as_slice() {
            [_, name] => {
                let parent = CgroupDir::open(&user_dir).ok()?;
                if is_service_dir(&parent, name) {
                    Some(Position::ServiceDir { user })
                } else {
                    Some(Position::Leaf { user: Some(user) })
                }
            }
            [_, service, _] => {
                let parent = CgroupDir::open(&user_dir).ok()?;
                is_service_dir(&parent, service).then_some(Position::Leaf { user: Some(user) })
            }
            _ => None,
        };
    }
    if dir.parent() == Some(tree.unconfined_dir().as_path()) {
        let name = dir.file_name()?.to_str()?;
        if name.starts_with(SESSION_PREFIX) {
            return Some(Position::Leaf { user: None });
        }
    }
    None
}

/// `populated` of cgroup.events; `None` when the cgroup is gone.
pub fn populated(dir: &Path) -> Result<Option<bool>> {
    let text = crate::stats::read_optional(&dir.join(cgroup_files::EVENTS))?;
    Ok(text.and_then(|t| CgroupEvents::parse(&t).populated))
}

fn age(dir: &CgroupDir) -> Duration {
    dir.stat()
        .ok()
        .and_then(|st| {
            let secs = u64::try_from(st.st_mtime).ok()?;
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
        })
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// Considers the leaf `name` of `parent`: trims it if dead (and old enough, unless `emptied`).
/// Returns whether it is gone (or would be, in a dry run).
fn consider_leaf(
    tree: &Tree,
    parent: &CgroupDir,
    name: &str,
    user: Option<&str>,
    opts: GcOptions,
    emptied: bool,
    out: &mut Vec<Reaped>,
) -> Result<bool> {
    let leaf = match parent.open_child(name) {
        Ok(d) => d,
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(true),
        Err(e) => return Err(e),
    };
    if user_cgroup::populated(&leaf)? {
        return Ok(false);
    }
    // A leaf made ahead for the user's next login (crate::tree::spare) is never taken for
    // one that just emptied, and a full pass gives it back once unclaimed for too long.
    if spare::is_spare(&leaf) && (emptied || age(&leaf) < opts.spare_max_age) {
        return Ok(false);
    }
    if !emptied && age(&leaf) < opts.min_age {
        return Ok(false);
    }
    let path = leaf.path().to_path_buf();
    drop(leaf);
    // Fault counts the kernel would forget with each removed cgroup go to the user's record
    // first (`stats::carry`): a customer's totals must not shrink when its leaves are reaped.
    let mut carry_error = None;
    // The user cgroup holding the leaf (a legacy one carries into its own record).
    let user_dir = match user {
        Some(_) => tree.user_of(&path)?.map(|(_, dir, _)| dir),
        None => None,
    };
    let mut carry = |dir: &Path| {
        if let Some(user_dir) = &user_dir {
            if let Err(e) = crate::stats::carry::before_removal(user_dir, dir) {
                carry_error.get_or_insert_with(|| e.to_string());
            }
        }
    };
    let gone = opts.dry_run || user_cgroup::trim(parent, name, &mut carry)? != Trimmed::Kept;
    if gone {
        out.push(Reaped {
            path,
            user: user.map(str::to_string),
            carry_error,
        });
    }
    Ok(gone)
}

/// A service dir with no leaf left goes too.
fn consider_service_dir(
    tree: &Tree,
    user_dir: &CgroupDir,
    name: &str,
    user: &str,
    opts: GcOptions,
    out: &mut Vec<Reaped>,
) -> Result<()> {
    let service = match user_dir.open_child(name) {
        Ok(d) => d,
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut all_gone = true;
    for (leaf, is_dir) in service.entries()? {
        // A service dir is root's: root names its leaves, always in UTF-8.
        if let (true, Some(leaf)) = (is_dir, leaf.to_str()) {
            all_gone &= consider_leaf(tree, &service, leaf, Some(user), opts, false, out)?;
        }
    }
    if !all_gone {
        return Ok(());
    }
    let path = service.path().to_path_buf();
    drop(service);
    let gone = opts.dry_run || user_cgroup::remove_if_childless(user_dir, name)?;
    if gone {
        out.push(Reaped {
            path,
            user: Some(user.to_string()),
            carry_error: None,
        });
    }
    Ok(())
}

/// Removes `dir` if it is a leaf root may remove and nothing runs in it any more, then its
/// service dir if that emptied. No minimum age: the caller knows the leaf just emptied (the
/// daemon's cgroup.events notification).
pub fn reap_emptied(tree: &Tree, dir: &Path) -> Result<Vec<Reaped>> {
    let mut out = Vec::new();
    let Some(Position::Leaf { user }) = position(tree, dir) else {
        return Ok(out);
    };
    let (Some(parent_path), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str()))
    else {
        return Ok(out);
    };
    let parent = match CgroupDir::open(parent_path) {
        Ok(p) => p,
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(out),
        Err(e) => return Err(e),
    };
    let opts = GcOptions::new(Duration::ZERO, false, true);
    let gone = consider_leaf(tree, &parent, name, user.as_deref(), opts, true, &mut out)?;
    if gone {
        if let Some((user, user_dir, true)) = tree.user_of(dir)? {
            // The last leaf of a legacy user cgroup (or of its last service) takes it along.
            if let Some(service) = dir
                .parent()
                .filter(|p| *p != user_dir.as_path())
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
            {
                if let Ok(legacy) = CgroupDir::open(&user_dir) {
                    consider_service_dir(tree, &legacy, service, &user, opts, &mut out)?;
                }
            }
            remove_emptied_legacy(&user_dir, &user, &mut out)?;
            return Ok(out);
        }
    }
    if let (true, Some(user), Some(Position::ServiceDir { .. })) =
        (gone, user.as_deref(), position(tree, parent_path))
    {
        if let (Some(user_path), Some(service)) = (
            parent_path.parent(),
            parent_path.file_name().and_then(|n| n.to_str()),
        ) {
            if let Ok(user_dir) = CgroupDir::open(user_path) {
                drop(parent);
                if user_cgroup::remove_if_childless(&user_dir, service)? {
                    out.push(Reaped {
                        path: parent_path.to_path_buf(),
                        user: Some(user.to_string()),
                        carry_error: None,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Removes the legacy user cgroup `dir` once it has no child cgroup left and nothing runs
/// in it: root's directory, made by an older version, which no login enters any more.
fn remove_emptied_legacy(dir: &Path, user: &str, out: &mut Vec<Reaped>) -> Result<()> {
    let (Some(users), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Ok(());
    };
    let legacy = match CgroupDir::open(dir) {
        Ok(d) => d,
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if user_cgroup::populated(&legacy)? {
        return Ok(());
    }
    drop(legacy);
    let users = CgroupDir::open(users)?;
    if user_cgroup::remove_if_childless(&users, name)? {
        out.push(Reaped {
            path: dir.to_path_buf(),
            user: Some(user.to_string()),
            carry_error: None,
        });
    }
    Ok(())
}

/// One pass over the whole tree.
pub fn collect(tree: &Tree, opts: GcOptions) -> Result<Vec<Reaped>> {
    let mut out = Vec::new();
    if let Some(users) = open_users(tree)? {
        let key = tree_key()?;
        for (entry, is_dir) in users.entries()? {
            // users/ and the user cgroups are root's: a name root did not make (no user's,
            // not UTF-8) is nothing of ours to reap.
            let Some(dir_name) = entry.to_str() else {
                continue;
            };
            let Some(found) = key.classify(dir_name).filter(|_| is_dir) else {
                continue;
            };
            let user = found.user();
            let user_dir = match users.open_child(dir_name) {
                Ok(d) => d,
                Err(e) if e.errno() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            for (name, is_dir) in user_dir.entries()? {
                let (true, Some(name)) = (is_dir, name.to_str()) else {
                    continue;
                };
                if is_service_dir(&user_dir, name) {
                    consider_service_dir(tree, &user_dir, name, user, opts, &mut out)?;
                } else {
                    consider_leaf(tree, &user_dir, name, Some(user), opts, false, &mut out)?;
                }
            }
            if found.is_legacy() && !opts.dry_run {
                let path = user_dir.path().to_path_buf();
                drop(user_dir);
                remove_emptied_legacy(&path, user, &mut out)?;
            }
        }
    }
    match CgroupDir::open(&tree.unconfined_dir()) {
        Ok(unconfined) => {
            for (name, is_dir) in unconfined.entries()? {
                let (true, Some(name)) = (is_dir, name.to_str()) else {
                    continue;
                };
                if name.starts_with(SESSION_PREFIX) {
                    consider_leaf(tree, &unconfined, name, None, opts, false, &mut out)?;
                }
            }
        }
        Err(e) if e.errno() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}
