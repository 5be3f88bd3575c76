//! `cgroupctl events [--user U] [--since T] [--kind K] [--follow] [--json] [--snapshot]`:
//! the daemon's fault history (like CloudLinux's `lveinfo --by-fault` and
//! `lve-read-snapshot`). Root only: the history names every customer and its command lines.
//!
//! Text output escapes every customer-chosen string (comm, command line, cgroup) through
//! table::render / escape::term; JSON is escaped by serde_json.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use cgroup_core::events::history::{self, Stored};
use cgroup_core::events::{Event, FaultKind};
use cgroup_core::time::{now_ms, parse_since, utc_text};

use super::escape::term;
use super::table;
use crate::Cli;

fn kind_arg(s: &str) -> std::result::Result<FaultKind, String> {
    FaultKind::parse(s).ok_or_else(|| {
        let all: Vec<&str> = cgroup_core::events::ALL_KINDS
            .iter()
            .map(|k| k.name())
            .collect();
        format!("{s:?}: expected one of {}", all.join(", "))
    })
}

#[derive(Debug, Args)]
#[command(
    after_help = "Kinds: memory_high, memory_max, oom, oom_kill, pids_max, \
    cpu_throttled, memory_pressure, io_pressure, cpu_pressure.\n\
    --since: 2026-12-01T03:00:00Z, 2026-12-01, @EPOCH_SECONDS, or an age: 90s, 10m, 2h, 7d."
)]
pub struct EventsArgs {
    /// Only this user's events.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only events at or after this time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only this kind of fault (repeatable).
    #[arg(long, value_name = "KIND", value_parser = kind_arg)]
    pub kind: Vec<FaultKind>,
    /// Keep printing new events as the daemon records them (Ctrl-C ends).
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line (JSON Lines), with the snapshot.
    #[arg(long)]
    pub json: bool,
    /// Print each event's process snapshot under it.
    #[arg(long)]
    pub snapshot: bool,
}

struct Filter {
    user: Option<String>,
    since_ms: u64,
    kinds: Vec<FaultKind>,
}

impl Filter {
    fn keeps(&self, e: &Event) -> bool {
        self.user.as_deref().is_none_or(|u| u == e.user)
            && e.time_ms >= self.since_ms
            && (self.kinds.is_empty() || self.kinds.contains(&e.kind))
    }
}

/// The usage cell: its unit depends on the kind.
pub fn usage_text(e: &Event) -> String {
    let Some(u) = e.usage else {
        return "-".to_string();
    };
    match e.kind {
        FaultKind::PidsMax => format!("{u:.0}"),
        FaultKind::CpuThrottled
        | FaultKind::MemoryPressure
        | FaultKind::IoPressure
        | FaultKind::CpuPressure => format!("{u:.1}%"),
        _ => table::bytes(u as u64),
    }
}

fn limit_text(e: &Event) -> String {
    let Some(l) = e.limit.as_deref() else {
        return "-".to_string();
    };
    match (e.kind.by_memory(), l.parse::<u64>()) {
        (true, Ok(n)) if e.kind != FaultKind::MemoryPressure => table::bytes(n),
        _ => l.to_string(),
    }
}

pub const HEADERS: [&str; 7] = ["TIME", "USER", "KIND", "DELTA", "LIMIT", "USAGE", "TOP"];

pub fn row(e: &Event) -> Vec<String> {
    vec![
        utc_text(e.time_ms),
        e.user.clone(),
        e.kind.to_string(),
        e.delta.to_string(),
        limit_text(e),
        usage_text(e),
        match e.killed.first() {
            Some(k) => format!("killed {} ({})", k.comm, k.pid),
            None => e
                .processes
                .first()
                .map(|p| format!("{} ({})", p.comm, p.pid))
                .unwrap_or_else(|| "-".to_string()),
        },
    ]
}

/// The snapshot of one event, as an indented table (escaped like every table).
pub fn snapshot_text(e: &Event) -> String {
    let mut out = String::new();
    if !e.killed.is_empty() {
        let rows: Vec<Vec<String>> = e
            .killed
            .iter()
            .map(|k| vec![k.pid.to_string(), k.uid.to_string(), k.comm.clone()])
            .collect();
        out = table::render(&["KILLED", "UID", "COMM"], &rows)
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect();
    }
    out + &processes_text(e)
}

fn processes_text(e: &Event) -> String {
    if e.processes.is_empty() {
        return "    (no process in the cgroup at that moment)\n".to_string();
    }
    let rows: Vec<Vec<String>> = e
        .processes
        .iter()
        .map(|p| {
            vec![
                p.pid.to_string(),
                table::bytes(p.rss_bytes),
                table::usec(p.cpu_usec),
                p.cgroup.clone(),
                p.comm.clone(),
                p.cmdline.clone(),
            ]
        })
        .collect();
    table::render(&["PID", "RSS", "CPU", "CGROUP", "COMM", "COMMAND"], &rows)
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect()
}

/// An event as `--json` prints it (docs/json.md): its time as `time_at` (RFC 3339 UTC, with
/// milliseconds) and `time_epoch` (seconds), instead of the history's own `time_ms`. The
/// history and the daemon's answers to `cgroupctl me` keep `time_ms`: what is stored is not
/// renamed under a running daemon.
pub fn event_json(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(obj) = v.as_object_mut() {
        if let Some(ms) = obj.remove("time_ms").and_then(|t| t.as_u64()) {
            let at = utc_text(ms);
            obj.insert(
                "time_at".into(),
                format!("{}.{:03}Z", at.trim_end_matches('Z'), ms % 1000).into(),
            );
            obj.insert("time_epoch".into(), (ms / 1000).into());
        }
    }
    v
}

fn print_events(events: &[&Stored], args: &EventsArgs, headers: bool) -> Result<()> {
    if args.json {
        for s in events {
            let v = event_json(serde_json::to_value(&s.event)?);
            println!("{}", serde_json::to_string(&v)?);
        }
        return Ok(());
    }
    if args.snapshot {
        for s in events {
            // One single-row table per event, then its snapshot.
            print!("{}", table::render(&HEADERS, &[row(&s.event)]));
            print!("{}", snapshot_text(&s.event));
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events.iter().map(|s| row(&s.event)).collect();
    let text = table::render(&HEADERS, &rows);
    if headers {
        print!("{text}");
    } else {
        // --follow: the header was printed once; the columns may shift, the data stays right.
        print!(
            "{}",
            text.lines()
                .skip(1)
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        );
    }
    Ok(())
}

fn history_dir(cli: &Cli) -> Result<PathBuf> {
    Ok(super::view::load_config(cli)?.events.history_dir)
}

fn read(dir: &Path) -> Result<history::Contents> {
    match history::read(dir) {
        Ok(c) => Ok(c),
        Err(history::HistoryError::Missing { .. }) => Ok(history::Contents::default()),
        Err(e) => Err(e.into()),
    }
}

pub fn run(cli: &Cli, args: &EventsArgs) -> Result<ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        bail!("events names every customer: root only (a customer sees its own faults with `cgroupctl me`)");
    }
    if let Some(u) = &args.user {
        cgroup_core::names::validate_user_name(u)?;
    }
    let since_ms = match &args.since {
        Some(t) => {
            parse_since(t, now_ms()).map_err(|e| crate::exit::Usage(format!("--since {e}")))?
        }
        None => 0,
    };
    let filter = Filter {
        user: args.user.clone(),
        since_ms,
        kinds: args.kind.clone(),
    };
    let dir = history_dir(cli)?;
    let contents = read(&dir)?;
    if contents.skipped > 0 {
        eprintln!(
            "cgroupctl: {} damaged record(s) in {} skipped (a crash mid-write leaves one)",
            contents.skipped,
            term(&dir.display().to_string())
        );
    }
    let shown: Vec<&Stored> = contents
        .events
        .iter()
        .filter(|s| filter.keeps(&s.event))
        .collect();
    print_events(&shown, args, true)?;
    if !args.follow {
        if shown.is_empty() && !args.json {
            println!("(no events)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut last_seq = contents.events.last().map(|s| s.seq).unwrap_or(0);
    let mut headers = shown.is_empty();
    loop {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_millis(500));
        let contents = read(&dir)?;
        let new: Vec<&Stored> = contents
            .events
            .iter()
            .filter(|s| s.seq > last_seq && filter.keeps(&s.event))
            .collect();
        if let Some(s) = contents.events.last() {
            last_seq = last_seq.max(s.seq);
        }
        if !new.is_empty() {
            print_events(&new, args, headers)?;
            headers = false;
        }
    }
}
