//! The PAM session life cycle of DESIGN.md, independent of libpam so it can be tested and
//! reused by `cgroupctl run`:
//!
//! - open: resolve the user, decide exemption, compute the effective limits, create or update
//!   `users/<user>`, create a session leaf, move the calling process into it.
//! - close: move the process back to where it came from (if it is still in our leaf), then
//!   remove the leaf if it is empty.
//!
//! Root and exempt users are decided before anything can fail on the config: a broken file
//! never locks them out.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, EffectiveLimits, Follow, OnError, Policy};
use crate::error::{Error, Result};
use crate::limits::{Controller, LimitKey};
use crate::names::validate_user_name;
use crate::nss::{group_names, lookup_user, UserInfo};
use crate::tree::{self, fs, Created, Removed, Tree};

/// What a session needs to be undone at close (kept with pam_set_data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: String,
    pub leaf: PathBuf,
    /// The cgroup the process was in before open.
    pub previous: PathBuf,
    /// Where to go when `previous` no longer exists: the cgroup2 mount's top.
    pub fallback: PathBuf,
}

/// Severity of a notice for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub level: Level,
    pub text: String,
}

/// What open did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The process is in `users/<user>/session-*`.
    Confined {
        record: SessionRecord,
        limits: EffectiveLimits,
        /// Limits not written because their controller is not available here.
        skipped: Vec<LimitKey>,
    },
    /// Not confined: root, an exempt user or group, or a uid below min_uid. When the caller
    /// was inside a user's fence (su/sudo from a customer's shell), it was moved to an
    /// unconfined leaf and `record` says how to undo that.
    Exempt {
        reason: String,
        record: Option<SessionRecord>,
    },
}

/// The full answer to an open request: the placement or the error, the on_error rule that
/// applies, and the lines to log.
#[derive(Debug)]
pub struct OpenReport {
    pub outcome: Result<Placement>,
    pub on_error: OnError,
    pub notices: Vec<Notice>,
}

/// An open request as the PAM module sees it.
#[derive(Debug, Clone)]
pub struct OpenRequest<'a> {
    pub config_path: &'a Path,
    /// The module argument `on_error=`, which overrides the file.
    pub on_error: Option<OnError>,
    pub user: &'a str,
    /// The PAM service (sshd, su, cron, systemd-user...).
    pub service: &'a str,
    pub pid: u32,
}

/// A config that could not be loaded, and the policy to follow instead (from whatever of a
/// root-owned file can still be read, or the defaults).
#[derive(Debug)]
pub struct ConfigFailure {
    pub error: ConfigError,
    pub fallback: Policy,
}

/// Loads the config; on failure also says which policy to follow.
pub fn load_config(path: &Path) -> std::result::Result<Config, Box<ConfigFailure>> {
    let fail = |error, fallback| Box::new(ConfigFailure { error, fallback });
    match crate::config::read_secure(path, Follow::Symlinks, false) {
        Ok(Some(text)) => {
            Config::parse(path, &text).map_err(|e| fail(e, Policy::fallback(Some(&text))))
        }
        Ok(None) => Err(fail(
            ConfigError::file(path, "does not exist"),
            Policy::fallback(None),
        )),
        // Not trusted (permissions, size): nothing from it may exempt anybody.
        Err(e) => Err(fail(e, Policy::fallback(None))),
    }
}

/// Why a user is exempt, if it is. Group membership is only looked up when a rule needs it.
pub fn exemption(policy: &Policy, user: &UserInfo, groups: Option<&[String]>) -> Option<String> {
    if user.uid == 0 {
        return Some("uid 0 is never confined".to_string());
    }
    if policy.exempt_users.iter().any(|u| u == &user.name) {
        return Some("listed in policy.exempt_users".to_string());
    }
    if user.uid < policy.min_uid {
        return Some(format!(
            "uid {} is below policy.min_uid {}",
            user.uid, policy.min_uid
        ));
    }
    let groups = groups?;
    policy
        .exempt_groups
        .iter()
        .find(|g| groups.contains(g))
        .map(|g| format!("member of exempt group {g}"))
}

/// Opens a session. Never panics; every failure is in `outcome` with `on_error` beside it.
pub fn open_session(req: &OpenRequest<'_>) -> OpenReport {
    let mut notices = Vec::new();
    let (config, policy) = match load_config(req.config_path) {
        Ok(c) => {
            let p = c.policy.clone();
            (Some(c), p)
        }
        Err(failure) => {
            notices.push(Notice {
                level: Level::Error,
                text: format!("config: {}", failure.error),
            });
            (None, failure.fallback)
        }
    };
    let on_error = req.on_error.unwrap_or(policy.on_error);
    let outcome = open_with(config.as_ref(), &policy, req, &mut notices);
    OpenReport {
        outcome,
        on_error,
        notices,
    }
}

fn open_with(
    config: Option<&Config>,
    policy: &Policy,
    req: &OpenRequest<'_>,
    notices: &mut Vec<Notice>,
) -> Result<Placement> {
    // Root by name first: nothing below (NSS, the config, cgroupfs) may stand in its way.
    if req.user == "root" {
        return Ok(exempt_placement(
            config,
            req,
            "root is never confined".into(),
            notices,
        ));
    }
    if policy.exempt_services.iter().any(|s| s == req.service) {
        return Ok(exempt_placement(
            config,
            req,
            format!("PAM service {} is in policy.exempt_services", req.service),
            notices,
        ));
    }
    validate_user_name(req.user)?;
    let user = lookup_user(req.user)?;
    if let Some(reason) = exemption(policy, &user, None) {
        return Ok(exempt_placement(config, req, reason, notices));
    }
    let needs_groups =
        !policy.exempt_groups.is_empty() || config.map(|c| !c.groups.is_empty()).unwrap_or(false);
    let groups = if needs_groups {
        group_names(&user)?
    } else {
        Vec::new()
    };
    if let Some(reason) = exemption(policy, &user, Some(&groups)) {
        return Ok(exempt_placement(config, req, reason, notices));
    }
    // A confined user with a broken config: that error decides (on_error).
    let Some(config) = config else {
        return Err(Error::Other(
            "cannot be confined without a valid config".to_string(),
        ));
    };
    confine(config, &user, &groups, req.pid, notices)
}

/// The exempt path: untouched, unless the caller sits in a user's fence (`su -` from a
/// customer's shell), in which case it moves to `unconfined/`. A failure here is logged and
/// never refuses the session.
fn exempt_placement(
    config: Option<&Config>,
    req: &OpenRequest<'_>,
    reason: String,
    notices: &mut Vec<Notice>,
) -> Placement {
    let record = match leave_fence(config, req.pid) {
        Ok(r) => r,
        Err(e) => {
            notices.push(Notice {
                level: Level::Warning,
                text: format!(
                    "user {}: exempt, but could not leave the confining cgroup: {e}",
                    req.user
                ),
            });
            None
        }
    };
    Placement::Exempt { reason, record }
}

fn leave_fence(config: Option<&Config>, pid: u32) -> Result<Option<SessionRecord>> {
    let root = config.and_then(|c| c.tree.root.as_deref());
    let tree = Tree::locate_root(root)?;
    let previous = tree.cgroup_of(pid)?;
    if !tree.is_in_users(&previous) {
        return Ok(None);
    }
    let unconfined = tree.unconfined_dir();
    fs::create_dir(&unconfined)?;
    let leaf = tree.create_leaf(&unconfined, pid)?;
    enter(&leaf, pid)?;
    Ok(Some(SessionRecord {
        user: String::new(),
        leaf,
        previous,
        fallback: tree.mount.mount_point.clone(),
    }))
}

/// Moves `pid` into an existing session leaf of the user: one that root created (a
/// directory the user made could be anything) and that has no child cgroups.
fn join_existing_leaf(user_dir: &Path, pid: u32) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let entries = std::fs::read_dir(user_dir).map_err(|e| Error::Io {
        op: "read directory",
        path: user_dir.to_path_buf(),
        source: e,
    })?;
    let mut last = None;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_session = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(tree::SESSION_PREFIX));
        let root_owned_dir = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == 0);
        let has_children = std::fs::read_dir(&path)
            .map(|d| d.flatten().any(|c| c.file_type().is_ok_and(|t| t.is_dir())))
            .unwrap_or(true);
        if !is_session || !root_owned_dir || has_children {
            continue;
        }
        match fs::move_pid(&path, pid) {
            Ok(()) => return Ok(path),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::Other(format!(
            "no session leaf to share in {}",
            user_dir.display()
        ))
    }))
}

/// Moves `pid` into `leaf`; on failure removes the leaf again so nothing is left behind.
fn enter(leaf: &Path, pid: u32) -> Result<()> {
    if let Err(e) = fs::move_pid(leaf, pid) {
        let _ = fs::remove_dir(leaf);
        return Err(e);
    }
    Ok(())
}

fn confine(
    config: &Config,
    user: &UserInfo,
    groups: &[String],
    pid: u32,
    notices: &mut Vec<Notice>,
) -> Result<Placement> {
    let tree = Tree::locate(config)?;
    if config.private_ip.enabled {
        // The module never loads BPF (`cgroupctl init` does); it only checks the programs
        // are there, so a confined user is never let in with a shared loopback.
        let missing = crate::private_ip::empty_hooks(&tree.root)?;
        if !missing.is_empty() {
            return Err(Error::PrivateIpNotAttached {
                root: tree.root.clone(),
                missing: missing.join(", "),
            });
        }
    }
    // ---- issue 12: a confined user without a private address is told so in the log.
    if config.private_ip.enabled {
        if let Err(reason) = crate::private_ip::private_address(user.gid, config.private_ip.min_gid)
        {
            notices.push(Notice {
                level: Level::Warning,
                text: format!(
                    "user {} has no private address: primary gid {} {reason}; its binds and connects on the [private_ip] ports are refused",
                    user.name, user.gid
                ),
            });
        }
    }
    // ---- end issue 12
    let user_file = config.load_user_file(&user.name)?;
    let limits = config.effective_limits(groups, user_file.as_ref());

    let user_dir = tree.user_dir(&user.name)?;
    let applied = apply_user_cgroup(&tree, config, user, &user_dir, &limits)?;
    let skipped = applied.skipped;
    let unavailable = applied.unavailable;
    if applied.fresh && !skipped.is_empty() {
        let names: Vec<&str> = skipped.iter().map(|k| k.file_name()).collect();
        let missing: Vec<&str> = unavailable.iter().map(|c| c.name()).collect();
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
        let level = if crate::report_once::should_report("unavailable-controllers", &text) {
            Level::Warning
        } else {
            Level::Info
        };
        notices.push(Notice { level, text });
    }

    let previous = tree.cgroup_of(pid)?;
    let leaf = match tree.create_leaf(&user_dir, pid) {
        Ok(leaf) => {
            enter(&leaf, pid)?;
            leaf
        }
        // cgroup.max.descendants or max.depth reached (often by the user's own sub-cgroups):
        // rather than letting the login in unconfined (on_error=open) or refusing it, share
        // one of the user's existing session leaves. The fence and its limits still hold.
        Err(e) if e.errno() == Some(libc::EAGAIN) => {
            let shared = join_existing_leaf(&user_dir, pid).map_err(|_| e)?;
            notices.push(Notice {
                level: Level::Warning,
                text: format!(
                    "cgroup.max.descendants of {} reached: session shares {}",
                    user_dir.display(),
                    shared.display()
                ),
            });
            shared
        }
        Err(e) => return Err(e),
    };
    Ok(Placement::Confined {
        record: SessionRecord {
            user: user.name.clone(),
            leaf,
            previous,
            fallback: tree.mount.mount_point.clone(),
        },
        limits,
        skipped,
    })
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
}

/// Creates or updates `users/<user>` with its delegation, caps and limits, unless its stamp
/// says exactly this was applied already (then: one mkdir and one getxattr).
pub fn apply_user_cgroup(
    tree: &Tree,
    config: &Config,
    user: &UserInfo,
    user_dir: &Path,
    limits: &EffectiveLimits,
) -> Result<Applied> {
    let mut desired = format!(
        "v1 uid={} gid={} max_descendants={} max_depth={}",
        user.uid, user.gid, config.tree.max_descendants, config.tree.max_depth
    );
    for resolved in limits.limits.values() {
        desired.push_str(&format!(
            " {}={}",
            resolved.limit.key,
            resolved.limit.lines.join("|")
        ));
    }
    let fingerprint = tree::stamp::fingerprint(&desired);
    if let Some(stamp) = tree::stamp::read(user_dir) {
        if let Some(rest) = stamp.strip_prefix(&fingerprint) {
            let skipped = rest
                .trim()
                .strip_prefix("skipped=")
                .unwrap_or("")
                .split(',')
                .filter_map(LimitKey::from_file_name)
                .collect();
            return Ok(Applied {
                skipped,
                unavailable: Vec::new(),
                fresh: false,
            });
        }
    }
    let unavailable = prepare_user_cgroup(tree, config, user, user_dir)?;
    let available = tree::available_controllers(user_dir)?;
    let skipped: Vec<LimitKey> = tree::write_limits(
        user_dir,
        limits.limits.values().map(|r| &r.limit),
        &available,
    )?
    .into_iter()
    .map(|l| l.key)
    .collect();
    let names: Vec<&str> = skipped.iter().map(|k| k.file_name()).collect();
    tree::stamp::write(
        user_dir,
        &format!("{fingerprint} skipped={}", names.join(",")),
    );
    Ok(Applied {
        skipped,
        unavailable,
        fresh: true,
    })
}

/// Creates or updates `users/<user>`: controllers, delegation, subtree caps. Cheap when
/// nothing changed (two reads and a stat). Returns the wanted controllers the kernel lacks.
pub fn prepare_user_cgroup(
    tree: &Tree,
    config: &Config,
    user: &UserInfo,
    user_dir: &Path,
) -> Result<Vec<Controller>> {
    // The common case is a user cgroup that exists: try it first, build the base on ENOENT.
    let created = match fs::create_dir(user_dir) {
        Ok(c) => c == Created::Created,
        Err(e) if e.errno() == Some(libc::ENOENT) => {
            tree.ensure_base()?;
            fs::create_dir(user_dir)? == Created::Created
        }
        Err(e) => return Err(e),
    };
    let offered = tree::offered(&tree.mount.mount_point)?;
    let unavailable: Vec<Controller> = Controller::ALL
        .into_iter()
        .filter(|c| !offered.contains(c))
        .collect();
    let mut changed = created;
    if !offered.is_empty() && (created || !tree::already_enabled(user_dir, &offered)?) {
        let report = tree::enable_down(&tree.chain_to(user_dir), &offered)?;
        if let Some((c, dir, why)) = report.failed.first() {
            return Err(Error::Other(format!(
                "cannot enable controller {c} in {}: {why}",
                dir.display()
            )));
        }
        changed = true;
    }
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(user_dir).map_err(|e| {
        Error::Io {
            op: "stat",
            path: user_dir.to_path_buf(),
            source: e,
        }
    })?);
    if changed || owner != user.uid {
        tree::delegate(user_dir, user.uid, user.gid)?;
    }
    tree.write_caps(user_dir, config)?;
    // ---- issue 12: private IPs are decided by the fence. Every creation or re-apply of
    // users/<user> records it (and the user's address) in the programs' fence map.
    if config.private_ip.enabled {
        crate::private_ip::register_fence(tree, &config.private_ip, user_dir, user)?;
    }
    // ---- end issue 12
    Ok(unavailable)
}

/// What close did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReport {
    /// The process was moved back to `previous` (false: something else had moved it).
    pub moved_back: bool,
    pub leaf: Removed,
}

/// Closes a session: back to where the process came from, then the leaf goes if empty.
pub fn close_session(record: &SessionRecord, pid: u32) -> Result<CloseReport> {
    let current = current_cgroup_path(record, pid)?;
    let mut moved_back = false;
    if current.as_deref() == Some(record.leaf.as_path()) {
        let target = if record.previous.is_dir() {
            &record.previous
        } else {
            &record.fallback
        };
        if let Err(e) = fs::move_pid(target, pid) {
            // The previous cgroup may have gained controllers and children meanwhile (EBUSY):
            // the top of the mount always accepts processes.
            if target == &record.fallback {
                return Err(e);
            }
            fs::move_pid(&record.fallback, pid)?;
        }
        moved_back = true;
    }
    let leaf = fs::remove_dir(&record.leaf)?;
    Ok(CloseReport { moved_back, leaf })
}

/// The process's cgroup as a path under the same mount as the record's leaf.
fn current_cgroup_path(record: &SessionRecord, pid: u32) -> Result<Option<PathBuf>> {
    Ok(fs::cgroup_v2_of(pid)?.map(|rel| record.fallback.join(rel.trim_start_matches('/'))))
}
