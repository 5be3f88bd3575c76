//! `cgroupctl suspend USER --reason TEXT [--kill]` / `resume USER`: the lasting lever. The
//! suspension is written to the user's file (`[suspend]` in users/<user>.toml: it survives
//! reboots and `reload`); what runs is frozen (or killed), and every new login is refused with
//! the reason by the module's account and session parts. `resume` removes it and thaws.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use nix::sys::signal::Signal;
use serde::Serialize;

use cgroup_core::config::Suspension;
use cgroup_core::levers;
use cgroup_core::nss::{group_names, lookup_user};
use cgroup_core::policy::exemption;
use cgroup_core::tree::user_cgroup::{Target, UserCgroup};
use cgroup_core::userfile_edit::{update_user_file, Edit};

use crate::exit::{NotApplicable, Usage};
use crate::global::GlobalArgs;
use crate::load::load;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  cgroupctl suspend alice --reason 'unpaid invoice 2026-11'\n  \
    cgroupctl suspend mallory --reason 'compromised, see ticket 812' --kill\n  \
    cgroupctl resume alice"
)]
pub struct SuspendArgs {
    /// The user.
    pub user: String,
    /// Shown to the person logging in: "account suspended: TEXT" (one line, at most 200
    /// characters).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Kill what runs instead of freezing it.
    #[arg(long)]
    pub kill: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The user.
    pub user: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `suspend --json` and `resume --json` print (docs/json.md).
#[derive(Debug, Serialize)]
struct Outcome {
    user: String,
    /// The user file the suspension is written in (or was lifted from).
    user_file: String,
    state: &'static str,
    suspended_reason: Option<String>,
    suspended_at: Option<String>,
    suspended_epoch: Option<u64>,
    /// What was done to what runs: `frozen`, `killed`, `thawed`, or `none` (nothing ran).
    action: &'static str,
    processes: u64,
    /// Killed: processes still there when the wait ended; frozen: null.
    remaining: Option<u64>,
    /// The kernel confirmed the freeze (or thaw) within the wait.
    reached: Option<bool>,
}

fn print(args_json: bool, outcome: &Outcome, lines: &[String]) -> Result<()> {
    if args_json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
    } else {
        for line in lines {
            println!("{line}");
        }
    }
    Ok(())
}

/// How long suspend and resume wait for the kernel.
const WAIT: Duration = Duration::from_secs(5);

pub fn suspend(cli: &GlobalArgs, args: &SuspendArgs) -> Result<ExitCode> {
    if let Err(why) = Suspension::check_reason(&args.reason) {
        // A bad command-line value: exit 2, like clap's own usage errors.
        return Err(Usage(format!("--reason: {why}")).into());
    }
    let (config, tree) = load(cli)?;
    cgroup_core::names::validate_user_name(&args.user)?;
    let info = lookup_user(&args.user)?;
    let groups = group_names(&info)?;
    if let Some(why) = exemption(&config.policy, &info, Some(&groups)) {
        bail!(
            "{} is never confined ({why}): a suspension would not refuse its logins",
            args.user
        );
    }
    let now_ms = cgroup_core::time::now_ms();
    let epoch = now_ms / 1000;
    let since = cgroup_core::time::utc_text(now_ms);
    let update = update_user_file(
        &config,
        &args.user,
        &[Edit::Suspend(Some(Suspension {
            reason: args.reason.clone(),
            since: Some(since.clone()),
        }))],
    )?;
    let mut lines = vec![format!(
        "{}: suspended in {}; new logins are refused",
        args.user,
        update.path.display()
    )];
    let mut outcome = Outcome {
        user: args.user.clone(),
        user_file: update.path.display().to_string(),
        state: "suspended",
        suspended_reason: Some(args.reason.clone()),
        suspended_at: Some(since),
        suspended_epoch: Some(epoch),
        action: "none",
        processes: 0,
        remaining: None,
        reached: None,
    };
    // A legacy cgroup an upgrade left holds sessions of the same customer: reached too.
    let user = UserCgroup::open_all(&tree, &args.user)?;
    if user.is_empty() {
        lines.push(format!("{}: nothing runs in the tree", args.user));
    } else if args.kill {
        let k = levers::kill_all(&user, Target::User, Signal::SIGKILL, WAIT)?;
        lines.push(format!(
            "{}: killed {} processes ({} remaining)",
            args.user, k.processes, k.remaining
        ));
        outcome.action = "killed";
        outcome.processes = k.processes;
        outcome.remaining = Some(k.remaining);
    } else {
        let f = levers::set_frozen_all(&user, Target::User, true, WAIT)?;
        lines.push(format!(
            "{}: {} processes frozen{}",
            args.user,
            f.processes,
            if f.reached {
                ""
            } else {
                " (the kernel has not confirmed it yet)"
            }
        ));
        outcome.action = "frozen";
        outcome.processes = f.processes;
        outcome.reached = Some(f.reached);
    }
    print(args.json, &outcome, &lines)?;
    Ok(ExitCode::SUCCESS)
}

pub fn resume(cli: &GlobalArgs, args: &ResumeArgs) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    cgroup_core::names::validate_user_name(&args.user)?;
    // Only a suspension is lifted: `resume` of anybody else writes nothing (no empty user
    // file for a typo'd or unknown name).
    let suspended = config
        .load_user_file(&args.user)?
        .is_some_and(|f| f.suspend.is_some());
    if !suspended {
        let who = match lookup_user(&args.user) {
            Err(cgroup_core::Error::UnknownUser { .. }) => " (and unknown to NSS)",
            _ => "",
        };
        return Err(NotApplicable(format!(
            "{} is not suspended{who}: nothing to resume",
            args.user
        ))
        .into());
    }
    let update = update_user_file(&config, &args.user, &[Edit::Suspend(None)])?;
    let mut lines = vec![format!(
        "{}: resumed in {}; logins are let in again",
        args.user,
        update.path.display()
    )];
    let mut outcome = Outcome {
        user: args.user.clone(),
        user_file: update.path.display().to_string(),
        state: "active",
        suspended_reason: None,
        suspended_at: None,
        suspended_epoch: None,
        action: "none",
        processes: 0,
        remaining: None,
        reached: None,
    };
    let user = UserCgroup::open_all(&tree, &args.user)?;
    if !user.is_empty() {
        let f = levers::set_frozen_all(&user, Target::User, false, WAIT)?;
        lines.push(format!("{}: {} processes thawed", args.user, f.processes));
        outcome.action = "thawed";
        outcome.processes = f.processes;
        outcome.reached = Some(f.reached);
    }
    print(args.json, &outcome, &lines)?;
    Ok(ExitCode::SUCCESS)
}
