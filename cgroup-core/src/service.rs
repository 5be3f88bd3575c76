//! Service leaves: `users/<user>/<service>/<leaf>`, one fresh leaf per `cgroupctl run` or
//! `classify`, like cgexec/systemd-run. The user cgroup is prepared exactly as a login would
//! (controllers, delegation, caps, limits), so a service started before the user's first login
//! is fenced the same way.
//!
//! The service dir and the leaf are created by root (not delegated): that marks them as ours
//! for gc, and the user still manages its own sub-cgroups beside them.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::apply::{apply_user, ApplyReport};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::names::validate_service_name;
use crate::nss::UserInfo;
use crate::tree::{fs, Tree, SESSION_PREFIX};

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
    Ok(())
}

/// A new leaf `<prefix>-<tag>` (with a counter on collision) in `users/<user>/<service>`.
/// Refuses exempt users: they are never confined.
pub fn prepare_service_leaf(
    tree: &Tree,
    config: &Config,
    user: &UserInfo,
    service: &str,
    prefix: &str,
    tag: u32,
) -> Result<(PathBuf, ApplyReport)> {
    check_service_name(service)?;
    validate_service_name(prefix)?;
    let report = apply_user(tree, config, user, true)?;
    if let Some(reason) = &report.exempt {
        return Err(Error::Other(format!(
            "user {} is exempt ({reason}): it is never confined; use runuser to start its commands",
            user.name
        )));
    }
    let service_dir = tree.user_dir(&user.name)?.join(service);
    for attempt in 0..ATTEMPTS {
        fs::create_dir(&service_dir)?;
        let name = if attempt == 0 {
            format!("{prefix}-{tag}")
        } else {
            format!("{prefix}-{tag}-{attempt}")
        };
        let leaf = service_dir.join(name);
        match fs::create_new_dir(&leaf) {
            Ok(()) => return Ok((leaf, report)),
            // Taken (a leftover of an earlier pid), or gc removed the empty service dir
            // between the two mkdirs: try again.
            Err(e) if matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::NotFound) => {}
            Err(source) => {
                return Err(Error::Io {
                    op: "mkdir",
                    path: leaf,
                    source,
                })
            }
        }
    }
    Err(Error::Other(format!(
        "could not create a leaf in {} after {ATTEMPTS} attempts",
        service_dir.display()
    )))
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
