//! The config applied to every live user cgroup (`reload` and the daemon), and the words for
//! what an apply changed (`reload`, `set` and the daemon's log).

use anyhow::Result;
use serde::Serialize;

use cgroup_core::apply::{apply_user, ApplyReport, ChangeStatus};
use cgroup_core::config::Config;
use cgroup_core::inventory::user_cgroups;
use cgroup_core::nss::lookup_user;
use cgroup_core::tree::Tree;
use cgroup_core::Error;

#[derive(Debug, Serialize)]
pub struct UserOutcome {
    pub user: String,
    pub report: Option<ApplyReport>,
    pub error: Option<String>,
    /// The user is suspended (`cgroupctl suspend`): its reason; it stays frozen.
    pub suspended_reason: Option<String>,
    /// The error was resolving the user (NSS), not applying to its cgroup.
    pub unresolved: bool,
    /// Every NSS source answered "no such user": a deleted account (`cgroupctl remove`).
    pub unknown_user: bool,
}

/// Applies the config to every live user cgroup; one user's failure does not stop the rest.
pub fn reload_all(config: &Config, tree: &Tree) -> Result<Vec<UserOutcome>> {
    let mut out = Vec::new();
    let mut users = user_cgroups(tree)?;
    // Once per user: the config goes to its own cgroup (listed first); a legacy one an
    // upgrade left keeps what it had until it empties, and a suspension reaches both.
    users.dedup_by(|later, first| later.name == first.name);
    for u in users {
        let result = lookup_user(&u.name).and_then(|info| apply_user(tree, config, &info, false));
        // The group lookup of apply_user is NSS too.
        let unresolved = matches!(
            &result,
            Err(Error::UnknownUser { .. } | Error::UserDbUnavailable { .. })
        );
        let unknown_user = matches!(&result, Err(Error::UnknownUser { .. }));
        // A suspension lives in the user's file: reload keeps what it froze frozen.
        let suspension = cgroup_core::levers::enforce_suspension(tree, config, &u.name);
        let suspended = match &suspension {
            Ok(Some((reason, _))) => Some(reason.clone()),
            _ => None,
        };
        let error = match (&result, suspension) {
            (Err(e), _) => Some(e.to_string()),
            (Ok(_), Err(e)) => Some(format!("keep the suspension: {e}")),
            _ => None,
        };
        out.push(UserOutcome {
            user: u.name,
            report: result.ok(),
            error,
            suspended_reason: suspended,
            unresolved,
            unknown_user,
        });
    }
    Ok(out)
}

/// Text lines describing one applied report.
pub fn describe(report: &ApplyReport) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(reason) = &report.exempt {
        lines.push(format!("{}: exempt ({reason}): not touched", report.user));
        return lines;
    }
    if !report.live {
        lines.push(format!(
            "{}: no live cgroup: applies at the next login",
            report.user
        ));
        return lines;
    }
    let none = || "(absent)".to_string();
    for f in &report.files {
        let old = f.old.clone().unwrap_or_else(none);
        let new = f.new.clone().unwrap_or_else(none);
        match f.status {
            ChangeStatus::Changed => {
                lines.push(format!("{}: {} {old} -> {new}", report.user, f.file))
            }
            ChangeStatus::Reset => lines.push(format!(
                "{}: {} {old} -> {new} (no longer configured: kernel default)",
                report.user, f.file
            )),
            ChangeStatus::Unavailable => lines.push(format!(
                "{}: {} = {new} not applied: controller {} is not available here",
                report.user,
                f.file,
                f.controller.as_deref().unwrap_or("?")
            )),
            ChangeStatus::Unchanged => {}
        }
    }
    if report.changed().next().is_none() {
        lines.push(format!("{}: unchanged", report.user));
    }
    lines
}
