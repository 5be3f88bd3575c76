//! `cgroupctl stats [--user U] [--json | --prometheus | --textfile PATH]`: per-user usage and
//! fault counters (memory, memory.events, cpu.stat, pids, io.stat, PSI). Values whose file is
//! absent here (no controller, PSI off) are `-` in the table, null in JSON and omitted in
//! Prometheus.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use cgroup_core::stats::daemon::all_families;
use cgroup_core::stats::users::{collect, fill_info, prometheus_text};
use cgroup_core::stats::Pressure;

use crate::global::GlobalArgs;
use crate::load::{load, selected_users};
use crate::metrics_socket::{ask_daemon, DEFAULT_DAEMON_SOCKET};
use crate::output::escape::term;
use crate::output::table::{self, opt};
use crate::output::textfile;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this user.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Print JSON (absent values are null, never 0).
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,
    /// Print the Prometheus text exposition format (HELP/TYPE lines, a `user` label), with the
    /// daemon's own counters when it answers on --daemon-socket.
    #[arg(long, conflicts_with = "textfile")]
    pub prometheus: bool,
    /// Write the Prometheus text to PATH (a `.prom` file in node_exporter's textfile
    /// directory) atomically: a temporary file in the same directory, renamed over PATH, mode
    /// 0644. The directory must keep other users out (no access for others): the file names
    /// every customer.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["json", "user"])]
    pub textfile: Option<std::path::PathBuf>,
    /// The daemon's root-only metrics socket, asked for the daemon's own counters by
    /// --prometheus and --textfile (left out, with a note on stderr, when it does not answer).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_DAEMON_SOCKET)]
    pub daemon_socket: std::path::PathBuf,
    /// Print every metric family the daemon can export (`NAME TYPE`), also those absent on
    /// this host: what monitoring/check validates the dashboard and alert rules against.
    #[arg(long, hide = true, conflicts_with_all = ["json", "prometheus"])]
    pub list_families: bool,
}

fn psi_cell(p: Option<Pressure>) -> String {
    opt(p.and_then(|p| p.some), |l| format!("{:.2}", l.avg10))
}

pub fn run(cli: &GlobalArgs, args: &StatsArgs) -> Result<ExitCode> {
    if args.list_families {
        for (name, kind) in all_families() {
            println!("{name} {kind}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.textfile {
        // Checked before anything is read: a bad path is a usage error, not a late failure.
        textfile::check_name(path)?;
    }
    let (config, tree) = load(cli)?;
    let mut all = collect(&tree, selected_users(&tree, args.user.as_deref())?)?;
    if args.prometheus || args.textfile.is_some() {
        fill_info(&config, &mut all);
        let mut text = prometheus_text(&all);
        match ask_daemon(&args.daemon_socket) {
            Ok(daemon) => text.push_str(&daemon),
            Err(e) => eprintln!(
                "cgroupctl stats: the daemon's own counters left out: {}",
                term(&format!("{e:#}"))
            ),
        }
        match &args.textfile {
            Some(path) => textfile::write(path, text.as_bytes())?,
            None => print!("{text}"),
        }
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
                opt(s.network, |t| {
                    table::bytes(t.loopback.receive_bytes + t.external.receive_bytes)
                }),
                opt(s.network, |t| {
                    table::bytes(t.loopback.transmit_bytes + t.external.transmit_bytes)
                }),
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
            "NET_RX",
            "NET_TX",
        ],
        &rows,
    );
    if rows.is_empty() {
        println!("(no user cgroups under {})", tree.users_dir().display());
    }
    Ok(ExitCode::SUCCESS)
}
