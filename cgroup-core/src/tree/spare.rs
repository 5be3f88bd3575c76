//! Session leaves made ahead (`[tree] spare_leaves`). Making a session leaf takes the kernel's
//! host-wide `cgroup_mutex` four times (the leaf, its two caps, `login/`) before the login's
//! one migration: in a burst of logins they all queue on it. With spares on, the daemon keeps
//! one leaf per user made ahead, exactly as a login would make it (root's, 0700, its caps and
//! `login/` written) and marked `SPARE_XATTR`; a login claims it and only moves its process in
//! and hands the leaf over.
//!
//! The claim is the removal of the spare's mark: the kernel removes an attribute once, so of
//! two logins of one user racing for the same spare exactly one gets it, and the other makes
//! its own leaf. A spare is root's until claimed and closed (0700, in a user cgroup only root
//! writes): its customer can see its name, nothing more. A spare carries the caps it was made
//! with; one made before the caps changed in the config has them rewritten at its claim.
//! `gc` removes a spare nobody claimed for `MAX_AGE` and everything else walking session
//! leaves leaves spares out (`is_spare`): they are no session.
//!
//! A login finds its spare by name: the daemon names the spare it made last on the user
//! cgroup (`SPARE_NAME_XATTR`), so a claim reads one attribute and opens one leaf instead of
//! listing the user cgroup (seven system calls fewer per login; in a burst of logins on a
//! busy host each one counts). The name is only a hint: the leaf's own mark decides, and a
//! hint that is stale (that spare claimed, or removed by gc) sends the login to the listing.

use std::time::Duration;

use super::dirfd::CgroupDir;
use super::user_cgroup::{Leaf, UserCgroup, LOGIN_DIR};
use crate::error::Result;
use crate::limits::LeafCaps;

/// The mark of an unclaimed spare: the caps it was made with ("<descendants> <depth>").
pub const SPARE_XATTR: &str = "trusted.pam_cgroup.spare";

/// A spare's name: this and random hex digits (a login's own leaf is `session-<pid>`), so that
/// a login looks only at the leaves born spares, however many sessions its user has open.
const SPARE_PREFIX: &str = "session-s";

/// On the user cgroup: the name of the spare the daemon made last (a hint, see above). Root's
/// alone to write, as every `trusted.` attribute.
pub const SPARE_NAME_XATTR: &str = "trusted.pam_cgroup.spare-name";

/// How long `gc` keeps a spare nobody claimed: a user who does not log in for a day gives
/// its spare back (the next login makes its own leaf, and the daemon a new spare).
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

fn stamp(caps: LeafCaps) -> String {
    format!("{} {}", caps.max_descendants, caps.max_depth)
}

/// Whether the leaf `dir` is an unclaimed spare.
pub fn is_spare(dir: &CgroupDir) -> bool {
    dir.get_xattr(SPARE_XATTR).is_some()
}

/// Is `name` one a spare is made with (`SPARE_PREFIX` and hex digits)? The hint's name is
/// checked before it becomes a path.
fn is_spare_name(name: &str) -> bool {
    name.strip_prefix(SPARE_PREFIX)
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The spare the user cgroup's hint names, opened with the caps it was made with, when it is
/// still an unclaimed spare.
fn named_spare(user: &UserCgroup) -> Option<(CgroupDir, String)> {
    let name = user.dir().get_xattr(SPARE_NAME_XATTR)?;
    if !is_spare_name(&name) {
        return None;
    }
    let dir = user.dir().open_child(name.as_str()).ok()?;
    let made_with = dir.get_xattr(SPARE_XATTR)?;
    Some((dir, made_with))
}

/// The user's unclaimed spares, opened, each with the caps it was made with (its mark).
fn spares(user: &UserCgroup) -> Result<Vec<(CgroupDir, String)>> {
    let mut out = Vec::new();
    for (name, is_dir) in user.dir().entries()? {
        // users/<user> is root's: every session leaf there has a name root made, in UTF-8.
        let (true, Some(name)) = (is_dir, name.to_str()) else {
            continue;
        };
        if !name.starts_with(SPARE_PREFIX) {
            continue;
        }
        if let Ok(dir) = user.dir().open_child(name) {
            if let Some(made_with) = dir.get_xattr(SPARE_XATTR) {
                out.push((dir, made_with));
            }
        }
    }
    Ok(out)
}

/// Makes a spare for `user` unless one is there already.
pub fn ensure(user: &UserCgroup, caps: LeafCaps) -> Result<()> {
    if !spares(user)?.is_empty() {
        return Ok(());
    }
    let base = format!("{SPARE_PREFIX}{}", super::random_suffix());
    let leaf = user.new_leaf_with_login(&base, caps)?;
    if let Err(e) = leaf.dir().set_xattr(SPARE_XATTR, &stamp(caps)) {
        leaf.discard(user.dir());
        return Err(e);
    }
    // Named once it is a spare. Without the name a login lists the user cgroup, as it does
    // for a stale one: the spare is claimed all the same.
    let _ = user.dir().set_xattr(SPARE_NAME_XATTR, &base);
    Ok(())
}

/// Claims one of the user's spares for a login: the leaf, still root's, its caps those of
/// `caps`, its process to enter `login/`. `None` when there is none to claim (none made, or
/// another login took the last one): the caller makes its own leaf.
pub fn claim(user: &UserCgroup, caps: LeafCaps) -> Option<Leaf> {
    if let Some(leaf) = named_spare(user).and_then(|spare| take(user, spare, caps)) {
        return Some(leaf);
    }
    spares(user)
        .ok()?
        .into_iter()
        .find_map(|spare| take(user, spare, caps))
}

/// Claims the spare `dir` (made with the caps `made_with`): `None` when another login's claim
/// came first or the leaf is no longer as made.
fn take(user: &UserCgroup, (dir, made_with): (CgroupDir, String), caps: LeafCaps) -> Option<Leaf> {
    if !matches!(dir.take_xattr(SPARE_XATTR), Ok(true)) {
        return None;
    }
    // Claimed, not entered yet: as young as a leaf made now, so that gc's minimum age
    // protects it as it protects one (its mtime is when the daemon made it).
    let _ = dir.touch();
    // Not as made (gc took it meanwhile): the login makes its own.
    let login = dir.open_child(LOGIN_DIR).ok()?;
    let leaf = Leaf::claimed(dir, login);
    if made_with != stamp(caps) && leaf.write_caps(caps).is_err() {
        leaf.discard(user.dir());
        return None;
    }
    Some(leaf)
}
