//! `cgroupctl kill|freeze|thaw USER [--session ID | --service NAME]`: act on every process of a
//! user, one session or one service at once, through the kernel's cgroup.kill and
//! cgroup.freeze (logind's kill-session / terminate-user and systemd's freeze/thaw no longer
//! reach processes in our tree).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use cgroup_core::levers::{self, parse_signal};
use cgroup_core::tree::user_cgroup::{Target, UserCgroup};
use cgroup_core::tree::Tree;

use crate::exit::NotApplicable;
use crate::global::GlobalArgs;
use crate::load::load;

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
    /// How long to wait for the kernel to finish: seconds, or a duration like 5s, 1m.
    #[arg(long, value_name = "DURATION", default_value = "5", value_parser = crate::duration::secs)]
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

/// Opens a user's cgroups for a lever (at least one must exist): its own, and a legacy one
/// an upgrade left while its old sessions live.
pub fn open_user(tree: &Tree, user: &str) -> Result<Vec<UserCgroup>> {
    cgroup_core::names::validate_user_name(user)?;
    let all = UserCgroup::open_all(tree, user)?;
    if all.is_empty() {
        return Err(NotApplicable(format!(
            "user {user} has no cgroup under {} (no process of it runs in the tree)",
            tree.users_dir().display()
        ))
        .into());
    }
    Ok(all)
}

/// A session or service that is not there is named (exit 2: nothing was done).
fn not_found(e: cgroup_core::Error, args: &TargetArgs) -> anyhow::Error {
    if e.errno() == Some(libc::ENOENT) {
        NotApplicable(format!("{}: not found ({e})", args.describe())).into()
    } else {
        e.into()
    }
}

pub fn kill(cli: &GlobalArgs, args: &KillArgs) -> Result<ExitCode> {
    let signal = parse_signal(&args.signal).map_err(|reason| cgroup_core::Error::InvalidLimit {
        key: "--signal".into(),
        reason,
    })?;
    let (_, tree) = load(cli)?;
    let user = open_user(&tree, &args.target.user)?;
    let outcome = levers::kill_all(
        &user,
        args.target.target(),
        signal,
        Duration::from_secs(args.target.wait),
    )
    .map_err(|e| not_found(e, &args.target))?;
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
/// parent (or a suspension), which thawing it cannot undo. Nothing is written then. A target
/// that is not there is left to the lever's own error.
fn thaw_refusal(
    config: &cgroup_core::config::Config,
    args: &TargetArgs,
    users: &[UserCgroup],
) -> Result<Option<String>> {
    if let Some(s) = crate::report::summary::suspension_of(config, &args.user) {
        return Ok(Some(format!(
            "{} is suspended ({}): `cgroupctl resume {}` lifts it",
            args.user, s.reason, args.user
        )));
    }
    let Ok(dirs) = levers::open_targets(users, args.target()) else {
        return Ok(None);
    };
    let mut through_parent = false;
    for dir in &dirs {
        if levers::freeze_requested(dir)? {
            return Ok(None);
        }
        through_parent |= levers::is_frozen(dir)?;
    }
    Ok(Some(if through_parent {
        format!(
            "{} is frozen through the user's cgroup itself: thaw the user (`cgroupctl thaw {}`)",
            args.describe(),
            args.user
        )
    } else {
        format!("{} is not frozen: nothing to thaw", args.describe())
    }))
}

pub fn freeze(cli: &GlobalArgs, args: &TargetArgs, frozen: bool) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    let user = open_user(&tree, &args.user)?;
    if !frozen {
        if let Some(why) = thaw_refusal(&config, args, &user)? {
            return Err(NotApplicable(why).into());
        }
    }
    let outcome =
        levers::set_frozen_all(&user, args.target(), frozen, Duration::from_secs(args.wait))
            .map_err(|e| not_found(e, args))?;
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
