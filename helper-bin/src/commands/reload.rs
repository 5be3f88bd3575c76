//! `cgroupctl reload [--json]`: re-read the config and apply it to every live user cgroup
//! (limits, subtree caps, delegation), printing what changed. Limits the config no longer
//! sets go back to the kernel's defaults; limits whose controller is missing are reported.
//! A user NSS cannot resolve (an uncached directory customer during an outage, a deleted
//! account) is reported and skipped: every other user is still applied, and the exit code is
//! 1 ("problems found") unless applying to a resolved user failed (4, a system error).
//! A broken config is met with the last good one, applied whole as logins use it; the exit
//! code is then 1 too (the file's change was not taken).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::apply::{apply_user, ApplyReport, ChangeStatus};
use cgroup_core::config::last_good::Keep;
use cgroup_core::config::Config;
use cgroup_core::inventory::user_cgroups;
use cgroup_core::nss::lookup_user;
use cgroup_core::tree::Tree;
use cgroup_core::Error;

use super::view::load_keeping;
use crate::exit::{PROBLEMS_FOUND, SYSTEM_ERROR};
use crate::Cli;

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

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

/// Text lines describing one applied report (shared with `set`).
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

pub fn run(cli: &Cli, args: &ReloadArgs) -> Result<ExitCode> {
    // The administrator's word that the file is meant: kept as the last good one at once. A
    // broken file is met with the last good one (said on stderr), applied whole, and the
    // exit code says the file was not taken.
    let (config, tree, broken) = load_keeping(cli, Keep::Now)?;
    let outcomes = reload_all(&config, &tree)?;
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let unresolved = outcomes.iter().filter(|o| o.unresolved).count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        if outcomes.is_empty() {
            println!("no user cgroups under {}", tree.users_dir().display());
        }
        for o in &outcomes {
            match (&o.report, &o.error) {
                (_, Some(e)) if o.unknown_user => println!(
                    "{}: UNKNOWN USER, not applied (a deleted account: `cgroupctl remove {}` \
                     ends it): {e}",
                    o.user, o.user
                ),
                (_, Some(e)) if o.unresolved => {
                    println!("{}: NOT RESOLVED, not applied: {e}", o.user)
                }
                (_, Some(e)) => println!("{}: FAILED: {e}", o.user),
                (Some(r), None) => describe(r).iter().for_each(|l| println!("{l}")),
                (None, None) => {}
            }
            if let Some(reason) = &o.suspended_reason {
                println!("{}: suspended ({reason}): kept frozen", o.user);
            }
        }
    }
    if failed > unresolved {
        eprintln!(
            "cgroupctl: {failed} of {} users could not be updated ({unresolved} of them not resolved)",
            outcomes.len()
        );
        return Ok(ExitCode::from(SYSTEM_ERROR));
    }
    if broken.is_some() {
        eprintln!(
            "cgroupctl: {} is broken: the last good config was applied instead",
            super::view::config_path(cli).display()
        );
        return Ok(ExitCode::from(PROBLEMS_FOUND));
    }
    if unresolved > 0 {
        eprintln!(
            "cgroupctl: {unresolved} of {} users could not be resolved (NSS) and kept their limits; \
             the {} others were applied",
            outcomes.len(),
            outcomes.len() - unresolved
        );
        return Ok(ExitCode::from(PROBLEMS_FOUND));
    }
    Ok(ExitCode::SUCCESS)
}
