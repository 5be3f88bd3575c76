//! `cgroupctl events [--user U] [--since T] [--kind K] [--follow] [--json] [--snapshot]`:
//! the daemon's fault history, the `events` of `[history] database` (like CloudLinux's
//! `lveinfo --by-fault` and `lve-read-snapshot`). Root only: the history names every customer
//! and its command lines. The filters are the database's query (its indexes by time and user).
//!
//! Text output escapes every customer-chosen string (comm, command line, cgroup) through
//! table::render / escape::term; JSON is escaped by serde_json.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use cgroup_core::events::FaultKind;
use cgroup_core::history::events::{self, Filter, Listed, Recorded};
use cgroup_core::time::{now_ms, parse_since};

use crate::global::GlobalArgs;
use crate::output::escape::term;
use crate::output::table;
use crate::report::events::{event_json, row, snapshot_text, HEADERS};

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

fn print_events(events: &[Recorded], args: &EventsArgs, headers: bool) -> Result<()> {
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

fn database(cli: &GlobalArgs) -> Result<PathBuf> {
    Ok(crate::load::load_config(cli)?.history.database)
}

fn read(database: &Path, filter: &Filter) -> Result<Listed> {
    let listed = events::list(database, filter)?;
    if listed.unreadable > 0 {
        eprintln!(
            "cgroupctl: {} damaged record(s) in {} skipped",
            listed.unreadable,
            term(&database.display().to_string())
        );
    }
    Ok(listed)
}

pub fn run(cli: &GlobalArgs, args: &EventsArgs) -> Result<ExitCode> {
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
    let mut filter = Filter {
        user: args.user.clone(),
        since_ms,
        kinds: args.kind.clone(),
        after_seq: 0,
    };
    let database = database(cli)?;
    let shown = read(&database, &filter)?.events;
    print_events(&shown, args, true)?;
    if !args.follow {
        if shown.is_empty() && !args.json {
            println!("(no events)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    // The sequence numbers only grow: every event the filter keeps up to now was printed, so
    // what it keeps after the last one printed is new.
    filter.after_seq = shown.last().map(|r| r.seq).unwrap_or(0);
    let mut headers = shown.is_empty();
    loop {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_millis(500));
        let new = read(&database, &filter)?.events;
        if let Some(r) = new.last() {
            filter.after_seq = r.seq;
        }
        if !new.is_empty() {
            print_events(&new, args, headers)?;
            headers = false;
        }
    }
}
