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

use cgroup_core::config::last_good::Keep;

use crate::apply_all::{describe, reload_all};
use crate::exit::{PROBLEMS_FOUND, SYSTEM_ERROR};
use crate::global::GlobalArgs;
use crate::load::load_keeping;

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &GlobalArgs, args: &ReloadArgs) -> Result<ExitCode> {
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
            crate::load::config_path(cli).display()
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
