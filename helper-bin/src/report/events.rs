//! A fault event as the text tables (`events`, `me`) and the JSON (`events --json`, `me
//! --json`) show it. Every customer-chosen string (comm, command line, cgroup) goes through
//! the table's escaping.

use cgroup_core::events::{Event, FaultKind};
use cgroup_core::time::utc_text;

use crate::output::table;

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
