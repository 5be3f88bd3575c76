//! Where a login's process goes: out of a fence into `unconfined/` for an exempt caller, or
//! into a new leaf of its user cgroup (a session leaf counted against sessions.max, or the
//! user manager's), and what the log must hear on the way.

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
    if survived_close(tree, &previous, pid) {
        crate::survivors::record(service);
        let text = format!(
            "PAM service {} kept its process alive after pam_close_session (still in {}): until reboot its sessions' leaves are not handed to the customer and its closes move the caller out to an unconfined leaf, where no customer can reach it; a program that opens and closes sessions without exiting runs nothing in them: list {:?} in policy.exempt_services",
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

/// A fresh leaf (a spare claimed, or one made now), the process moved in, the leaf handed
/// over. A leaf that vanished before the move (gc took it for a dead one) is replaced by a
/// new one.
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
        let caps = config.tree.leaf_caps();
        // A leaf made ahead first (crate::tree::spare): none, or one gc took meanwhile
        // (ENOENT below), and the login makes its own.
        let spare = (config.tree.spare_leaves && attempts == 1)
            .then(|| tree::spare::claim(user_cgroup, caps))
            .flatten();
        let leaf = match spare {
            Some(leaf) => leaf,
            None => user_cgroup.new_session_leaf(pid, caps)?,
        };
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
        // a login is about to use. Not at all for a service whose caller outlives its closes
        // (crate::survivors: a long-lived root process that runs nothing in its sessions):
        // between that caller's open and its close (Dovecot: one request) the leaf's
        // cgroup.procs stays root's, so the customer cannot move that process into a
        // sub-cgroup of its own to freeze or kill it there.
        if !crate::survivors::is_recorded(&mark.service) {
            leaf.delegate(user_cgroup, user.uid, user.gid)?;
        }
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

/// Is process `pid`, now in `cgroup`, the one that closed the session leaf holding it, and
/// still the same process (its start time)? A PAM caller that opens and closes sessions
/// without exiting (Dovecot's auth worker with `session=yes`) finds itself back in its last
/// session's leaf at its next open. The leaf holds it at any depth: its customer may move
/// any process of the leaf deeper into it (to hide it from a look at `login/`), never out.
/// Who closed the leaf is a root-only xattr (`CLOSED_XATTR`) with the closer's PID and start
/// time: a customer's process that forked until it got the closer's PID, then ran `su`,
/// matches the PID only.
pub fn survived_close(tree: &Tree, cgroup: &Path, pid: u32) -> bool {
    let Some(leaf) = session_leaf_of(tree, cgroup) else {
        return false;
    };
    crate::sessions::process_start(pid)
        .is_some_and(|start| tree::user_cgroup::closed_by(&leaf) == Some((pid, start)))
}

/// The session leaf (`users/<user>/session-*`) that `cgroup` is in or below.
pub fn session_leaf_of(tree: &Tree, cgroup: &Path) -> Option<PathBuf> {
    let rel = cgroup.strip_prefix(tree.users_dir()).ok()?;
    let mut parts = rel.components();
    let user = parts.next()?;
    let leaf = parts.next()?;
    leaf.as_os_str()
        .to_str()
        .is_some_and(|n| n.starts_with(tree::SESSION_PREFIX))
        .then(|| tree.users_dir().join(user).join(leaf))
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
    fn the_session_leaf_holding_a_cgroup_at_any_depth() {
        let t = tree();
        let users = t.users_dir();
        let leaf = users.join("alice.x1/session-4242");
        assert_eq!(session_leaf_of(&t, &leaf.join("login")), Some(leaf.clone()));
        // Moved deeper by the customer: still that leaf's.
        assert_eq!(session_leaf_of(&t, &leaf.join("x/y")), Some(leaf.clone()));
        assert_eq!(session_leaf_of(&t, &leaf), Some(leaf.clone()));
        // Names like a session's inside a leaf are the customer's: the leaf is the outer one.
        assert_eq!(
            session_leaf_of(&t, &users.join("alice.x1/session-1/session-4242/login")),
            Some(users.join("alice.x1/session-1"))
        );
        // Not a session leaf: a manager's, a service's, the user cgroup, outside the tree.
        assert_eq!(
            session_leaf_of(&t, &users.join("alice.x1/manager-4242")),
            None
        );
        assert_eq!(
            session_leaf_of(&t, &users.join("alice.x1/web/pid-4242")),
            None
        );
        assert_eq!(session_leaf_of(&t, &users.join("alice.x1")), None);
        assert_eq!(
            session_leaf_of(
                &t,
                Path::new("/sys/fs/cgroup/system.slice/session-4242/login")
            ),
            None
        );
    }
}
