//! Garbage collection of empty leaves: session leaves whose processes outlived the PAM
//! session (nohup) and then exited, and service leaves left by `cgroupctl run`/`classify`.
//!
//! Only cgroups pam_cgroup made are ever removed: root-owned directories strictly below a
//! user cgroup (session leaves, `cgroupctl`'s service dirs and leaves) and `unconfined/session-*`.
//! Cgroups the user made in its delegated subtree are owned by the user and are the user's
//! business; the user cgroup itself holds the limits and is never removed.
//!
//! A leaf that was never populated may be in the instant between its mkdir and the write of
//! the first PID (a login in progress): such leaves are removed only once older than a minimum
//! age. A leaf seen going from populated to empty (the daemon's inotify event) is removed at once.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::Result;
use crate::inventory::child_cgroups;
use crate::stats::read_optional;
use crate::tree::{fs, Removed, Tree, SESSION_PREFIX};

/// Options of one collection pass.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Leaves younger than this are kept (see the module comment).
    pub min_age: Duration,
    /// Report what would be removed without removing it.
    pub dry_run: bool,
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

/// Is `dir` at a place where gc may remove cgroups (below a user cgroup, or an unconfined
/// session leaf)? Returns the user name, or `Some(None)` for unconfined.
pub fn reap_position(tree: &Tree, dir: &Path) -> Option<Option<String>> {
    if let Ok(rel) = dir.strip_prefix(tree.users_dir()) {
        let mut parts = rel.components();
        let user = parts.next()?.as_os_str().to_str()?.to_string();
        parts.next()?;
        return Some(Some(user));
    }
    if dir.parent() == Some(tree.unconfined_dir().as_path()) {
        let name = dir.file_name()?.to_str()?;
        if name.starts_with(SESSION_PREFIX) {
            return Some(None);
        }
    }
    None
}

/// `populated` of cgroup.events; `None` when the cgroup is gone.
pub fn populated(dir: &Path) -> Result<Option<bool>> {
    Ok(read_optional(&dir.join("cgroup.events"))?.and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("populated "))
            .map(|v| v.trim() != "0")
    }))
}

/// Is `dir` an empty leaf pam_cgroup made (position, owner, no children, not populated)?
/// A dry run asks with `children_going`: its children would have been removed first.
fn removable(tree: &Tree, dir: &Path, children_going: bool) -> Result<bool> {
    if reap_position(tree, dir).is_none() {
        return Ok(false);
    }
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return Ok(false);
    };
    if !meta.is_dir() || meta.uid() != 0 {
        return Ok(false);
    }
    if !children_going && !child_cgroups(dir)?.is_empty() {
        return Ok(false);
    }
    if children_going {
        // Its children are still there (dry run): only its own processes count.
        return Ok(fs::procs(dir).map(|p| p.is_empty()).unwrap_or(false));
    }
    Ok(populated(dir)? == Some(false))
}

fn age(dir: &Path) -> Duration {
    std::fs::symlink_metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

fn remove(tree: &Tree, dir: &Path, dry_run: bool, out: &mut Vec<Reaped>) -> Result<bool> {
    let user = reap_position(tree, dir).flatten();
    // issue 18: fault counts the kernel would forget with the leaf go to the user's record.
    let carry_error = match (&user, dry_run) {
        (Some(u), false) => crate::stats::carry::before_removal(&tree.users_dir().join(u), dir)
            .err()
            .map(|e| e.to_string()),
        _ => None,
    };
    let removed = dry_run || fs::remove_dir(dir)? == Removed::Removed;
    if removed {
        out.push(Reaped {
            path: dir.to_path_buf(),
            user,
            carry_error,
        });
    }
    Ok(removed)
}

/// Removes `dir` if it is an empty leaf pam_cgroup made, then its parents that became empty
/// leaves that way (a service dir whose last leaf went). No minimum age: the caller knows the
/// leaf just emptied (the daemon's cgroup.events notification).
pub fn reap_emptied(tree: &Tree, dir: &Path) -> Result<Vec<Reaped>> {
    let mut out = Vec::new();
    let mut current = Some(dir.to_path_buf());
    while let Some(d) = current {
        if !removable(tree, &d, false)? || !remove(tree, &d, false, &mut out)? {
            break;
        }
        current = d.parent().map(Path::to_path_buf);
    }
    Ok(out)
}

/// One pass over the whole tree, bottom-up.
pub fn collect(tree: &Tree, opts: GcOptions) -> Result<Vec<Reaped>> {
    let mut out = Vec::new();
    for user_dir in child_cgroups(&tree.users_dir())? {
        for child in child_cgroups(&user_dir)? {
            walk(tree, &child, opts, &mut out)?;
        }
    }
    for leaf in child_cgroups(&tree.unconfined_dir())? {
        walk(tree, &leaf, opts, &mut out)?;
    }
    Ok(out)
}

/// Post-order: children first; returns whether `dir` is gone (or would be, in a dry run).
fn walk(tree: &Tree, dir: &Path, opts: GcOptions, out: &mut Vec<Reaped>) -> Result<bool> {
    let children = child_cgroups(dir)?;
    let mut all_gone = true;
    for child in &children {
        all_gone &= walk(tree, child, opts, out)?;
    }
    if !all_gone {
        return Ok(false);
    }
    // A dir that became a leaf because this pass removed its children is not "in the middle
    // of a login": the age rule is for leaves found empty as they are.
    let emptied_here = !children.is_empty();
    if !removable(tree, dir, opts.dry_run && emptied_here)? {
        return Ok(false);
    }
    if !emptied_here && age(dir) < opts.min_age {
        return Ok(false);
    }
    remove(tree, dir, opts.dry_run, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::Cgroup2Mount;

    fn tree() -> Tree {
        Tree::locate_in(
            &[Cgroup2Mount {
                mount_point: "/cg".into(),
                root: "/".into(),
            }],
            Some(Path::new("/cg/pc")),
        )
        .unwrap()
    }

    #[test]
    fn positions() {
        let t = tree();
        assert_eq!(
            reap_position(&t, Path::new("/cg/pc/users/alice/session-1")),
            Some(Some("alice".into()))
        );
        assert_eq!(
            reap_position(&t, Path::new("/cg/pc/users/alice/web/run-1")),
            Some(Some("alice".into()))
        );
        assert_eq!(reap_position(&t, Path::new("/cg/pc/users/alice")), None);
        assert_eq!(reap_position(&t, Path::new("/cg/pc/users")), None);
        assert_eq!(
            reap_position(&t, Path::new("/cg/pc/unconfined/session-9")),
            Some(None)
        );
        assert_eq!(reap_position(&t, Path::new("/cg/pc/unconfined/x")), None);
        assert_eq!(reap_position(&t, Path::new("/cg/other/session-1")), None);
    }
}
