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
//!   once at open, which is the job, and not again at logout. The exception: a service whose
//!   caller was seen outliving a close (`crate::survivors`: a long-lived root process such as
//!   Dovecot's auth worker) has it moved out to `unconfined/` at each close, out of reach of
//!   the customer whose leaf it would otherwise stay in.
//!
//! Who is confined is `policy::decide`; the config comes from `config_fallback` (root and
//! exempt users are decided before anything can fail on the config: a broken file never
//! locks them out); the user cgroup is brought to the config by `user_apply`; the leaves are
//! made and entered in `enter`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{Config, EffectiveLimits, OnError, Policy, USER_MANAGER_SERVICE};
use crate::config_fallback;
use crate::error::{Error, Result};
use crate::limits::LimitKey;
use crate::names::validate_user_name;
use crate::notice::{Level, Notice};
use crate::nss::UserInfo;
use crate::policy::{self, Decision, Hook, Plan};
use crate::sessions::SessionMark;
use crate::tree::user_cgroup::{GroupAccess, UserCgroup};
use crate::tree::{self, Tree};
use crate::user_apply;

mod enter;

pub use enter::survived_close;

/// Has this process closed a confined session? Only such a process can sit in a closed
/// session's leaf at its next open (a PAM caller that outlives its closes, `crate::survivors`):
/// a process that never closed one (sshd's per-connection process, su, cron's child: every
/// login but a long-lived caller's) skips that check, which reads /proc/PID/cgroup, a file a
/// fresh process pays about 50 µs of kernel time for (its /proc entries made on first use),
/// a login's largest single cost after its migration. A forked child inherits the answer (it
/// may sit in that leaf too). The PAM module is linked `-z nodelete` (pam_cgroup/build.rs):
/// libpam unloads modules at pam_end, and this must outlive the transaction that closed.
static CLOSED_A_SESSION: AtomicBool = AtomicBool::new(false);

/// What a session needs to be undone at close (kept with pam_set_data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The confined user (empty for an exempt session's leaf in `unconfined/`).
    pub user: String,
    /// The cgroup the process was placed in (`.../session-*/login`, `.../manager-*`, or
    /// `unconfined/session-*`).
    pub leaf: PathBuf,
    /// The PAM service, and the tree's root: a service whose caller outlives its closes
    /// (`crate::survivors`) is moved out to `unconfined/` under that root at close.
    pub service: String,
    pub root: PathBuf,
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

/// Opens a session. Never panics; every failure is in `outcome` with `on_error` beside it.
pub fn open_session(req: &OpenRequest<'_>) -> OpenReport {
    let mut notices = Vec::new();
    // The caller's rlimits may be the customer's (su, sudo): they must not make the work
    // below fail, and they are the caller's again when this returns.
    let _limits = crate::process_limits::RaisedLimits::raise();
    let (config, policy) = config_fallback::load_for_login(req.config_path, &mut notices);
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
    let (user, groups, access) =
        match policy::decide(policy, config, req.user, req.service, Hook::Session)? {
            Decision::Exempt(reason) => return Ok(exempt_placement(config, req, reason, notices)),
            Decision::Confined {
                user,
                groups,
                access,
            } => (user, groups, access),
        };
    // A confined user with a broken config: that error decides (on_error).
    let Some(config) = config else {
        return Err(Error::Other(
            "cannot be confined without a valid config".to_string(),
        ));
    };
    // Looked up here when the decision did not need the groups.
    let access = access.unwrap_or_else(|| user.group_access());
    confine(config, &user, &groups, access, req, notices)
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
    let record = match enter::leave_fence(config, req.pid) {
        Ok(leaf) => leaf.map(|leaf| SessionRecord {
            user: String::new(),
            leaf,
            service: req.service.to_string(),
            root: PathBuf::new(),
        }),
        Err(e) => {
            notices.push(Notice::new(
                Level::Warning,
                format!(
                    "user {}: exempt, but could not leave the confining cgroup: {e}",
                    req.user
                ),
            ));
            None
        }
    };
    Placement::Exempt { reason, record }
}

/// The confined path: the user's plan, its user cgroup brought to the config, and the process
/// moved into a new leaf of it (a session leaf within sessions.max, or the user manager's).
fn confine(
    config: &Config,
    user: &UserInfo,
    groups: &[String],
    access: GroupAccess,
    req: &OpenRequest<'_>,
    notices: &mut Vec<Notice>,
) -> Result<Placement> {
    let pid = req.pid;
    let user_file = config_fallback::load_user_for_login(config, &user.name, notices)?;
    // The session part refuses too, for stacks without the account part (`account_check`).
    policy::suspended(&user.name, user_file.as_ref())?;
    let tree = Tree::locate_root(config.tree.root.as_deref())?;
    if config.private_ip.enabled {
        enter::check_private_ip(&tree, config, user, notices)?;
    }
    let plan = Plan::of(config, groups, user_file.as_ref(), req.service);
    validate_user_name(&user.name)?;
    if CLOSED_A_SESSION.load(Ordering::Relaxed) {
        enter::report_survivor(&tree, req.service, pid, notices)?;
    }

    let user_cgroup = UserCgroup::open_or_create(&tree, &user.name)?;
    // From here on the failure arises inside the user's own cgroup: whatever on_error says,
    // the login is refused rather than let in unconfined (DESIGN.md, failure rules).
    let inside = |source: Error| Error::InsideFence {
        user: user.name.clone(),
        source: Box::new(source),
    };
    let applied =
        user_apply::apply_user_cgroup(&tree, config, user, access, &user_cgroup, &plan.limits)
            .map_err(inside)?;
    user_apply::report_applied(&tree, &applied, notices);
    let leaf = if req.service == USER_MANAGER_SERVICE {
        enter::enter_manager_leaf(config, user, &user_cgroup, pid).map_err(inside)?
    } else {
        let mark = SessionMark::new(&user.name, req.service, req.tty, req.rhost, pid);
        let login = enter::Login {
            tree: &tree,
            config,
            user,
            user_cgroup: &user_cgroup,
            pid,
            mark: &mark,
            cap: plan.cap,
        };
        enter::enter_login_leaf(&login, notices)?
    };
    Ok(Placement::Confined {
        record: SessionRecord {
            user: user.name.clone(),
            leaf,
            service: req.service.to_string(),
            root: tree.root.clone(),
        },
        limits: plan.limits,
        skipped: applied.skipped,
    })
}

/// What close did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// A session leaf: its mark is gone (it no longer counts as open); the leaf goes once its
    /// processes, the closing one included, have exited.
    Unmarked,
    /// A user manager's or an unconfined leaf: nothing to do at close.
    Untouched,
    /// A session leaf of a service whose caller outlives its closes: unmarked, and the closing
    /// process moved out to this unconfined leaf.
    MovedOut(PathBuf),
}

/// How the debug line says it.
impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Closed::Unmarked => "no longer counted as open; removed once its processes exit",
            Closed::Untouched => "removed once its processes exit",
            Closed::MovedOut(_) => {
                "no longer counted as open; the caller (of a service that outlives its closes) moved out to an unconfined leaf"
            }
        })
    }
}

/// Closes a session without moving any process: see the module comment. The only writes are
/// the session leaf's xattrs (its mark removed, who closed it noted: no cgroup lock, no grace
/// period). The one
/// exception: a service whose caller was seen outliving its closes (`crate::survivors`) has
/// the closing process `pid` moved out to an unconfined leaf, out of the customer's reach.
pub fn close_session(record: &SessionRecord, pid: u32) -> Result<Closed> {
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
    CLOSED_A_SESSION.store(true, Ordering::Relaxed);
    // Who closed it, for the next open of a caller that outlives its close, and no longer
    // counted as open.
    let closer = crate::sessions::process_start(pid).map(|start| (pid, start));
    let unmarked = tree::user_cgroup::close_leaf(session, closer);
    if crate::survivors::is_recorded(&record.service) {
        // Moved out whether or not the mark could be removed.
        let tree = Tree::locate_root(Some(&record.root))?;
        let moved = tree.enter_unconfined(pid)?;
        unmarked?;
        return Ok(Closed::MovedOut(moved));
    }
    unmarked?;
    Ok(Closed::Unmarked)
}
