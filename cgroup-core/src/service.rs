//! Service leaves: `users/<user>/<service>/<leaf>`, one fresh leaf per `cgroupctl run` or
//! `classify`, like cgexec/systemd-run. The user cgroup is prepared exactly as a login would
//! (controllers, delegation, caps, limits), so a service started before the user's first login
//! is fenced the same way.
//!
//! The service dir is root's like the user cgroup; the leaf is made by root with its caps and
//! then delegated to the user, like a session leaf (`tree::user_cgroup`).

use std::path::{Path, PathBuf};

use crate::apply::{apply_user_open, ApplyReport};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::names::validate_service_name;
use crate::nss::UserInfo;
use crate::tree::user_cgroup::{new_leaf_in, Leaf, UserCgroup};
use crate::tree::{Tree, SESSION_PREFIX};

/// Default service name of `cgroupctl run` / `classify`.
pub const DEFAULT_SERVICE: &str = "cgroupctl";

/// Tries before giving up when gc removes the service dir between our mkdirs.
const ATTEMPTS: u32 = 8;

/// Checks a service name: a valid component, and not a session leaf's name (gc and `show`
/// tell sessions from services by that prefix).
pub fn check_service_name(name: &str) -> Result<()> {
    validate_service_name(name)?;
    if name.starts_with(SESSION_PREFIX) {
        return Err(Error::InvalidName {
            what: "service name",
            name: name.to_string(),
            reason: "session-* names are reserved for PAM sessions",
        });
    }
    if name.starts_with(crate::tree::user_cgroup::MANAGER_PREFIX) {
        return Err(Error::InvalidName {
            what: "service name",
            name: name.to_string(),
            reason: "manager-* names are reserved for the users' service managers",
        });
    }
    Ok(())
}

/// A new leaf `<prefix>-<tag>` (with a counter on collision) in `users/<user>/<service>`,
/// handed to the user at once: for a command about to start in it (`cgroupctl run`), which
/// an empty leaf the user fills with its own children only makes fail, never escape.
/// Refuses exempt users: they are never confined.
pub fn prepare_service_leaf(
    tree: &Tree,
    config: &Config,
    user: &UserInfo,
    service: &str,
    prefix: &str,
    tag: u32,
) -> Result<(PathBuf, ApplyReport)> {
    let new = new_service_leaf(tree, config, user, service, prefix, tag)?;
    let report = new.report.clone();
    Ok((new.hand_over()?, report))
}

/// A service leaf made and capped by root, not yet handed to its user.
///
/// For a process that already runs (the safety net's strays, `cgroupctl classify`): a leaf
/// handed over before the move lets its user, watching for it (inotify), enable a
/// controller in its cgroup.subtree_control first, and the move then fails (EBUSY: no
/// process may join a cgroup whose children have controllers), leaving the process where
/// it was, outside its fence. Moved in first, handed over after.
pub struct NewServiceLeaf {
    leaf: Leaf,
    user_cgroup: UserCgroup,
    uid: u32,
    gid: u32,
    pub report: ApplyReport,
}

impl NewServiceLeaf {
    pub fn path(&self) -> &Path {
        self.leaf.path()
    }

    /// Hands the leaf to its user (its delegated files, as a login's leaf); the leaf's path.
    pub fn hand_over(self) -> Result<PathBuf> {
        self.leaf.delegate(&self.user_cgroup, self.uid, self.gid)?;
        Ok(self.leaf.into_path())
    }
}

/// Like `prepare_service_leaf`, the leaf kept root's until `NewServiceLeaf::hand_over`.
pub fn new_service_leaf(
    tree: &Tree,
    config: &Config,
    user: &UserInfo,
    service: &str,
    prefix: &str,
    tag: u32,
) -> Result<NewServiceLeaf> {
    check_service_name(service)?;
    validate_service_name(prefix)?;
    let (report, user_cgroup) = apply_user_open(tree, config, user, true)?;
    if let Some(reason) = &report.exempt {
        return Err(Error::Other(format!(
            "user {} is exempt ({reason}): it is never confined; use runuser to start its commands",
            user.name
        )));
    }
    let user_cgroup = match user_cgroup {
        Some(u) => u,
        None => UserCgroup::open_or_create(tree, &user.name)?,
    };
    let access = user.group_access();
    let mut last = None;
    for _ in 0..ATTEMPTS {
        // gc may remove an empty service dir between the two mkdirs: then try again.
        let made = user_cgroup
            .service_dir(service, access)
            .and_then(|dir| new_leaf_in(&dir, &format!("{prefix}-{tag}"), config.tree.leaf_caps()));
        match made {
            Ok(leaf) => {
                return Ok(NewServiceLeaf {
                    leaf,
                    user_cgroup,
                    uid: user.uid,
                    gid: user.gid,
                    report,
                })
            }
            Err(e) if e.errno() == Some(libc::ENOENT) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::Other(format!(
            "could not create a leaf in {}/{service} after {ATTEMPTS} attempts",
            user_cgroup.path().display()
        ))
    }))
}

/// Removes a leaf we made if it is empty (and its service dir if that emptied too).
pub fn release_leaf(tree: &Tree, leaf: &Path) -> Result<()> {
    crate::gc::reap_emptied(tree, leaf).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        assert!(check_service_name("web").is_ok());
        assert!(check_service_name("session-1").is_err());
        assert!(check_service_name("../x").is_err());
        assert!(check_service_name("cgroup.procs").is_err());
    }
}
