//! `cgroupctl sessions [USER] [--all] [--json]`: every open PAM session in the tree, like
//! `loginctl list-sessions`: user, state (open, closed, frozen, suspended), PAM service, tty,
//! remote host, start time, processes and memory. Read from each leaf's root-only mark (`cgroup_core::sessions`): nothing a customer
//! can write.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::global::GlobalArgs;
use crate::load::load;
use crate::report::sessions::{collect, print_table};

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

pub fn run(cli: &GlobalArgs, args: &SessionsArgs) -> Result<ExitCode> {
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
