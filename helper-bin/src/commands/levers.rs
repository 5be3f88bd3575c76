//! `cgroupctl kill|freeze|thaw USER [--session ID | --service NAME]`: act on every process of a
//! user, one session or one service at once, through the kernel's cgroup.kill and
//! cgroup.freeze (logind's kill-session / terminate-user and systemd's freeze/thaw no longer
//! reach processes in our tree).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use cgroup_core::levers::{self, parse_signal};
use cgroup_core::tree::user_cgroup::{Target, TargetDir, UserCgroup};
use cgroup_core::tree::Tree;

use super::view::load;
use crate::exit::NotApplicable;
use crate::Cli;

/// What a lever acts on.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The user.
    pub user: String,
    /// Only this session (its id as `cgroupctl sessions` shows it, e.g. 1234 or session-1234).
    #[arg(long, value_name = "ID", conflicts_with = "service")]
    pub session: Option<String>,
    /// Only this service (users/USER/NAME, made by `cgroupctl run/classify`).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// How long to wait for the kernel to finish, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub wait: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl TargetArgs {
    pub fn target(&self) -> Target<'_> {
        match (&self.session, &self.service) {
            (Some(s), _) => Target::Session(s),
            (None, Some(s)) => Target::Service(s),
            (None, None) => Target::User,
        }
    }

    pub fn describe(&self) -> String {
        match (&self.session, &self.service) {
            (Some(s), _) => format!("session {s} of {}", self.user),
            (None, Some(s)) => format!("service {s} of {}", self.user),
            (None, None) => format!("every process of {}", self.user),
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  cgroupctl kill alice\n  \
    cgroupctl kill alice --session 4242\n  \
    cgroupctl kill alice --service web --signal TERM")]
pub struct KillArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The signal: KILL (default) goes through cgroup.kill, atomically; any other is sent to
    /// every process while the target is frozen, so that nothing forks past it.
    #[arg(long, value_name = "SIG", default_value = "KILL")]
    pub signal: String,
}

/// Opens a user's cgroup for a lever (it must exist).
pub fn open_user(tree: &Tree, user: &str) -> Result<UserCgroup> {
    cgroup_core::names::validate_user_name(user)?;
    UserCgroup::open(tree, user)?.ok_or_else(|| {
        NotApplicable(format!(
            "user {user} has no cgroup under {} (no process of it runs in the tree)",
            tree.users_dir().display()
        ))
        .into()
    })
}

/// Opens what the lever acts on; a session or service that is not there is named.
fn open_target<'a>(user: &'a UserCgroup, args: &TargetArgs) -> Result<TargetDir<'a>> {
    match user.open_target(args.target()) {
        Err(e) if e.errno() == Some(libc::ENOENT) => Err(NotApplicable(format!(
            "{}: not found under {}",
            args.describe(),
            user.path().display()
        ))
        .into()),
        other => Ok(other?),
    }
}

pub fn kill(cli: &Cli, args: &KillArgs) -> Result<ExitCode> {
    let signal = parse_signal(&args.signal).map_err(|reason| cgroup_core::Error::InvalidLimit {
        key: "--signal".into(),
        reason,
    })?;
    let (_, tree) = load(cli)?;
    let user = open_user(&tree, &args.target.user)?;
    let dir = open_target(&user, &args.target)?;
    let outcome = levers::kill_in(&dir, signal, Duration::from_secs(args.target.wait))?;
    if args.target.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!(
            "{}: {} sent to {} processes; {} remaining after {} ms{}",
            args.target.describe(),
            outcome.signal,
            outcome.processes,
            outcome.remaining,
            outcome.waited_ms,
            if outcome.vanished {
                " (its cgroup emptied and was removed)"
            } else {
                ""
            }
        );
    }
    if outcome.remaining > 0 && signal == nix::sys::signal::Signal::SIGKILL {
        bail!(
            "{} processes of {} still there after {} s",
            outcome.remaining,
            args.target.describe(),
            args.target.wait
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Why `thaw` has nothing to do: the target is not frozen, or frozen only through its
/// parent (or a suspension), which thawing it cannot undo. Nothing is written then.
fn thaw_refusal(
    config: &cgroup_core::config::Config,
    args: &TargetArgs,
    dir: &cgroup_core::tree::dirfd::CgroupDir,
) -> Result<Option<String>> {
    if let Some(s) = super::view::suspension_of(config, &args.user) {
        return Ok(Some(format!(
            "{} is suspended ({}): `cgroupctl resume {}` lifts it",
            args.user, s.reason, args.user
        )));
    }
    if levers::freeze_requested(dir)? {
        return Ok(None);
    }
    Ok(Some(if levers::is_frozen(dir)? {
        format!(
            "{} is frozen through users/{} itself: thaw the user (`cgroupctl thaw {}`)",
            args.describe(),
            args.user,
            args.user
        )
    } else {
        format!("{} is not frozen: nothing to thaw", args.describe())
    }))
}

pub fn freeze(cli: &Cli, args: &TargetArgs, frozen: bool) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    let user = open_user(&tree, &args.user)?;
    let dir = open_target(&user, args)?;
    if !frozen {
        if let Some(why) = thaw_refusal(&config, args, &dir)? {
            return Err(NotApplicable(why).into());
        }
    }
    let outcome = levers::set_frozen_in(&dir, frozen, Duration::from_secs(args.wait))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!(
            "{}: {} ({} processes){}",
            args.describe(),
            if frozen { "frozen" } else { "thawed" },
            outcome.processes,
            if outcome.vanished {
                " - its cgroup emptied and was removed".to_string()
            } else if outcome.reached {
                String::new()
            } else {
                format!(" - the kernel has not confirmed it after {} s", args.wait)
            }
        );
    }
    if !outcome.reached {
        bail!(
            "cgroup.events of {} did not reach frozen {} within {} s",
            args.describe(),
            u8::from(frozen),
            args.wait
        );
    }
    Ok(ExitCode::SUCCESS)
}
