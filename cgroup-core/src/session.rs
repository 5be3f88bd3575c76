//! The PAM session life cycle of DESIGN.md, independent of libpam so it can be tested and
//! reused by `cgroupctl run`:
//!
//! - open: resolve the user, decide exemption, compute the effective limits, create or update
//!   `users/<user>`, create a session leaf, move the calling process into it.
//! - close: no migration. The session's process stays in its leaf until it exits (every real
//!   login program exits right after pam_close_session); the session stops counting as open
//!   (its mark goes), and the leaf is removed once it empties: the daemon reaps it the moment
//!   its `populated` drops, `cgroupctl gc` is the safety net. Writing a PID into cgroup.procs
//!   waits for an RCU grace period while holding the host-wide cgroup_mutex: a login pays that
//!   once at open, which is the job, and not again at logout.
//!
//! Root and exempt users are decided before anything can fail on the config: a broken file
//! never locks them out.

use std::path::{Path, PathBuf};

use crate::config::last_good::{self, Broken, Keep, Loaded};
use crate::config::{
    Config, ConfigError, EffectiveLimits, OnError, Policy, UserManager, USER_MANAGER_SERVICE,
};
use crate::error::{Error, Result};
use crate::limits::{Controller, LimitKey};
use crate::names::validate_user_name;
use crate::nss::{group_names, lookup_user, UserInfo};
use crate::sessions::{find_sessions, SessionMark};
use crate::tree::user_cgroup::{GroupAccess, UserCgroup};
use crate::tree::{self, fs, Tree};

/// What a session needs to be undone at close (kept with pam_set_data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The confined user (empty for an exempt session's leaf in `unconfined/`).
    pub user: String,
    /// The cgroup the process was placed in (`.../session-*/login`, `.../manager-*`, or
    /// `unconfined/session-*`).
    pub leaf: PathBuf,
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
/// applies (always `Closed` for a failure inside the user's own cgroup), and the lines to log.
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
    /// PAM_TTY and PAM_RHOST, kept in the session's mark (`cgroupctl sessions`).
    pub tty: Option<&'a str>,
    pub rhost: Option<&'a str>,
    pub pid: u32,
}

/// No config could be used (the file is broken and no good copy was ever kept), and the
/// policy to follow instead: what of the broken file's `[policy]` can still be read, else the
/// defaults (`Policy::fallback`).
#[derive(Debug)]
pub struct ConfigFailure {
    pub error: ConfigError,
    pub fallback: Policy,
    /// Why the kept last good copy could not be used, when there is one that could not.
    pub last_good_error: Option<String>,
}

/// Loads the config, or its last good copy when the file is broken (`last_good`); a good
/// parse is kept once the file has settled. On failure also says which policy to follow.
pub fn load_config(path: &Path) -> std::result::Result<Loaded, Box<ConfigFailure>> {
    // The module and the daemon run as root (a write that fails otherwise is only logged).
    last_good::load(path, Keep::Settled).map_err(|none| {
        Box::new(ConfigFailure {
            fallback: none.fallback_policy(),
            error: none.error,
            last_good_error: none.kept_error,
        })
    })
}

/// One line for a broken file met with its last good copy: the error and what is used.
/// `what`: "config", "user file".
pub fn broken_line(broken: &Broken, what: &str) -> String {
    let since = broken
        .kept_changed
        .and_then(|t| u64::try_from(t).ok())
        .map(|t| format!(" (as of {})", crate::time::utc_text(t.saturating_mul(1000))))
        .unwrap_or_default();
    format!(
        "{}; using the last good {what}{since}, kept in {}",
        broken.error,
        broken.kept.display()
    )
}

/// A broken file's line for the log: an error the first time this error is seen, an info
/// line (shown with `debug`) at the logins after, so the log says it once per change.
fn broken_notice(broken: &Broken, what: &str) -> Notice {
    let text = broken_line(broken, what);
    let key = crate::state_dir::escape_path(&broken.error.file)
        .map(|p| format!("broken@{p}"))
        .unwrap_or_else(|| "broken".to_string());
    let level = if crate::report_once::should_report(&key, &broken.error.to_string()) {
        Level::Error
    } else {
        Level::Info
    };
    Notice {
        level,
        text: format!("{what}: {text}"),
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
    if user.uid > policy.max_uid {
        return Some(format!(
            "uid {} is above policy.max_uid {}",
            user.uid, policy.max_uid
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
    // The caller's rlimits may be the customer's (su, sudo): they must not make the work
    // below fail, and they are the caller's again when this returns.
    let _limits = crate::process_limits::RaisedLimits::raise();
    let (config, policy) = match load_config(req.config_path) {
        Ok(loaded) => {
            if let Some(e) = &loaded.keep_error {
                notices.push(Notice {
                    level: Level::Info,
                    text: format!("cannot keep the last good config: {e}"),
                });
            }
            if let Some(broken) = &loaded.broken {
                notices.push(broken_notice(broken, "config"));
            }
            let p = loaded.config.policy.clone();
            (Some(loaded.config), p)
        }
        Err(failure) => {
            let p = &failure.fallback;
            notices.push(Notice {
                level: Level::Error,
                text: format!(
                    "config: {}; no good config was ever kept: following the fallback policy (on_error={}, exempt_users={:?}, exempt_groups={:?}, min_uid={})",
                    failure.error, p.on_error, p.exempt_users, p.exempt_groups, p.min_uid
                ),
            });
            if let Some(e) = &failure.last_good_error {
                notices.push(Notice {
                    level: Level::Warning,
                    text: format!("last good config not used: {e}"),
                });
            }
            (None, failure.fallback)
        }
    };
    let mut on_error = req.on_error.unwrap_or(policy.on_error);
    let outcome = open_with(config.as_ref(), &policy, req, &mut notices);
    if matches!(
        outcome,
        Err(Error::InsideFence { .. }
            | Error::Suspended { .. }
            | Error::SessionLimit { .. }
            | Error::UserManagerRefused { .. })
    ) {
        // Customer state may be behind it: letting the login in would let a customer turn
        // its own login into an unconfined one. A suspension or a full sessions.max is a
        // decision, not a fault: on_error has no say either.
        on_error = OnError::Closed;
    }
    if req.user != "root" && req.service == USER_MANAGER_SERVICE && outcome.is_err() {
        // A user manager that cannot be fenced is not started: everything it would start
        // (`systemd-run --user`, lingering units) would run outside the fence. The login
        // itself does not depend on it.
        on_error = OnError::Closed;
    }
    if req.user != "root" && matches!(&outcome, Err(e) if e.is_resource_exhaustion()) {
        // Out of files or memory: the caller's limits are raised above, so what is left may
        // still be the customer's doing (a host-wide table filled by its processes). Never a
        // reason to let a login in unconfined.
        on_error = OnError::Closed;
    }
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
    if req.service == USER_MANAGER_SERVICE {
        match policy.user_manager {
            UserManager::Fence => {}
            UserManager::Refuse => {
                return Err(Error::UserManagerRefused {
                    user: user.name.clone(),
                })
            }
            UserManager::Unconfined => return Ok(exempt_placement(
                config,
                req,
                "policy.user_manager = \"unconfined\": the user manager stays outside the fence"
                    .into(),
                notices,
            )),
        }
    }
    // A confined user with a broken config: that error decides (on_error).
    let Some(config) = config else {
        return Err(Error::Other(
            "cannot be confined without a valid config".to_string(),
        ));
    };
    confine(config, &user, &groups, req, notices)
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
    let unconfined = tree.ensure_unconfined()?;
    let leaf = tree.create_leaf(&unconfined, pid)?;
    if let Err(e) = fs::move_pid(&leaf, pid) {
        let _ = fs::remove_dir(&leaf);
        return Err(e);
    }
    Ok(Some(SessionRecord {
        user: String::new(),
        leaf,
    }))
}

fn confine(
    config: &Config,
    user: &UserInfo,
    groups: &[String],
    req: &OpenRequest<'_>,
    notices: &mut Vec<Notice>,
) -> Result<Placement> {
    let pid = req.pid;
    let user_file = {
        let loaded = last_good::load_user(config, &user.name, Keep::Settled)?;
        if let Some(broken) = &loaded.broken {
            notices.push(broken_notice(broken, "user file"));
        }
        loaded.file
    };
    // The session part refuses too, for stacks without the account part (`account_check`).
    if let Some(s) = user_file.as_ref().and_then(|f| f.suspend.as_ref()) {
        return Err(Error::Suspended {
            user: user.name.clone(),
            reason: s.reason.clone(),
        });
    }
    let tree = Tree::locate_root(config.tree.root.as_deref())?;
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
        // The fence map too (a 0.1.0 attach has none until `cgroupctl init`): checked here,
        // outside the user's cgroup, so its absence follows on_error like the programs'.
        if !crate::private_ip::fence_map_pin(&tree)?.exists() {
            return Err(Error::PrivateIpNotAttached {
                root: tree.root.clone(),
                missing: "the fence map".to_string(),
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
    let limits = config.effective_limits(groups, user_file.as_ref());
    let manager = req.service == USER_MANAGER_SERVICE;
    let cap = if config.sessions.counts(req.service) {
        config.sessions_max_for(groups, user_file.as_ref())
    } else {
        None
    };
    validate_user_name(&user.name)?;
    // Close moves nobody: a caller that outlives its close stays where its last session put
    // it until its next open moves it here. Say so, so the admin exempts its service.
    let previous = tree.cgroup_of(pid)?;
    if survived_close(&tree, &previous, pid) {
        let text = format!(
            "PAM service {} kept its process alive after pam_close_session (still in {}); a program that opens and closes sessions without exiting runs nothing in them: list {:?} in policy.exempt_services",
            req.service,
            previous.display(),
            req.service
        );
        // Once per service, not per login (the text names a different leaf each time).
        let level = if crate::report_once::should_report("survived-close", req.service) {
            Level::Warning
        } else {
            Level::Info
        };
        notices.push(Notice { level, text });
    }

    let user_cgroup = UserCgroup::open_or_create(&tree, &user.name)?;
    // From here on the failure arises inside the user's own cgroup: whatever on_error says,
    // the login is refused rather than let in unconfined (DESIGN.md, failure rules).
    let inside = |source: Error| Error::InsideFence {
        user: user.name.clone(),
        source: Box::new(source),
    };
    let applied = apply_user_cgroup(&tree, config, user, &user_cgroup, &limits).map_err(inside)?;
    report_applied(&tree, &applied, notices);
    let leaf = if manager {
        enter_manager_leaf(config, user, &user_cgroup, pid).map_err(inside)?
    } else {
        let login = Login {
            tree: &tree,
            config,
            user,
            user_cgroup: &user_cgroup,
            req,
            cap: cap.map(|(max, _)| max),
        };
        enter_login_leaf(&login, notices)?
    };
    Ok(Placement::Confined {
        record: SessionRecord {
            user: user.name.clone(),
            leaf,
        },
        limits,
        skipped: applied.skipped,
    })
}

/// What placing a login in its leaf needs.
struct Login<'a> {
    tree: &'a Tree,
    config: &'a Config,
    user: &'a UserInfo,
    user_cgroup: &'a UserCgroup,
    req: &'a OpenRequest<'a>,
    /// sessions.max, when it applies to this login.
    cap: Option<u32>,
}

/// A login's session leaf, counted against sessions.max: the mark, the count and the new leaf
/// under the user's lock. Every failure here is inside the user's fence.
fn enter_login_leaf(login: &Login<'_>, notices: &mut Vec<Notice>) -> Result<PathBuf> {
    let Login {
        tree,
        config,
        user,
        user_cgroup,
        req,
        cap,
    } = *login;
    let inside = |source: Error| Error::InsideFence {
        user: user.name.clone(),
        source: Box::new(source),
    };
    let mark =
        SessionMark::new(&user.name, req.service, req.tty, req.rhost, req.pid).map_err(inside)?;
    // sessions.max: the count and the new leaf's mark under one lock (crate::sessions). The
    // lock is held by another login of this same user, which may be the customer's own `su`
    // stopped on purpose: the wait is short and its end refuses this login, never opens it.
    let _lock = match cap {
        Some(_) => Some(crate::sessions::lock_user(&user.name).map_err(inside)?),
        None => None,
    };
    if let Some(max) = cap {
        let found = find_sessions(user_cgroup.dir(), &tree.mount.mount_point).map_err(inside)?;
        let mut open = crate::sessions::count_open(&found, |s| config.sessions.counts(s));
        // Sessions still open in a legacy cgroup (opened before an upgrade) count too: one
        // more open, ENOENT once the legacy cgroup is gone.
        if let Some(legacy) = UserCgroup::open_legacy(tree, &user.name).map_err(inside)? {
            let found = find_sessions(legacy.dir(), &tree.mount.mount_point).map_err(inside)?;
            open += crate::sessions::count_open(&found, |s| config.sessions.counts(s));
        }
        if open >= max {
            return Err(Error::SessionLimit {
                user: user.name.clone(),
                open,
                max,
            });
        }
    }
    let (leaf, mark_error) =
        enter_new_leaf(config, user, user_cgroup, req.pid, &mark, cap.is_some()).map_err(inside)?;
    if let Some(e) = mark_error {
        // Without a cap the mark only feeds `cgroupctl sessions`: not worth a refused login.
        notices.push(Notice {
            level: Level::Warning,
            text: format!("session record not written (cgroupctl sessions will not list it): {e}"),
        });
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
        leaf.delegate(user.uid, user.gid)?;
        return Ok((leaf.entry_path(), mark_error));
    }
}

/// The user manager's leaf: made, the manager's process moved into it, handed over whole.
fn enter_manager_leaf(
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
    leaf.delegate(user.uid, user.gid)?;
    Ok(leaf.entry_path())
}

fn report_applied(tree: &Tree, applied: &Applied, notices: &mut Vec<Notice>) {
    for text in &applied.notices {
        notices.push(Notice {
            level: Level::Notice,
            text: text.clone(),
        });
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
    let level = if crate::report_once::should_report("unavailable-controllers", &text) {
        Level::Warning
    } else {
        Level::Info
    };
    notices.push(Notice { level, text });
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
    user_cgroup: &UserCgroup,
    limits: &EffectiveLimits,
) -> Result<Applied> {
    // Who may read the user cgroup is decided again at every login (one group lookup): a
    // member added to the user's group since the last apply must lose the view at once, which
    // a stamp written before could not know. A user cgroup not owned by root (a 0.1.0 tree, or
    // a chown by hand) is never taken as applied, whatever its stamp says.
    let owned_by_root = user_cgroup.dir().stat()?.st_uid == 0;
    let access = user.group_access();
    if owned_by_root {
        let fingerprint = desired_fingerprint(config, user, access, limits);
        if let Some(rest) = user_cgroup
            .stamp()
            .as_deref()
            .and_then(|s| s.strip_prefix(&fingerprint))
        {
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
    let names: Vec<&str> = skipped.iter().map(|k| k.file_name()).collect();
    user_cgroup.set_stamp(&format!(
        "{} skipped={}",
        desired_fingerprint(config, user, access, limits),
        names.join(",")
    ));
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
    // ---- issue 12: private IPs are decided by the fence. Every creation or re-apply of
    // users/<user> records it (and the user's address) in the programs' fence map.
    if config.private_ip.enabled {
        crate::private_ip::register_fence(tree, &config.private_ip, user_cgroup.path(), user)?;
    }
    // ---- end issue 12
    Ok(out)
}

/// What close did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A session leaf: its mark is gone (it no longer counts as open); the leaf goes once its
    /// processes, the closing one included, have exited.
    Unmarked,
    /// A user manager's or an unconfined leaf: nothing to do at close.
    Untouched,
}

/// How the debug line says it.
impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Closed::Unmarked => "no longer counted as open; removed once its processes exit",
            Closed::Untouched => "removed once its processes exit",
        })
    }
}

/// Closes a session without moving any process: see the module comment. The only write is the
/// removal of a session leaf's mark (an xattr: no cgroup lock, no grace period).
pub fn close_session(record: &SessionRecord) -> Result<Closed> {
    let is_session_login =
        record.leaf.file_name().and_then(|n| n.to_str()) == Some(tree::user_cgroup::LOGIN_DIR);
    // A user manager's leaf (closed by sd-pam, as the user, from inside the leaf) and an
    // exempt session's leaf in unconfined/ carry no mark.
    if record.user.is_empty() || !is_session_login {
        return Ok(Closed::Untouched);
    }
    let Some(session) = record.leaf.parent() else {
        return Ok(Closed::Untouched);
    };
    // The session leaf sits in the root-owned user cgroup: the customer can neither remove
    // nor replace it (cgroup2 has no rename), so its path still names the leaf open made.
    match crate::tree::dirfd::CgroupDir::open(session) {
        Ok(leaf) => leaf.remove_xattr(crate::tree::user_cgroup::SESSION_XATTR)?,
        // Emptied and reaped already (the process was moved out before close).
        Err(e) if e.errno() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    Ok(Closed::Unmarked)
}

/// Did process `pid` open the session whose `login/` leaf `cgroup` is, and outlive its close?
/// A PAM caller that opens and closes sessions without exiting (Dovecot's auth worker with
/// `session=yes`) finds itself there at its next open: session leaves are named after their
/// opener's pid.
pub fn survived_close(tree: &Tree, cgroup: &Path, pid: u32) -> bool {
    if !tree.is_in_users(cgroup)
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
    }
}
