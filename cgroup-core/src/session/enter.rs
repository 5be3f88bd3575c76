//! Where a login's process goes: out of a fence into `unconfined/` for an exempt caller, or
//! into a new leaf of its user cgroup (a session leaf counted against sessions.max, or the
//! user manager's), and what the log must hear on the way.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::notice::{Level, Notice};
use crate::nss::UserInfo;
use crate::policy;
use crate::sessions::SessionMark;
use crate::tree::user_cgroup::UserCgroup;
use crate::tree::{self, Tree};

/// The module never loads BPF (`cgroupctl init` does); it only checks the programs are
/// there, so a confined user is never let in with a shared loopback. The fence map too (a
/// 0.1.0 attach has none until `cgroupctl init`): checked here, outside the user's cgroup, so
/// its absence follows on_error like the programs'. A user without a private address is told
/// so in the log.
pub(super) fn check_private_ip(
    tree: &Tree,
    config: &Config,
    user: &UserInfo,
    notices: &mut Vec<Notice>,
) -> Result<()> {
    // The marker is read from the fence map itself: found, the map is there too. Without it,
    // the programs are queried one by one and the map's pin looked for.
    if !crate::private_ip::marked_attached(&tree.root)? {
        let missing = crate::private_ip::query_empty_hooks(&tree.root)?;
        if !missing.is_empty() {
            return Err(Error::PrivateIpNotAttached {
                root: tree.root.clone(),
                missing: missing.join(", "),
            });
        }
        if !crate::private_ip::fence_map_pin(tree)?.exists() {
            return Err(Error::PrivateIpNotAttached {
                root: tree.root.clone(),
                missing: "the fence map".to_string(),
            });
        }
    }
    if let Err(reason) = crate::private_ip::private_address(user.gid, config.private_ip.min_gid) {
        notices.push(Notice::new(
            Level::Warning,
            format!(
                "user {} has no private address: primary gid {} {reason}; its binds and connects on the [private_ip] ports are refused",
                user.name, user.gid
            ),
        ));
    }
    Ok(())
}

/// Close moves nobody: a caller that outlives its close stays where its last session put it
/// until its next open moves it here. Say so, so the admin exempts its service.
pub(super) fn report_survivor(
    tree: &Tree,
    service: &str,
    pid: u32,
    notices: &mut Vec<Notice>,
) -> Result<()> {
    let previous = tree.cgroup_of(pid)?;
    // Root's own login/: a customer may remove an emptied one in a leaf it owns and make its
    // own, but cannot make one owned by root.
    let roots_login = || std::fs::metadata(&previous).is_ok_and(|m| m.uid() == 0);
    if survived_close(tree, &previous, pid) && roots_login() {
        crate::survivors::record(service);
        let text = format!(
            "PAM service {} kept its process alive after pam_close_session (still in {}): until reboot its closes move the caller out to an unconfined leaf, where no customer can reach it; a program that opens and closes sessions without exiting runs nothing in them: list {:?} in policy.exempt_services",
            service,
            previous.display(),
            service
        );
        // Once per service, not per login (the text names a different leaf each time).
        notices.push(Notice::once(
            "survived-close",
            service,
            Level::Warning,
            text,
        ));
    }
    Ok(())
}

/// The unconfined leaf an exempt caller sitting in a user's fence was moved to; `None` when
/// it was not in one.
pub(super) fn leave_fence(config: Option<&Config>, pid: u32) -> Result<Option<PathBuf>> {
    let root = config.and_then(|c| c.tree.root.as_deref());
    let tree = Tree::locate_root(root)?;
    let previous = tree.cgroup_of(pid)?;
    if !tree.is_in_users(&previous) {
        return Ok(None);
    }
    tree.enter_unconfined(pid).map(Some)
}

/// What placing a login in its leaf needs.
pub(super) struct Login<'a> {
    pub(super) tree: &'a Tree,
    pub(super) config: &'a Config,
    pub(super) user: &'a UserInfo,
    pub(super) user_cgroup: &'a UserCgroup,
    pub(super) pid: u32,
    /// The session's mark (`crate::sessions`).
    pub(super) mark: &'a SessionMark,
    /// sessions.max, when it applies to this login.
    pub(super) cap: Option<u32>,
}

/// A login's session leaf, counted against sessions.max: the mark, the count and the new leaf
/// under the user's lock. Every failure here is inside the user's fence.
pub(super) fn enter_login_leaf(login: &Login<'_>, notices: &mut Vec<Notice>) -> Result<PathBuf> {
    let Login {
        tree,
        config,
        user,
        user_cgroup,
        pid,
        mark,
        cap,
    } = *login;
    let inside = |source: Error| Error::InsideFence {
        user: user.name.clone(),
        source: Box::new(source),
    };
    // sessions.max: the count and the new leaf's mark under one lock (crate::sessions). The
    // lock is held by another login of this same user, which may be the customer's own `su`
    // stopped on purpose: the wait is short and its end refuses this login, never opens it.
    let _lock = match cap {
        Some(_) => Some(crate::sessions::lock_user(&user.name).map_err(inside)?),
        None => None,
    };
    if let Some(max) = cap {
        // Sessions still open in a legacy cgroup (opened before an upgrade) count too: one
        // more open, ENOENT once the legacy cgroup is gone.
        let legacy = UserCgroup::open_legacy(tree, &user.name).map_err(inside)?;
        let open = policy::count_open(
            config,
            &tree.mount.mount_point,
            std::iter::once(user_cgroup).chain(legacy.as_ref()),
        )
        .map_err(inside)?;
        policy::at_cap(&user.name, open, max)?;
    }
    let (leaf, mark_error) =
        enter_new_leaf(config, user, user_cgroup, pid, mark, cap.is_some()).map_err(inside)?;
    if let Some(e) = mark_error {
        // Without a cap the mark only feeds `cgroupctl sessions`: not worth a refused login.
        notices.push(Notice::new(
            Level::Warning,
            format!("session record not written (cgroupctl sessions will not list it): {e}"),
        ));
    }
    Ok(leaf)
}

/// A fresh leaf, the process moved in, the leaf handed over. A leaf that vanished before the
/// move (gc took it for a dead one) is replaced by a new one.
fn enter_new_leaf(
    config: &Config,
    user: &UserInfo,
    user_cgroup: &UserCgroup,
    pid: u32,
    mark: &SessionMark,
    mark_required: bool,
) -> Result<(PathBuf, Option<Error>)> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let leaf = user_cgroup.new_session_leaf(pid, config.tree.leaf_caps())?;
        match leaf.enter(user_cgroup.dir(), pid) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::ENOENT) && attempts < 3 => continue,
            Err(e) => {
                leaf.discard(user_cgroup.dir());
                return Err(e);
            }
        }
        // Before the hand-over, so that the leaf is never the user's without its mark. With
        // sessions.max the mark is what the next login counts: no mark, no login.
        let mark_error = match leaf.mark(&mark.encode()) {
            Ok(()) => None,
            Err(e) if mark_required => return Err(e),
            Err(e) => Some(e),
        };
        // Handed over only once the process is in: the user never holds an empty leaf that
        // a login is about to use.
        leaf.delegate(user_cgroup, user.uid, user.gid)?;
        return Ok((leaf.entry_path(), mark_error));
    }
}

/// The user manager's leaf: made, the manager's process moved into it, handed over whole.
pub(super) fn enter_manager_leaf(
    config: &Config,
    user: &UserInfo,
    user_cgroup: &UserCgroup,
    pid: u32,
) -> Result<PathBuf> {
    let leaf = user_cgroup.new_manager_leaf(pid, config.tree.leaf_caps())?;
    if let Err(e) = leaf.enter(user_cgroup.dir(), pid) {
        leaf.discard(user_cgroup.dir());
        return Err(e);
    }
    // Handed over only once the process is in, as a session leaf is.
    leaf.delegate(user_cgroup, user.uid, user.gid)?;
    Ok(leaf.entry_path())
}

/// Did process `pid` open the session whose `login/` leaf `cgroup` is, and outlive its close?
/// A PAM caller that opens and closes sessions without exiting (Dovecot's auth worker with
/// `session=yes`) finds itself there at its next open: session leaves are named after their
/// opener's pid.
pub fn survived_close(tree: &Tree, cgroup: &Path, pid: u32) -> bool {
    // Exactly users/<user>/session-<pid>/login: the same names deeper down are the customer's.
    let Ok(rel) = cgroup.strip_prefix(tree.users_dir()) else {
        return false;
    };
    if rel.components().count() != 3
        || cgroup.file_name().and_then(|n| n.to_str()) != Some(tree::user_cgroup::LOGIN_DIR)
    {
        return false;
    }
    let own = format!("{}{pid}", tree::SESSION_PREFIX);
    cgroup
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == own || n.starts_with(&format!("{own}-")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::Cgroup2Mount;

    fn tree() -> Tree {
        Tree {
            mount: Cgroup2Mount {
                mount_point: PathBuf::from("/sys/fs/cgroup"),
                root: PathBuf::from("/"),
            },
            root: PathBuf::from("/sys/fs/cgroup/pam_cgroup"),
        }
    }

    #[test]
    fn a_caller_back_in_a_leaf_named_after_it_survived_its_close() {
        let t = tree();
        let users = t.users_dir();
        let leaf = |name: &str| users.join("alice.x1").join(name).join("login");
        assert!(survived_close(&t, &leaf("session-4242"), 4242));
        assert!(survived_close(&t, &leaf("session-4242-k3j9"), 4242));
        // Another opener's leaf (su started from a customer's shell sits in sshd's).
        assert!(!survived_close(&t, &leaf("session-4243"), 4242));
        assert!(!survived_close(&t, &leaf("session-42421"), 4242));
        // Not a session's login/: the customer's own cgroups, a manager, outside the tree.
        assert!(!survived_close(
            &t,
            &users.join("alice.x1/session-4242/web"),
            4242
        ));
        assert!(!survived_close(
            &t,
            &users.join("alice.x1/manager-4242"),
            4242
        ));
        assert!(!survived_close(
            &t,
            Path::new("/sys/fs/cgroup/system.slice/session-4242/login"),
            4242
        ));
        // The same names made by the customer inside a leaf of its own (a forged survivor).
        assert!(!survived_close(
            &t,
            &users.join("alice.x1/session-1/session-4242/login"),
            4242
        ));
        assert!(!survived_close(
            &t,
            &users.join("alice.x1/session-1/a/b/session-4242/login"),
            4242
        ));
    }
}
