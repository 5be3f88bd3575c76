//! `cgroupctl sessions [USER] [--all] [--json]`: every open PAM session in the tree, like
//! `loginctl list-sessions`: user, state (open, closed, frozen, suspended), PAM service, tty,
//! remote host, start time, processes and memory. Read from each leaf's root-only mark (`cgroup_core::sessions`): nothing a customer
//! can write.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::config::Config;
use cgroup_core::sessions::{list_user, SessionInfo};
use cgroup_core::tree::user_cgroup::UserCgroup;
use cgroup_core::tree::Tree;

use super::table;
use super::view::{load, selected_users, LifeState};
use crate::Cli;

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Only this user.
    pub user: Option<String>,
    /// Also list leaves of closed sessions kept by processes left behind (nohup).
    #[arg(long)]
    pub all: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One session as `sessions` and `show` print it: the leaf's record and the customer's state.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRow {
    #[serde(flatten)]
    pub info: SessionInfo,
    /// `open`, `closed` (a leaf kept by processes of a closed session), `frozen` (open, its
    /// processes frozen) or `suspended` (the customer is suspended: frozen or killed, and no
    /// new login is let in).
    pub state: &'static str,
    pub suspended_reason: Option<String>,
    pub suspended_at: Option<String>,
    pub suspended_epoch: Option<u64>,
}

impl SessionRow {
    fn new(info: SessionInfo, life: &LifeState) -> SessionRow {
        let state = if life.state == "suspended" {
            "suspended"
        } else if info.frozen {
            "frozen"
        } else if info.open {
            "open"
        } else {
            "closed"
        };
        SessionRow {
            info,
            state,
            suspended_reason: life.suspended_reason.clone(),
            suspended_at: life.suspended_at.clone(),
            suspended_epoch: life.suspended_epoch,
        }
    }
}

/// The sessions of the selected users.
pub fn collect(
    config: &Config,
    tree: &Tree,
    only: Option<&str>,
    all: bool,
) -> Result<Vec<SessionRow>> {
    let mut out = Vec::new();
    for u in selected_users(tree, only)? {
        let Some(uc) = UserCgroup::open_path(&u.path, &u.name)? else {
            continue;
        };
        let life = LifeState::of(config, &u.name, Some(uc.dir()));
        out.extend(
            list_user(&uc, &tree.mount.mount_point, all)?
                .into_iter()
                .map(|info| SessionRow::new(info, &life)),
        );
    }
    Ok(out)
}

/// The text table (shared with `show`).
pub fn print_table(sessions: &[SessionRow]) {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|row| {
            let s = &row.info;
            vec![
                s.user.clone(),
                s.id.clone(),
                row.state.to_string(),
                dash(&s.service),
                // The live terminal when there is one (sshd's PAM_TTY is just "ssh").
                dash(&s.terminal.clone().or_else(|| s.tty.clone())),
                dash(&s.rhost),
                dash(&s.started_at),
                s.processes.to_string(),
                table::opt(s.memory_bytes, table::bytes),
            ]
        })
        .collect();
    table::print(
        &[
            "USER", "SESSION", "STATE", "SERVICE", "TTY", "RHOST", "SINCE", "PROCS", "MEMORY",
        ],
        &rows,
    );
}

pub fn run(cli: &Cli, args: &SessionsArgs) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    let sessions = collect(&config, &tree, args.user.as_deref(), args.all)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sessions)?);
    } else if sessions.is_empty() {
        println!("no open sessions");
    } else {
        print_table(&sessions);
    }
    Ok(ExitCode::SUCCESS)
}
