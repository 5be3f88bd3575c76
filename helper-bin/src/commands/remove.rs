//! `cgroupctl remove USER [--yes] [--force] [--json]`: the end of a customer (like lvectl
//! destroy): kills what runs, removes users/<user> whole, its user file, its fault events and
//! usage history rows,
//! its traffic counters and fence entry, and its lock files. Asks on a terminal; elsewhere
//! `--yes` is required. Refused for root and any uid 0, and while NSS still knows the user
//! (run it after `userdel`, or with `--force` to end a customer whose account stays).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;

use cgroup_core::config::last_good;
use cgroup_core::history::{events, forget};
use cgroup_core::nss::lookup_user;
use cgroup_core::paths::{carry_lock_name, sessions_lock_name, RUN_DIR};
use cgroup_core::private_ip::traffic::TrafficReader;
use cgroup_core::private_ip::{cgroup_id, forget_fence};
use cgroup_core::state_dir::StateDir;
use cgroup_core::tree::dirfd::CgroupDir;
use cgroup_core::tree::processes::subtree_pids;
use cgroup_core::tree::user_cgroup::{remove_user_cgroup, UserCgroup, UserRemoval};
use cgroup_core::userfile_edit::remove_user_file;
use cgroup_core::Error;

use crate::exit::NotApplicable;
use crate::global::GlobalArgs;
use crate::load::load;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  userdel -r alice && cgroupctl remove alice --yes\n  \
    cgroupctl remove bob --force      # bob's account stays; his cgroup, file and events go"
)]
pub struct RemoveArgs {
    /// The user (a customer; never root).
    pub user: String,
    /// Do not ask (required when not on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Remove even though NSS still knows the user (or cannot answer): its next login makes a
    /// fresh cgroup with the config's limits.
    #[arg(long)]
    pub force: bool,
    /// How long to wait for the kernel to end the processes (`10s`, `1m`).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::duration::parse)]
    pub wait: Duration,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Removed {
    user: String,
    /// The uid its sockets were counted under, when known.
    uid: Option<u32>,
    cgroup: UserRemoval,
    user_file: bool,
    /// Its kept last good copy of the user file was forgotten.
    last_good_copy: bool,
    events_erased: u64,
    /// Rows of the usage history deleted (with its identities there).
    usage_rows_erased: u64,
    traffic_counters: bool,
    lock_files: usize,
}

/// Why `user` may not be removed now, if so.
fn refusal(user: &str, force: bool) -> Result<Option<u32>> {
    if user == "root" {
        bail!(NotApplicable("root is never removed".into()));
    }
    match lookup_user(user) {
        Ok(info) if info.uid == 0 => {
            bail!(NotApplicable(format!("{user} has uid 0: never removed")))
        }
        Ok(info) if !force => bail!(NotApplicable(format!(
            "{user} still exists (uid {}): remove the account first (userdel), or --force",
            info.uid
        ))),
        Ok(info) => Ok(Some(info.uid)),
        Err(Error::UnknownUser { .. }) => Ok(None),
        Err(e) if !force => Err(anyhow::Error::from(e).context(format!(
            "cannot tell whether {user} still exists; --force removes it anyway"
        ))),
        Err(_) => Ok(None),
    }
}

/// Asks on the terminal; `--yes` elsewhere.
fn confirm(what: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(NotApplicable(format!(
            "{what}: not on a terminal, so not asked: add --yes"
        )));
    }
    eprint!("{what}? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

/// Removes the per-user lock files of /run/pam_cgroup (sessions.max and carrying).
fn remove_lock_files(user: &str) -> usize {
    let Ok(Some(dir)) = StateDir::open(Path::new(RUN_DIR), false) else {
        return 0;
    };
    [sessions_lock_name(user), carry_lock_name(user)]
        .iter()
        .filter(|name| dir.read(name).ok().flatten().is_some() && dir.remove(name).is_ok())
        .count()
}

pub fn run(cli: &GlobalArgs, args: &RemoveArgs) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    let user = args.user.as_str();
    cgroup_core::names::validate_user_name(user)?;
    let nss_uid = refusal(user, args.force)?;
    // Its own cgroup and a legacy one an upgrade left (`UserCgroup::open_all`).
    let dirs: Vec<PathBuf> = UserCgroup::open_all(&tree, user)?
        .iter()
        .map(|u| u.path().to_path_buf())
        .collect();
    let has_cgroup = !dirs.is_empty();
    let has_file = config.user_file_path(user).exists();
    let database = config.history.database.clone();
    let has_events = events::count_of(&database, user)? > 0;
    let has_usage = forget::knows_user(&database, user)?;
    if !has_cgroup && !has_file && !has_events && !has_usage {
        bail!(NotApplicable(format!(
            "nothing of {user} to remove (no cgroup, no user file, no events, no usage history)"
        )));
    }
    if !args.yes {
        let processes: usize = dirs
            .iter()
            .filter_map(|d| CgroupDir::open(d).ok())
            .map(|d| subtree_pids(&d).len())
            .sum();
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        let what = format!(
            "remove {user}: kill its {processes} processes, remove {}, its user file, its events and its usage history",
            if shown.is_empty() {
                "(no cgroup)".to_string()
            } else {
                shown.join(" and ")
            }
        );
        if !confirm(&what)? {
            eprintln!("cgroupctl: {user} not removed");
            return Ok(ExitCode::from(crate::exit::PROBLEMS_FOUND));
        }
    }
    // What the programs know it by, read before its directories go.
    let reader = TrafficReader::open(&tree).ok().flatten();
    let fence_ids: Vec<u64> = dirs.iter().filter_map(|d| cgroup_id(d).ok()).collect();
    let fence_uid = dirs
        .iter()
        .find_map(|d| reader.as_ref().and_then(|r| r.fence_uid(d).ok().flatten()));
    let uid = fence_uid.or(nss_uid);
    let cgroup = remove_user_cgroup(&tree, user, args.wait)?;
    for id in fence_ids {
        forget_fence(&tree, id)?;
    }
    let traffic_counters = match uid {
        Some(uid) => cgroup_core::private_ip::traffic::forget_user_traffic(&tree, uid)?,
        None => false,
    };
    let user_file = remove_user_file(&config, user)?;
    let last_good_copy = last_good::forget_user(&config.path, user)?;
    // Its events before its identity (`forget_user`): no event outlives the identity it names.
    let events_erased = events::erase_user(&database, user)?;
    let usage_rows_erased = forget::forget_user(&database, user)?;
    let lock_files = remove_lock_files(user);
    let report = Removed {
        user: user.to_string(),
        uid,
        cgroup,
        user_file,
        last_good_copy,
        events_erased,
        usage_rows_erased,
        traffic_counters,
        lock_files,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if cgroup.existed {
            println!(
                "{user}: {} processes killed, {} cgroups removed",
                cgroup.processes, cgroup.cgroups
            );
        }
        if user_file {
            println!(
                "{user}: user file {} removed",
                config.user_file_path(user).display()
            );
        }
        if last_good_copy {
            println!("{user}: last good copy of its user file forgotten");
        }
        if events_erased > 0 {
            println!("{user}: {events_erased} events erased from the history");
        }
        if usage_rows_erased > 0 {
            println!("{user}: {usage_rows_erased} rows erased from the usage history");
        }
        if traffic_counters {
            println!("{user}: traffic counters dropped");
        }
        println!("{user}: removed");
    }
    Ok(ExitCode::SUCCESS)
}
