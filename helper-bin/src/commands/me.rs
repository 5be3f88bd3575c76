//! `cgroupctl me [--json]`: a customer's own limits, usage and recent faults, from the
//! daemon's me socket; `me --history [--period 7d]`: its own usage over a period. Needs no privilege: the daemon answers about the uid the kernel gives
//! for this end of the socket, and nothing else. Text is escaped like every table (the
//! snapshot holds command lines).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;

use cgroup_core::events::Event;

use crate::output::escape::term;
use crate::output::table;
use crate::report::events::{row, snapshot_text, HEADERS};

pub const DEFAULT_ME_SOCKET: &str = cgroup_core::paths::ME_SOCKET;
/// An answer is a few hundred KiB at most (50 events, 10 processes each).
const MAX_ANSWER: u64 = 8 << 20;

#[derive(Debug, Args)]
pub struct MeArgs {
    /// Print the daemon's JSON answer.
    #[arg(long)]
    pub json: bool,
    /// Your usage over a period instead (CPU %, memory, processes, limit hits), from the
    /// daemon's usage history.
    #[arg(long)]
    pub history: bool,
    /// With --history: how far back (30m, 12h, 1d, 7d, 30d).
    #[arg(long, value_name = "DURATION", default_value = "7d", requires = "history", value_parser = crate::duration::positive_secs)]
    pub period: u64,
    /// With --history: times in UTC instead of the host's local time.
    #[arg(long, requires = "history")]
    pub utc: bool,
    /// The daemon's me socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_ME_SOCKET)]
    pub socket: PathBuf,
}

#[derive(Debug, Deserialize)]
struct View {
    user: String,
    confined: bool,
    limits: std::collections::BTreeMap<String, String>,
    usage: Option<serde_json::Value>,
    events: Vec<Event>,
    note: Option<String>,
}

fn fetch(args: &MeArgs) -> Result<String> {
    let mut s = UnixStream::connect(&args.socket).with_context(|| {
        format!(
            "connect to {} (is pam-cgroup.service running with --me-socket?)",
            args.socket.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    // The one request line the daemon reads (it answers the plain question to anything
    // else, or after a short wait to nothing).
    let request = if args.history {
        format!("history {}\n", args.period)
    } else {
        "me\n".to_string()
    };
    // A refusal ("busy") may close the connection before the request is read: the answer
    // still tells.
    let _ = s.write_all(request.as_bytes());
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut text = String::new();
    s.take(MAX_ANSWER)
        .read_to_string(&mut text)
        .context("read the daemon's answer")?;
    Ok(text)
}

fn usage_rows(u: &serde_json::Value) -> Vec<Vec<String>> {
    let num = |v: &serde_json::Value| v.as_u64();
    let mut rows = Vec::new();
    let mut push = |what: &str, v: Option<String>| {
        rows.push(vec![what.to_string(), v.unwrap_or_else(|| "-".to_string())]);
    };
    // The names before docs/json.md too: a daemon not yet restarted after an upgrade.
    let either = |new: &str, old: &str| num(&u[new]).or_else(|| num(&u[old]));
    push(
        "memory",
        either("memory_bytes", "memory_current").map(table::bytes),
    );
    push(
        "memory peak",
        either("memory_peak_bytes", "memory_peak").map(table::bytes),
    );
    push(
        "processes",
        either("pids", "pids_current").map(|v| v.to_string()),
    );
    push("cpu time", num(&u["cpu"]["usage_usec"]).map(table::usec));
    push(
        "cpu throttled",
        num(&u["cpu"]["throttled_usec"]).map(table::usec),
    );
    push("io read", num(&u["io"]["rbytes"]).map(table::bytes));
    push("io written", num(&u["io"]["wbytes"]).map(table::bytes));
    rows
}

pub fn run(args: &MeArgs) -> Result<ExitCode> {
    let text = fetch(args)?;
    if text.trim().is_empty() {
        // The daemon ends a connection it could not answer within its deadline (a loaded host)
        // without a word: say so, rather than "not JSON".
        bail!("the daemon closed the connection without an answer: try again in a moment");
    }
    let value: serde_json::Value =
        serde_json::from_str(text.trim()).context("the daemon's answer is not JSON")?;
    if let Some(e) = value.get("error").and_then(|e| e.as_str()) {
        bail!("the daemon says: {}", term(e));
    }
    if args.history {
        return print_history(&value, args);
    }
    if args.json {
        let mut shown = value.clone();
        if let Some(events) = shown.get_mut("events").and_then(|e| e.as_array_mut()) {
            for e in events.iter_mut() {
                *e = crate::report::events::event_json(e.take());
            }
        }
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    let view: View = serde_json::from_value(value).context("the daemon's answer")?;
    println!("user {}", term(&view.user));
    if !view.confined {
        println!(
            "(no cgroup of yours right now: you are not confined by pam_cgroup, or not logged in)"
        );
    }
    if let Some(n) = &view.note {
        println!("note: {}", term(n));
    }
    if !view.limits.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = view
            .limits
            .iter()
            .map(|(k, v)| vec![k.clone(), v.clone()])
            .collect();
        table::print(&["LIMIT", "VALUE"], &rows);
    }
    if let Some(u) = &view.usage {
        println!();
        table::print(&["USAGE", "NOW"], &usage_rows(u));
    }
    println!();
    if view.events.is_empty() {
        println!("(no faults recorded)");
    }
    for e in &view.events {
        print!("{}", table::render(&HEADERS, &[row(e)]));
        print!("{}", snapshot_text(e));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Deserialize)]
struct HistoryRow {
    at: String,
    cpu_percent: Option<f64>,
    memory_bytes: Option<u64>,
    memory_peak_bytes: Option<u64>,
    processes: Option<u64>,
    limit_hits: u64,
}

#[derive(Debug, Deserialize)]
struct HistoryView {
    user: String,
    from: String,
    to: String,
    rows: Vec<HistoryRow>,
    note: Option<String>,
}

/// A time of the daemon's answer (RFC 3339 UTC) for people.
fn when(text: &str, utc: bool) -> String {
    match cgroup_core::time::parse_since(text, 0) {
        Ok(ms) => crate::output::clock::human((ms / 1000) as i64, utc),
        Err(_) => term(text),
    }
}

fn print_history(value: &serde_json::Value, args: &MeArgs) -> Result<ExitCode> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let view: HistoryView = serde_json::from_value(value.clone()).context("the daemon's answer")?;
    println!(
        "user {}: {} to {}",
        term(&view.user),
        when(&view.from, args.utc),
        when(&view.to, args.utc)
    );
    if let Some(n) = &view.note {
        println!("note: {}", term(n));
    }
    if view.rows.is_empty() {
        println!("(no usage recorded in this period)");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = view
        .rows
        .iter()
        .map(|r| {
            vec![
                when(&r.at, args.utc),
                table::opt(r.cpu_percent, |p| format!("{p:.1}%")),
                table::opt(r.memory_bytes, table::bytes),
                table::opt(r.memory_peak_bytes, table::bytes),
                table::opt(r.processes, |p| p.to_string()),
                r.limit_hits.to_string(),
            ]
        })
        .collect();
    table::print(
        &[
            "FROM",
            "CPU",
            "MEMORY",
            "MEMORY PEAK",
            "PROCESSES",
            "LIMIT HITS",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_for(socket: PathBuf, history: bool) -> MeArgs {
        MeArgs {
            json: false,
            history,
            period: 3600,
            utc: true,
            socket,
        }
    }

    #[test]
    fn a_connection_closed_without_an_answer_is_said_in_those_words() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("me.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                // The request read, then the connection closed without an answer, as the
                // daemon ends one it could not answer before its deadline.
                let (mut s, _) = listener.accept().unwrap();
                let mut request = String::new();
                s.read_to_string(&mut request).unwrap();
                assert!(request.starts_with("me") || request.starts_with("history"));
            }
        });
        for history in [false, true] {
            let err = run(&args_for(path.clone(), history)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "the daemon closed the connection without an answer: try again in a moment"
            );
        }
        server.join().unwrap();
    }
}
