//! One pass of the daemon's sampler: every user cgroup read once, one row per user written in
//! one transaction, then (at most once an hour, and whenever the file is over its bound) the
//! rollups and retention.
//!
//! The previous reading of each user is kept in memory. The first pass after the daemon
//! starts is a baseline (what happened before it is nobody's interval); a cgroup that appears
//! after that was made since the last pass, so everything it counted is this interval's.
//! An interval in which a user had no process and used nothing leaves no row: `samples`
//! counts the intervals with something in them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::inventory::FoundUserCgroup;
use crate::private_ip::traffic::TrafficReader;
use crate::stats::semantics::EventSemantics;
use crate::tree::Tree;

use super::error::HistoryDbError;
use super::reading::Reading;
use super::rollup::{Maintained, Retention};
use super::row::{Row, Table};
use super::store::Store;

/// What one pass did and cost.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    pub users: usize,
    pub rows: usize,
    /// Users whose files could not be read (vanished meanwhile, or an error): name, why.
    pub unreadable: Vec<(String, String)>,
    pub read_time: Duration,
    pub write_time: Duration,
    pub maintained: Option<Maintained>,
}

pub struct Sampler {
    last: HashMap<String, Reading>,
    /// The time of the last pass (seconds); None before the first.
    last_at: Option<i64>,
    /// The hour whose maintenance was done.
    maintained_hour: Option<i64>,
    /// uid of each name, asked of NSS once per name.
    uids: HashMap<String, i64>,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    pub fn new() -> Sampler {
        Sampler {
            last: HashMap::new(),
            last_at: None,
            maintained_hour: None,
            uids: HashMap::new(),
        }
    }

    fn uid_of(&mut self, name: &str) -> i64 {
        *self.uids.entry(name.to_string()).or_insert_with(|| {
            crate::nss::lookup_user(name)
                .map(|u| i64::from(u.uid))
                .unwrap_or(-1)
        })
    }

    /// Reads every user cgroup of `users` (a legacy cgroup only when the user has no other,
    /// like the metrics) and returns the rows of this interval, by user name.
    pub fn read(
        &mut self,
        mut users: Vec<FoundUserCgroup>,
        traffic: Option<&TrafficReader>,
        now: i64,
        report: &mut PassReport,
    ) -> Vec<(String, Row)> {
        users.dedup_by(|later, first| later.name == first.name);
        let started = Instant::now();
        let secs = self
            .last_at
            .map_or(0, |t| u64::try_from(now - t).unwrap_or(0));
        let baseline = self.last_at.is_none();
        // How the kernel counts faults: once a pass (it reads the mount table).
        let sem = users.first().map(|u| EventSemantics::detect(&u.path));
        let mut seen = HashMap::with_capacity(users.len());
        let mut rows = Vec::with_capacity(users.len());
        for u in users {
            let Some(sem) = sem else { break };
            match Reading::read(&u.path, traffic, sem) {
                Ok(r) => {
                    if !baseline && secs > 0 {
                        let row = r.row_since(self.last.get(&u.name), secs);
                        if !row.is_idle() {
                            rows.push((u.name.clone(), row));
                        }
                    }
                    seen.insert(u.name, r);
                }
                // Removed while we walked: nothing left to count.
                Err(e) if e.errno() == Some(libc::ENOENT) => {}
                Err(e) => report.unreadable.push((u.name, e.to_string())),
            }
        }
        report.users = seen.len();
        self.last = seen;
        self.last_at = Some(now);
        report.read_time = started.elapsed();
        rows
    }

    /// Writes the rows of a pass at `now`, then maintains the file when the hour changed or
    /// it is over its bound.
    pub fn write(
        &mut self,
        store: &mut Store,
        rows: &[(String, Row)],
        now: i64,
        keep: &Retention,
        report: &mut PassReport,
    ) -> Result<(), HistoryDbError> {
        let started = Instant::now();
        let mut by_id = Vec::with_capacity(rows.len());
        for (name, row) in rows {
            let uid = self.uid_of(name);
            by_id.push((store.user_id(name, uid)?, *row));
        }
        store.insert(Table::Sample, now, &by_id)?;
        report.rows = by_id.len();
        let hour = now - now.rem_euclid(3600);
        if self.maintained_hour != Some(hour) || store.used_bytes()? > keep.max_bytes {
            report.maintained = Some(store.maintain(now, keep)?);
            self.maintained_hour = Some(hour);
        }
        report.write_time = started.elapsed();
        Ok(())
    }

    /// A whole pass over the tree at `now` (seconds since the epoch).
    pub fn pass(
        &mut self,
        tree: &Tree,
        store: &mut Store,
        now: i64,
        keep: &Retention,
    ) -> Result<PassReport, HistoryDbError> {
        let mut report = PassReport::default();
        let users = crate::inventory::user_cgroups(tree)?;
        let traffic = TrafficReader::open(tree)?;
        let rows = self.read(users, traffic.as_ref(), now, &mut report);
        self.write(store, &rows, now, keep, &mut report)?;
        Ok(report)
    }
}
