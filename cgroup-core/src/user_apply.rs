//! Bringing a user cgroup to the config: ownership and mode, controllers down to its leaves,
//! subtree caps, limits, and the stamp that lets the next login skip all of it when nothing
//! changed. A login does it (`apply_user_cgroup`) as do `cgroupctl set`, `reload` and the
//! daemon (`apply`: `prepare_user_cgroup` and its own limit writes).

use crate::config::{Config, EffectiveLimits};
use crate::error::{Error, Result};
use crate::limits::{Controller, LimitKey};
use crate::notice::{Level, Notice};
use crate::nss::UserInfo;
use crate::tree::stamp::Stamp;
use crate::tree::user_cgroup::{GroupAccess, UserCgroup};
use crate::tree::{self, Tree};

/// What a login's apply has to say in the log: the administrator's notices, and the limits
/// the kernel could not take (once per change, `Notice::once`).
pub fn report_applied(tree: &Tree, applied: &Applied, notices: &mut Vec<Notice>) {
    for text in &applied.notices {
        notices.push(Notice::new(Level::Notice, text.clone()));
    }
    if !applied.fresh || applied.skipped.is_empty() {
        return;
    }
    let names: Vec<&str> = applied.skipped.iter().map(|k| k.file_name()).collect();
    let missing: Vec<&str> = applied.unavailable.iter().map(|c| c.name()).collect();
    let text = format!(
        "limits {} not applied: controllers {} are not available in the cgroup2 tree {}",
        names.join(", "),
        if missing.is_empty() {
            "needed".to_string()
        } else {
            missing.join(", ")
        },
        tree.root.display()
    );
    notices.push(Notice::once(
        "unavailable-controllers",
        &text,
        Level::Warning,
        text.clone(),
    ));
}

/// What applying a user cgroup did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Limits not written because their controller is not available.
    pub skipped: Vec<LimitKey>,
    /// Wanted controllers the kernel lacks (only known when `fresh`).
    pub unavailable: Vec<Controller>,
    /// False when the stamp showed everything already applied and nothing was written.
    pub fresh: bool,
    /// Things an administrator should know (a 0.1.0 tree taken back, a shared group).
    pub notices: Vec<String>,
}

/// The fingerprint of everything a full apply writes to a user cgroup: the stamp's value.
/// Every path that writes limits or caps (login, reload, set, the daemon) ends by writing it,
/// so a login never skips a change because another path wrote different values meanwhile.
pub fn desired_fingerprint(
    config: &Config,
    user: &UserInfo,
    access: GroupAccess,
    limits: &EffectiveLimits,
) -> String {
    let mut desired = format!(
        "v2 uid={} gid={} access={} max_descendants={} max_depth={}",
        user.uid,
        user.gid,
        access.describe(),
        config.tree.max_descendants,
        config.tree.max_depth
    );
    for resolved in limits.limits.values() {
        desired.push_str(&format!(
            " {}={}",
            resolved.limit.key,
            resolved.limit.lines.join("|")
        ));
    }
    tree::stamp::fingerprint(&desired)
}

/// Brings `users/<user>` to the config (ownership, controllers, caps, limits), unless its
/// stamp says exactly this was applied already (then: one getxattr).
pub fn apply_user_cgroup(
    tree: &Tree,
    config: &Config,
    user: &UserInfo,
    access: GroupAccess,
    user_cgroup: &UserCgroup,
    limits: &EffectiveLimits,
) -> Result<Applied> {
    // Who may read the user cgroup (`access`, from this login's lookup of the primary group:
    // `UserInfo::group_access`) is decided again at every login: a member added to the user's group since the last apply must lose the view at once, which
    // a stamp written before could not know. A user cgroup not owned by root (a 0.1.0 tree, or
    // a chown by hand) is never taken as applied, whatever its stamp says.
    let owned_by_root = user_cgroup.dir().stat()?.st_uid == 0;
    if owned_by_root {
        let fingerprint = desired_fingerprint(config, user, access, limits);
        if let Some(stamp) = user_cgroup.stamp().filter(|s| s.fingerprint == fingerprint) {
            return Ok(Applied {
                skipped: stamp.skipped,
                unavailable: Vec::new(),
                fresh: false,
                notices: Vec::new(),
            });
        }
    }
    // A failure half way must not leave a stamp that says "applied".
    user_cgroup.clear_stamp()?;
    let prepared = prepare_user_cgroup(tree, config, user, user_cgroup, access)?;
    let available = user_cgroup.available_controllers()?;
    let skipped: Vec<LimitKey> = user_cgroup
        .write_limits(limits.limits.values().map(|r| &r.limit), &available)?
        .into_iter()
        .map(|l| l.key)
        .collect();
    // A legacy `users/<user>` (before the keyed names) holding sessions from before an upgrade
    // gets the same limits: else it kept what was last applied to it, out of reach of `set`
    // and of a plan lowered since, for as long as its processes live (a tmux server, a nohup
    // job: new work started there ran on the old plan).
    if let Some(legacy) = UserCgroup::open_legacy(tree, &user.name)? {
        let offered = legacy.available_controllers()?;
        legacy.write_limits(limits.limits.values().map(|r| &r.limit), &offered)?;
    }
    user_cgroup.set_stamp(&Stamp {
        fingerprint: desired_fingerprint(config, user, access, limits),
        skipped: skipped.clone(),
    });
    Ok(Applied {
        skipped,
        unavailable: prepared.unavailable,
        fresh: true,
        notices: prepared.notices,
    })
}

/// What preparing a user cgroup found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prepared {
    /// Wanted controllers the kernel lacks.
    pub unavailable: Vec<Controller>,
    pub notices: Vec<String>,
}

/// Ownership and mode, controllers down to the user's leaves, subtree caps: everything of a
/// user cgroup but its limits.
pub fn prepare_user_cgroup(
    tree: &Tree,
    config: &Config,
    user: &UserInfo,
    user_cgroup: &UserCgroup,
    access: GroupAccess,
) -> Result<Prepared> {
    let mut out = Prepared::default();
    let offered = tree::offered(&tree.mount.mount_point)?;
    out.unavailable = Controller::ALL
        .into_iter()
        .filter(|c| !offered.contains(c))
        .collect();
    if !offered.is_empty() {
        // The chain above the user cgroup is root's alone (the mount, the tree root, users/).
        let report = tree::enable_down(&tree.chain_to(&tree.users_dir()), &offered)?;
        if let Some((c, dir, why)) = report.failed.first() {
            return Err(Error::Other(format!(
                "cannot enable controller {c} in {}: {why}",
                dir.display()
            )));
        }
    }
    let secured = user_cgroup.secure(tree, access)?;
    if secured.taken_back {
        out.notices.push(format!(
            "{} was owned by the user (a 0.1.0 tree): taken back; what the user made there stays until it empties",
            user_cgroup.path().display()
        ));
    }
    // A legacy `users/<user>` (a version before the keyed names) keeps its sessions until they
    // end, and is then removed; one a 0.1.0 customer owned is taken back as its own would be.
    if let Some(legacy) = UserCgroup::open_legacy(tree, &user.name)? {
        if legacy.secure(tree, access)?.taken_back {
            out.notices.push(format!(
                "{} was owned by the user (a 0.1.0 tree): taken back; its sessions stay until they end",
                legacy.path().display()
            ));
        }
    }
    if access == GroupAccess::Shared {
        out.notices.push(format!(
            "primary group {} of {} is not a user-private group: {} is root-only (0711, files 0600); give each customer its own primary group so it can read its own totals",
            user.gid,
            user.name,
            user_cgroup.path().display()
        ));
    }
    for (c, why) in user_cgroup.enable_for_leaves(&offered)? {
        out.notices.push(format!(
            "controller {c} not enabled for the leaves of {}: {why}; the user's own limits still hold",
            user_cgroup.path().display()
        ));
    }
    user_cgroup.write_caps(config.tree.leaf_caps())?;
    // Private IPs are decided by the fence: every creation or re-apply of users/<user>
    // records it (and the user's address) in the programs' fence map.
    if config.private_ip.enabled {
        crate::private_ip::register_fence(tree, &config.private_ip, user_cgroup.path(), user)?;
    }
    Ok(out)
}
