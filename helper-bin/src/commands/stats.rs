//! `cgroupctl stats [--user U] [--json | --prometheus]`: per-user usage and fault counters
//! (memory, memory.events, cpu.stat, pids, io.stat, PSI). Values whose file is absent here
//! (no controller, PSI off) are `-` in the table, null in JSON and omitted in Prometheus.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::inventory::session_and_service_counts;
use cgroup_core::stats::prometheus::{render, UserSample};
use cgroup_core::stats::{read_user_stats, CgroupStats, Pressure};
use cgroup_core::tree::Tree;

use super::table::{self, opt};
use super::view::{load, selected_users};
use crate::Cli;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this user.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Print JSON (absent values are null, never 0).
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,
    /// Print the Prometheus text exposition format (HELP/TYPE lines, a `user` label).
    #[arg(long)]
    pub prometheus: bool,
}

#[derive(Debug, Serialize)]
pub struct UserStats {
    pub user: String,
    pub sessions: u64,
    #[serde(flatten)]
    pub stats: CgroupStats,
}

/// Stats of every user cgroup (or one); shared with the daemon's metrics endpoint.
pub fn collect(tree: &Tree, only: Option<&str>) -> Result<Vec<UserStats>> {
    selected_users(tree, only)?
        .iter()
        .map(|u| {
            Ok(UserStats {
                user: u.name.clone(),
                sessions: session_and_service_counts(&u.path)?.0 as u64,
                stats: read_user_stats(&u.path)?,
            })
        })
        .collect()
}

pub fn prometheus_text(all: &[UserStats]) -> String {
    let samples: Vec<UserSample<'_>> = all
        .iter()
        .map(|u| UserSample {
            user: &u.user,
            stats: &u.stats,
            sessions: u.sessions,
        })
        .collect();
    render(&samples)
}

fn psi_cell(p: Option<Pressure>) -> String {
    opt(p.and_then(|p| p.some), |l| format!("{:.2}", l.avg10))
}

pub fn run(cli: &Cli, args: &StatsArgs) -> Result<ExitCode> {
    let (_config, tree) = load(cli)?;
    let all = collect(&tree, args.user.as_deref())?;
    if args.prometheus {
        print!("{}", prometheus_text(&all));
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|u| {
            let s = &u.stats;
            let ev = s.memory_events;
            vec![
                u.user.clone(),
                opt(s.memory_current, table::bytes),
                opt(s.memory_peak, table::bytes),
                opt(ev, |e| e.high.to_string()),
                opt(ev, |e| e.max.to_string()),
                opt(ev, |e| e.oom_kill.to_string()),
                opt(s.cpu, |c| table::usec(c.usage_usec)),
                opt(s.cpu.and_then(|c| c.throttled_usec), table::usec),
                opt(s.pids_current, |v| v.to_string()),
                opt(s.pids_events_max, |v| v.to_string()),
                opt(s.io, |i| table::bytes(i.rbytes)),
                opt(s.io, |i| table::bytes(i.wbytes)),
                psi_cell(s.psi.cpu),
                psi_cell(s.psi.memory),
                psi_cell(s.psi.io),
            ]
        })
        .collect();
    table::print(
        &[
            "USER",
            "MEM",
            "PEAK",
            "HIGH",
            "MAX",
            "OOM_KILL",
            "CPU",
            "THROTTLED",
            "PIDS",
            "PIDS_MAX_EV",
            "IO_READ",
            "IO_WRITE",
            "PSI_CPU",
            "PSI_MEM",
            "PSI_IO",
        ],
        &rows,
    );
    if rows.is_empty() {
        println!("(no user cgroups under {})", tree.users_dir().display());
    }
    Ok(ExitCode::SUCCESS)
}
