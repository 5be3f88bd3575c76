//! `cgroupctl sessions [USER] [--all] [--json]`: every open PAM session in the tree, like
//! `loginctl list-sessions`: user, PAM service, tty, remote host, start time, processes and
//! memory. Read from each leaf's root-only mark (`cgroup_core::sessions`): nothing a customer
//! can write.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use cgroup_core::sessions::{list_user, SessionInfo};
use cgroup_core::tree::user_cgroup::UserCgroup;
use cgroup_core::tree::Tree;

use super::table;
use super::view::{load, selected_users};
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

/// The sessions of the selected users.
pub fn collect(tree: &Tree, only: Option<&str>, all: bool) -> Result<Vec<SessionInfo>> {
    let mut out = Vec::new();
    for u in selected_users(tree, only)? {
        let Some(uc) = UserCgroup::open_path(&u.path, &u.name)? else {
            continue;
        };
        out.extend(list_user(&uc, &tree.mount.mount_point, all)?);
    }
    Ok(out)
}

/// The text table (shared with `show`).
pub fn print_table(sessions: &[SessionInfo]) {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s.user.clone(),
                s.id.clone(),
                if s.open { "open" } else { "closed" }.to_string(),
                dash(&s.service),
                // The live terminal when there is one (sshd's PAM_TTY is just "ssh").
                dash(&s.terminal.clone().or_else(|| s.tty.clone())),
                dash(&s.rhost),
                dash(&s.started_utc),
                s.processes.to_string(),
                table::opt(s.memory_current, table::bytes),
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
    let (_, tree) = load(cli)?;
    let sessions = collect(&tree, args.user.as_deref(), args.all)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sessions)?);
    } else if sessions.is_empty() {
        println!("no open sessions");
    } else {
        print_table(&sessions);
    }
    Ok(ExitCode::SUCCESS)
}
