//! The account part of the module (`pam_sm_acct_mgmt`): refuses a suspended user, or one at
//! its `sessions.max`, after authentication and before any session exists, so that sshd can
//! show the reason to the person logging in and a cron job of a suspended user never starts.
//!
//! It only ever refuses on a decision written by the administrator. Root, exempt users,
//! groups and services are never refused. A broken config or user file is met with its last
//! good copy (a suspension written there still holds); one with no good copy, NSS or
//! cgroupfs failing never refuses anybody here (the session part then follows its own rules). The
//! sessions.max count here is advice that saves a doomed login its shell: the session part
//! counts again under the lock, and its answer is the one that holds.

use std::path::Path;

use crate::config::Config;
use crate::config_fallback::load_config;
use crate::error::Error;
use crate::notice::{Level, Notice};
use crate::policy::{self, Decision, Hook};
use crate::tree::user_cgroup::UserCgroup;
use crate::tree::Tree;

/// An account request as the PAM module sees it.
#[derive(Debug, Clone)]
pub struct AccountRequest<'a> {
    pub config_path: &'a Path,
    pub user: &'a str,
    pub service: &'a str,
}

/// The answer.
#[derive(Debug)]
pub enum AccountVerdict {
    /// Checked: nothing against this login.
    Allow,
    /// Not ours to judge (root, exempt, or the config cannot be used): why.
    NotJudged(String),
    /// Refused (`Error::Suspended` or `Error::SessionLimit`).
    Refuse(Error),
}

#[derive(Debug)]
pub struct AccountReport {
    pub verdict: AccountVerdict,
    pub notices: Vec<Notice>,
}

/// Decides whether `req.user` may log in now. Never panics, never refuses on a fault.
pub fn account_check(req: &AccountRequest<'_>) -> AccountReport {
    // The caller's rlimits may be the customer's (`crate::process_limits`).
    let _limits = crate::process_limits::RaisedLimits::raise();
    let mut notices = Vec::new();
    let verdict = judge(req, &mut notices);
    AccountReport { verdict, notices }
}

fn judge(req: &AccountRequest<'_>, notices: &mut Vec<Notice>) -> AccountVerdict {
    if req.user == "root" {
        return AccountVerdict::NotJudged("root is never refused".into());
    }
    // A broken file is met with its last good copy (a suspension in it holds); the session
    // part that follows says so in the log.
    let config = match load_config(req.config_path) {
        Ok(loaded) => loaded.config,
        Err(f) => {
            notices.push(Notice::new(
                Level::Warning,
                format!("account: config: {}; nobody is refused", f.error),
            ));
            return AccountVerdict::NotJudged("the config cannot be used".into());
        }
    };
    let mut fault = |what: String| {
        notices.push(Notice::new(
            Level::Warning,
            format!("account: {what}; not refused here"),
        ));
        AccountVerdict::NotJudged(what)
    };
    let (user, groups) = match policy::decide(
        &config.policy,
        Some(&config),
        req.user,
        req.service,
        Hook::Account,
    ) {
        Ok(Decision::Exempt(reason)) => return AccountVerdict::NotJudged(reason),
        Ok(Decision::Confined { user, groups, .. }) => (user, groups),
        Err(e) => return fault(e.to_string()),
    };
    let user_file = match config.load_user_file(&user.name) {
        Ok(f) => f,
        Err(e) => return fault(e.to_string()),
    };
    if let Err(e) = policy::suspended(&user.name, user_file.as_ref()) {
        return AccountVerdict::Refuse(e);
    }
    let Some(max) = policy::cap(&config, &groups, user_file.as_ref(), req.service) else {
        return AccountVerdict::Allow;
    };
    match count_open(&config, &user.name) {
        Ok(open) => match policy::at_cap(&user.name, open, max) {
            Ok(()) => AccountVerdict::Allow,
            Err(e) => AccountVerdict::Refuse(e),
        },
        Err(e) => fault(format!("cannot count the open sessions: {e}")),
    }
}

/// Open sessions of a user that count towards sessions.max (0 without a user cgroup), in its
/// own cgroup and in a legacy one an upgrade left.
pub fn count_open(config: &Config, user: &str) -> crate::Result<u32> {
    let tree = Tree::locate_root(config.tree.root.as_deref())?;
    policy::count_open(
        config,
        &tree.mount.mount_point,
        &UserCgroup::open_all(&tree, user)?,
    )
}
