//! What `cgroupctl me --history` shows a customer: its own rows over a period, in its words
//! (CPU %, memory, processes, limit hits), built by the daemon for the uid the kernel gives
//! for the peer of its socket. The only thing the customer chooses is the period's length;
//! the identity is the peer's name and uid together, so a name given again to a new customer
//! never shows its predecessor's rows.

use std::path::Path;

use serde::Serialize;

use super::error::HistoryDbError;
use super::store::Store;

/// Rows a customer gets at most: a longer period is summed into hours, then days.
pub const MAX_ROWS: i64 = 200;
/// The longest period a customer may ask for.
pub const MAX_PERIOD_SECS: i64 = 400 * 86_400;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeRow {
    /// Start of the row's time (RFC 3339 UTC).
    pub at: String,
    /// CPU used over the row's time, in percent of one CPU.
    pub cpu_percent: Option<f64>,
    /// Average memory in use.
    pub memory_bytes: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    /// Most processes at once.
    pub processes: Option<u64>,
    /// Times a limit stopped something (memory, processes, OOM kills, CPU throttling).
    pub limit_hits: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeHistory {
    pub user: String,
    pub from: String,
    pub to: String,
    pub rows: Vec<MeRow>,
    /// Why there is nothing (no history kept, a read error), in the customer's words.
    pub note: Option<String>,
}

fn utc(secs: i64) -> String {
    crate::time::utc_text((secs.max(0) as u64).saturating_mul(1000))
}

/// The rows of `user` (with `uid`) over the `period` seconds before `now`.
pub fn answer(database: &Path, user: &str, uid: u32, period: i64, now: i64) -> MeHistory {
    let from = now - period.clamp(1, MAX_PERIOD_SECS);
    let mut me = MeHistory {
        user: user.to_string(),
        from: utc(from),
        to: utc(now),
        rows: Vec::new(),
        note: None,
    };
    let rows = Store::open_reader(database).and_then(|store| match store.find_user(user, uid)? {
        Some(id) => store.user_rows(id, from, now, MAX_ROWS),
        None => Ok(Vec::new()),
    });
    match rows {
        Ok(rows) => {
            me.rows = rows
                .into_iter()
                .map(|(at, r)| MeRow {
                    at: utc(at),
                    cpu_percent: r.cpu_percent(),
                    memory_bytes: r.memory_avg(),
                    memory_peak_bytes: r.memory_peak,
                    processes: r.pids_peak,
                    limit_hits: r.faults_total(),
                })
                .collect();
        }
        Err(HistoryDbError::Missing { .. }) => {
            me.note = Some("no usage history is kept on this host".to_string())
        }
        Err(_) => me.note = Some("the usage history cannot be read right now".to_string()),
    }
    me
}
