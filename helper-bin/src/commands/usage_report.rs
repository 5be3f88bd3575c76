//! `cgroupctl report`: who used what over a period, and who hit which limit (like
//! CloudLinux's `lveinfo --period=1d --by-usage` / `--by-fault`), from the daemon's usage
//! history. Root only: it names every customer. Human units and local time in the table
//! (`--utc` for UTC); JSON (docs/json.md) in bytes, seconds and RFC 3339 UTC.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use cgroup_core::history::{HistoryDbError, Store, Totals};
use cgroup_core::time::{now_ms, parse_since};

use crate::global::GlobalArgs;
use crate::output::clock;
use crate::output::escape::term;
use crate::output::table;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// Everybody who used something, by --order-by.
    Usage,
    /// Who hit limits, most hits first (users without any left out).
    Faults,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderBy {
    Cpu,
    Memory,
    Io,
    Net,
    Faults,
}

#[derive(Debug, Args)]
#[command(after_help = "Periods: 30m, 12h, 1d, 7d (ending now, or at --to). \
    --from/--to: 2026-12-01T03:00:00Z, 2026-12-01, @EPOCH_SECONDS, or an age: 2h, 7d.\n\
    The history is the daemon's ([history] in pam_cgroup.conf(5)): one sample of every user \
    cgroup per interval, rolled up into hours and days as it ages. A period is read from the \
    finest rows kept for it; a coarse row at its ends counts whole.\n\
    Examples: cgroupctl report --period 1d; cgroupctl report --period 7d --by faults; \
    cgroupctl report --from 2026-12-01 --to 2026-12-02 --order-by memory --limit 10 --json")]
pub struct ReportArgs {
    /// The period, ending now (or at --to).
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = crate::duration::positive_secs)]
    pub period: u64,
    /// Start of the period (instead of --period).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the period (default: now).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Report usage or limit hits.
    #[arg(long, value_enum, default_value = "usage")]
    pub by: By,
    /// With --by usage: the column users are sorted by, largest first.
    #[arg(long, value_enum, default_value = "cpu")]
    pub order_by: OrderBy,
    /// At most this many users.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Only this user.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Times in UTC instead of the host's local time.
    #[arg(long)]
    pub utc: bool,
}

#[derive(Debug, Serialize)]
pub struct Faults {
    pub memory_max: u64,
    pub memory_high: u64,
    pub oom_kill: u64,
    pub pids_max: u64,
    pub cpu_throttled: u64,
}

/// One user's line. A value no sample measured on this host (its controller is not enabled)
/// is null in JSON and "-" in the table, never 0.
#[derive(Debug, Serialize)]
pub struct UserLine {
    pub user: String,
    pub uid: Option<u32>,
    pub cpu_seconds: Option<f64>,
    pub cpu_percent_avg: Option<f64>,
    pub memory_peak_bytes: Option<u64>,
    pub memory_avg_bytes: Option<u64>,
    pub pids_peak: Option<u64>,
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    pub net_rx_bytes: Option<u64>,
    pub net_tx_bytes: Option<u64>,
    pub faults: Faults,
    pub faults_total: u64,
    pub samples: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub by: By,
    pub users: Vec<UserLine>,
}

fn line(t: &Totals) -> UserLine {
    let r = &t.row;
    UserLine {
        user: t.user.clone(),
        uid: u32::try_from(t.uid).ok(),
        cpu_seconds: r.cpu_usec.map(|u| u as f64 / 1e6),
        cpu_percent_avg: r.cpu_percent(),
        memory_peak_bytes: r.memory_peak,
        memory_avg_bytes: r.memory_avg(),
        pids_peak: r.pids_peak,
        io_read_bytes: r.io_read,
        io_write_bytes: r.io_write,
        net_rx_bytes: r.net_rx,
        net_tx_bytes: r.net_tx,
        faults: Faults {
            memory_max: r.memory_max_hits.unwrap_or(0),
            memory_high: r.memory_high_hits.unwrap_or(0),
            oom_kill: r.oom_kills.unwrap_or(0),
            pids_max: r.pids_max_hits.unwrap_or(0),
            cpu_throttled: r.nr_throttled.unwrap_or(0),
        },
        faults_total: r.faults_total(),
        samples: r.samples,
    }
}

/// The sort key of --order-by (largest first).
fn key(l: &UserLine, by: OrderBy) -> f64 {
    let n = |v: Option<u64>| v.unwrap_or(0) as f64;
    match by {
        OrderBy::Cpu => l.cpu_seconds.unwrap_or(0.0),
        OrderBy::Memory => n(l.memory_peak_bytes),
        OrderBy::Io => n(l.io_read_bytes) + n(l.io_write_bytes),
        OrderBy::Net => n(l.net_rx_bytes) + n(l.net_tx_bytes),
        OrderBy::Faults => l.faults_total as f64,
    }
}

/// The period as seconds since the epoch.
fn period(args: &ReportArgs) -> Result<(i64, i64)> {
    let now = now_ms();
    let at = |flag: &str, text: &str| -> Result<i64> {
        parse_since(text, now)
            .map(|ms| (ms / 1000) as i64)
            .map_err(|e| crate::exit::Usage(format!("{flag} {e}")).into())
    };
    let to = match &args.to {
        Some(t) => at("--to", t)?,
        None => (now / 1000) as i64,
    };
    let from = match &args.from {
        Some(f) => at("--from", f)?,
        None => to.saturating_sub(i64::try_from(args.period).unwrap_or(i64::MAX)),
    };
    if from >= to {
        return Err(
            crate::exit::Usage("the period is empty: --from must be before --to".into()).into(),
        );
    }
    Ok((from, to))
}

/// The report of `[from, to)` out of the store: filtered, ordered and cut as asked.
pub fn build(store: &Store, from: i64, to: i64, args: &ReportArgs) -> Result<Report> {
    let mut users: Vec<UserLine> = store.totals(from, to)?.iter().map(line).collect();
    if let Some(u) = &args.user {
        users.retain(|l| &l.user == u);
    }
    match args.by {
        By::Usage => users.sort_by(|a, b| key(b, args.order_by).total_cmp(&key(a, args.order_by))),
        By::Faults => {
            users.retain(|l| l.faults_total > 0);
            users.sort_by_key(|l| std::cmp::Reverse(l.faults_total));
        }
    }
    if let Some(n) = args.limit {
        users.truncate(n);
    }
    Ok(Report {
        from: clock::rfc3339(from),
        to: clock::rfc3339(to),
        by: args.by,
        users,
    })
}

fn print_table(r: &Report, from: i64, to: i64, utc: bool) {
    println!("{} to {}", clock::human(from, utc), clock::human(to, utc));
    if r.users.is_empty() {
        println!(
            "(nothing recorded{})",
            if r.by == By::Faults {
                ": no limit hit"
            } else {
                ""
            }
        );
        return;
    }
    let opt_bytes = |v: Option<u64>| table::opt(v, table::bytes);
    let rows: Vec<Vec<String>> = r
        .users
        .iter()
        .map(|l| match r.by {
            By::Usage => vec![
                l.user.clone(),
                table::opt(l.cpu_seconds, |s| table::usec((s * 1e6) as u64)),
                table::opt(l.cpu_percent_avg, |p| format!("{p:.1}%")),
                opt_bytes(l.memory_avg_bytes),
                opt_bytes(l.memory_peak_bytes),
                table::opt(l.pids_peak, |p| p.to_string()),
                opt_bytes(l.io_read_bytes),
                opt_bytes(l.io_write_bytes),
                opt_bytes(l.net_rx_bytes),
                opt_bytes(l.net_tx_bytes),
                l.faults_total.to_string(),
            ],
            By::Faults => vec![
                l.user.clone(),
                l.faults.memory_max.to_string(),
                l.faults.memory_high.to_string(),
                l.faults.oom_kill.to_string(),
                l.faults.pids_max.to_string(),
                l.faults.cpu_throttled.to_string(),
                l.faults_total.to_string(),
            ],
        })
        .collect();
    match r.by {
        By::Usage => table::print_escaped(
            &[
                "USER",
                "CPU",
                "CPU AVG",
                "MEM AVG",
                "MEM PEAK",
                "PROCS PEAK",
                "IO READ",
                "IO WRITE",
                "NET IN",
                "NET OUT",
                "LIMIT HITS",
            ],
            &rows,
        ),
        By::Faults => table::print_escaped(
            &[
                "USER",
                "MEMORY.MAX",
                "MEMORY.HIGH",
                "OOM KILLS",
                "PIDS.MAX",
                "CPU THROTTLED",
                "TOTAL",
            ],
            &rows,
        ),
    }
}

pub fn run(cli: &GlobalArgs, args: &ReportArgs) -> Result<ExitCode> {
    if let Some(u) = &args.user {
        cgroup_core::names::validate_user_name(u)?;
    }
    let (from, to) = period(args)?;
    let config = crate::load::load_config(cli)?;
    let store = match Store::open_reader(&config.history.database) {
        Ok(s) => Some(s),
        // Nothing sampled yet: an empty report, as for a quiet period.
        Err(HistoryDbError::Missing { .. }) => None,
        Err(e) => return Err(e).context("the usage history"),
    };
    let report = match &store {
        Some(s) => build(s, from, to, args)?,
        None => Report {
            from: clock::rfc3339(from),
            to: clock::rfc3339(to),
            by: args.by,
            users: Vec::new(),
        },
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report, from, to, args.utc);
        if store.is_none() {
            println!(
                "note: {} does not exist yet (the daemon makes it at its first sample)",
                term(&config.history.database.display().to_string())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
