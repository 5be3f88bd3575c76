//! `cgroupctl suspend USER --reason TEXT [--kill]` / `resume USER`: the lasting lever. The
//! suspension is written to the user's file (`[suspend]` in users/<user>.toml: it survives
//! reboots and `reload`); what runs is frozen (or killed), and every new login is refused with
//! the reason by the module's account and session parts. `resume` removes it and thaws.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use nix::sys::signal::Signal;

use cgroup_core::config::Suspension;
use cgroup_core::levers;
use cgroup_core::nss::{group_names, lookup_user};
use cgroup_core::policy::exemption;
use cgroup_core::tree::user_cgroup::{Target, UserCgroup};
use cgroup_core::userfile_edit::{update_user_file, Edit};

use super::view::load;
use crate::exit::NotApplicable;
use crate::Cli;

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
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The user.
    pub user: String,
}

/// How long suspend and resume wait for the kernel.
const WAIT: Duration = Duration::from_secs(5);

pub fn suspend(cli: &Cli, args: &SuspendArgs) -> Result<ExitCode> {
    if let Err(why) = Suspension::check_reason(&args.reason) {
        return Err(cgroup_core::Error::InvalidLimit {
            key: "--reason".into(),
            reason: why,
        }
        .into());
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
    let update = update_user_file(
        &config,
        &args.user,
        &[Edit::Suspend(Some(Suspension {
            reason: args.reason.clone(),
            since: Some(levers::utc_now_text()),
        }))],
    )?;
    println!(
        "{}: suspended in {}; new logins are refused",
        args.user,
        update.path.display()
    );
    // A legacy cgroup an upgrade left holds sessions of the same customer: reached too.
    let user = UserCgroup::open_all(&tree, &args.user)?;
    if user.is_empty() {
        println!("{}: nothing runs in the tree", args.user);
        return Ok(ExitCode::SUCCESS);
    }
    if args.kill {
        let k = levers::kill_all(&user, Target::User, Signal::SIGKILL, WAIT)?;
        println!(
            "{}: killed {} processes ({} remaining)",
            args.user, k.processes, k.remaining
        );
    } else {
        let f = levers::set_frozen_all(&user, Target::User, true, WAIT)?;
        println!(
            "{}: {} processes frozen{}",
            args.user,
            f.processes,
            if f.reached {
                ""
            } else {
                " (the kernel has not confirmed it yet)"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn resume(cli: &Cli, args: &ResumeArgs) -> Result<ExitCode> {
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
    println!(
        "{}: resumed in {}; logins are let in again",
        args.user,
        update.path.display()
    );
    let user = UserCgroup::open_all(&tree, &args.user)?;
    if !user.is_empty() {
        let f = levers::set_frozen_all(&user, Target::User, false, WAIT)?;
        println!("{}: {} processes thawed", args.user, f.processes);
    }
    Ok(ExitCode::SUCCESS)
}
