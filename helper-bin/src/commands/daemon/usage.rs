//! The daemon's usage history: every `[history] interval` seconds, one pass of cgroup-core's
//! `history::Sampler` over every user cgroup into the database (`cgroupctl report`, `me
//! --history`). A thread of its own: a slow pass (10,000 users, a slow disk) never holds up
//! reaping, reloads, signals or the fault events; the login path never sees the database.
//!
//! The database is opened at the first pass and again after a failure (logged once until it
//! works again); `[history]` changes follow SIGHUP (a new `database` is opened at the next
//! pass; `enabled = false` stops sampling and closes it; a new `interval` counts from the last
//! pass at once).

use std::os::fd::OwnedFd;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cgroup_core::config::{Config, HistoryConfig};
use cgroup_core::history::{Retention, Sampler, Store};
use cgroup_core::tree::Tree;

use super::log;
use super::worker::sleep_until;

/// A pass longer than this is logged (the bench measures what a pass costs).
const SLOW_PASS: Duration = Duration::from_secs(1);
/// How often the sampler thread looks for a reloaded interval while it waits.
const RECHECK: Duration = Duration::from_secs(1);

struct Usage {
    sampler: Sampler,
    store: Option<Store>,
    /// The last error logged, so a broken disk gives one line, not one per pass.
    last_error: Option<String>,
    passes: u64,
    /// The interval the last wait was counted with (a reload that changes it is logged).
    interval: Option<Duration>,
}

impl Usage {
    fn failed(&mut self, msg: String) {
        if self.last_error.as_deref() != Some(msg.as_str()) {
            log::error(&format!("usage history: {msg}"));
            self.last_error = Some(msg);
        }
    }

    fn pass(&mut self, tree: &Tree, cfg: &HistoryConfig) {
        if self.store.as_ref().map(|s| s.path()) != Some(cfg.database.as_path()) {
            match Store::open_writer(&cfg.database) {
                Ok(s) => {
                    log::info(&format!(
                        "recording usage every {} s in {}",
                        cfg.interval_secs,
                        cfg.database.display()
                    ));
                    self.store = Some(s);
                }
                Err(e) => {
                    self.store = None;
                    return self.failed(e.to_string());
                }
            }
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let started = Instant::now();
        let now = (cgroup_core::time::now_ms() / 1000) as i64;
        match self.sampler.pass(tree, store, now, &Retention::of(cfg)) {
            Ok(report) => {
                self.last_error = None;
                self.passes += 1;
                for (user, why) in &report.unreadable {
                    log::warn(&format!("usage of {user}: {why}"));
                }
                let took = started.elapsed();
                if self.passes <= 2 || took > SLOW_PASS {
                    log::info(&format!(
                        "usage history pass: {} users, {} rows, read {} ms, written {} ms{}",
                        report.users,
                        report.rows,
                        report.read_time.as_millis(),
                        report.write_time.as_millis(),
                        report
                            .maintained
                            .map(|m| format!(
                                ", rolled up {} hourly and {} daily rows, {} expired, {} over the bound",
                                m.rolled_hours, m.rolled_days, m.expired, m.evicted
                            ))
                            .unwrap_or_default()
                    ));
                }
            }
            Err(e) => {
                // Reopened at the next pass: the file may have been replaced or repaired.
                self.store = None;
                self.failed(e.to_string());
            }
        }
    }
}

/// Samples every `[history] interval` until `stop` becomes readable (the daemon's worker
/// thread).
pub fn run(tree: Arc<RwLock<Tree>>, config: Arc<RwLock<Arc<Config>>>, stop: OwnedFd) {
    let current = move || -> (Tree, HistoryConfig) {
        let t = match tree.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let c = match config.read() {
            Ok(c) => c.history.clone(),
            Err(p) => p.into_inner().history.clone(),
        };
        (t, c)
    };
    let mut usage = Usage {
        sampler: Sampler::new(),
        store: None,
        last_error: None,
        passes: 0,
        interval: None,
    };
    // The next pass is due one interval after the last one began, counted with the interval
    // in force *now*: a reload that shortens it takes effect at once, not after the old one
    // (an hour, say) has run out. The thread wakes at least every RECHECK to see reloads.
    let mut last: Option<(Instant, Instant)> = None;
    loop {
        let (tree, cfg) = current();
        let interval = Duration::from_secs(u64::from(cfg.interval_secs));
        if cfg.enabled && usage.store.is_some() && usage.interval != Some(interval) {
            log::info(&format!(
                "usage history: a pass every {} s",
                cfg.interval_secs
            ));
        }
        usage.interval = Some(interval);
        let due = match last {
            None => Instant::now(),
            // A pass longer than the interval: the next one a whole interval after it ended.
            Some((began, ended)) if ended > began + interval => ended + interval,
            Some((began, _)) => began + interval,
        };
        if Instant::now() < due {
            if !sleep_until("usage history", &stop, due.min(Instant::now() + RECHECK)) {
                return;
            }
            continue;
        }
        let began = Instant::now();
        if cfg.enabled {
            usage.pass(&tree, &cfg);
        } else if usage.store.take().is_some() {
            // Disabled by a reload: the next enable starts with a baseline again.
            usage.sampler = Sampler::new();
            log::info("usage history disabled ([history] enabled = false)");
        }
        last = Some((began, Instant::now()));
    }
}
