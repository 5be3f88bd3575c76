//! `cgroupctl list [--json]`: every user cgroup under the tree with its state (active, frozen,
//! suspended), profile, usage, limits, sessions and services, sorted by user; a suspended
//! customer without a cgroup is listed too.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::global::GlobalArgs;
use crate::load::load;
use crate::output::table::{self, max_cell, opt};
use crate::report::summary::all_summaries;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (absent values are null, never 0).
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &GlobalArgs, args: &ListArgs) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    let summaries = all_summaries(&config, &tree)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
        return Ok(ExitCode::SUCCESS);
    }
    if summaries.is_empty() {
        println!(
            "no user cgroups under {} and no suspended customer",
            tree.users_dir().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            vec![
                s.user.clone(),
                s.profile.clone().unwrap_or_else(|| "-".to_string()),
                s.life.cell(),
                opt(s.memory_bytes, table::bytes),
                max_cell(s.memory_max, table::bytes),
                opt(s.cpu_usage_usec, table::usec),
                opt(s.pids, |v| v.to_string()),
                max_cell(s.pids_max, |v| v.to_string()),
                s.sessions.to_string(),
                s.services.to_string(),
            ]
        })
        .collect();
    table::print(
        &[
            "USER", "PROFILE", "STATE", "MEM", "MEM.MAX", "CPU", "PIDS", "PIDS.MAX", "SESSIONS",
            "SERVICES",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
