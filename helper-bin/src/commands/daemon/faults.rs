//! The daemon's fault events: a pass of cgroup-core's `Recorder` over users/ once a
//! second; each event gets one journal line and a row in the history database's events
//! (`[history] database`, whether usage sampling is on or off).
//!
//! The database is opened at the first event (a host without faults gets no file), and again
//! at the next event after a failure. A database that cannot be opened or written is logged
//! (once until it works again) and the events still reach the journal: losing the database
//! must never stop the daemon.
//!
//! An event the database refuses because another writer holds it (the usage sampler's
//! hourly rollup) waits in memory and is written at a later pass (`waiting`): the pass never
//! stalls behind the rollup, and the event is not lost to the database.
//!
//! On upgrade, the ring files older versions kept events in (`[events] history_dir`) are
//! imported once, at the daemon's start, then removed: the daemon is the database's one
//! writer, and it starts the same way under systemd, by hand or in a test. An import that
//! fails is logged and tried again at the next start (the ring stays until it worked).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cgroup_core::tree::Tree;

use cgroup_core::config::{Config, EventsConfig};
use cgroup_core::events::recorder::Recorder;
use cgroup_core::events::Event;
use cgroup_core::history::events::Writer;

use super::log;
use super::worker::sleep_until;
use cgroup_core::stats::daemon::Counters;

mod waiting;

use waiting::{Waiting, WriteError};

/// How long one write waits for another writer before the event waits for the next pass.
const BUSY_WAIT: Duration = Duration::from_millis(250);
/// How long the one-time import of an old event ring waits for another writer.
const IMPORT_BUSY_WAIT: Duration = Duration::from_secs(10);

pub struct Faults {
    recorder: Recorder,
    database: PathBuf,
    history: Option<Writer>,
    /// The last history error logged, so a broken disk gives one line, not one per event.
    history_error: Option<String>,
    /// Events the database was too busy to take yet, oldest first.
    waiting: Waiting,
    /// Whether the current wait was logged (once per busy spell, not per pass).
    busy_logged: bool,
}

impl Faults {
    pub fn new(cfg: &EventsConfig, database: &Path, tree: &Tree) -> Faults {
        let mut recorder = Recorder::new(cfg.clone(), Path::new("/proc"));
        // The kernel log names cgroups relative to the cgroup2 mount.
        let users_rel = tree
            .users_dir()
            .strip_prefix(&tree.mount.mount_point)
            .map(|p| format!("/{}", p.display()))
            .ok();
        match (cgroup_core::events::kmsg::Kmsg::open(), users_rel) {
            (Ok(k), Some(rel)) => recorder = recorder.with_kernel_log(k, rel),
            (Err(e), _) => log::warn(&format!(
                "/dev/kmsg: {e}: oom_kill events will not name the killed process"
            )),
            (_, None) => {}
        }
        Faults {
            recorder,
            database: database.to_path_buf(),
            history: None,
            history_error: None,
            waiting: Waiting::default(),
            busy_logged: false,
        }
    }

    /// The ring files of an older version, if `[events] history_dir` still holds them, go
    /// into the database (opened for it) and are removed.
    pub fn import_old_ring(&mut self) {
        let dir = self.recorder.config().history_dir.clone();
        if !dir.exists() {
            return;
        }
        if self.history.is_none() {
            self.open_history();
        }
        let Some(history) = self.history.as_mut() else {
            return;
        };
        // The import runs once, at the start, in one transaction: it may wait for the
        // sampler's first write as long as any writer did before.
        let _ = history.set_busy_wait(IMPORT_BUSY_WAIT);
        let imported = history.import_ring(&dir);
        let _ = history.set_busy_wait(BUSY_WAIT);
        match imported {
            Ok(done) => {
                log::info(&format!(
                    "imported {} fault events from the old ring {} ({} there already, {} damaged skipped); {}",
                    done.added,
                    dir.display(),
                    done.present,
                    done.skipped,
                    if done.dir_removed {
                        "its directory is removed"
                    } else {
                        "its files are removed, the directory holds something else and stays"
                    }
                ));
            }
            Err(e) => log::error(&format!(
                "{e}: the old ring stays and is imported at the next start"
            )),
        }
    }

    fn open_history(&mut self) {
        let bound = self.recorder.config().history_size;
        match Writer::open(&self.database, bound).and_then(|w| {
            w.set_busy_wait(BUSY_WAIT)?;
            Ok(w)
        }) {
            Ok(w) => {
                log::info(&format!(
                    "recording fault events in {}",
                    self.database.display()
                ));
                self.history = Some(w);
                self.history_error = None;
            }
            Err(e) => self.history_failed(format!("event history: {e}")),
        }
    }

    fn history_failed(&mut self, msg: String) {
        if self.history_error.as_deref() != Some(msg.as_str()) {
            log::error(&format!("{msg}; events go to the journal only"));
            self.history_error = Some(msg);
        }
    }

    /// SIGHUP: new thresholds and bound; a moved database is reopened.
    pub fn reload(&mut self, cfg: &EventsConfig, database: &Path) {
        self.recorder.set_config(cfg.clone());
        if database != self.database {
            // Reopened (at the next event) at the new place.
            self.database = database.to_path_buf();
            self.history = None;
        } else if let Some(h) = self.history.as_mut() {
            h.set_bound(cfg.history_size);
        }
    }

    /// One sample of every user cgroup, plus the events other threads sent (already logged
    /// by them), into the history.
    pub fn pass(&mut self, users_dir: &Path, counters: &Counters, sent: &Receiver<Event>) {
        let key = match cgroup_core::tree::tree_key() {
            Ok(key) => key,
            Err(e) => {
                // Without the key no user cgroup can be named: nothing to sample this time.
                log::error(&format!("fault counters: {e}"));
                return;
            }
        };
        let pass = self.recorder.sample(users_dir, &key);
        for (user, why) in pass.unreadable {
            log::warn(&format!("fault counters of {user}: {why}"));
        }
        for event in pass.events {
            log::warn(&event.log_line());
            counters.fault_events.fetch_add(1, Ordering::Relaxed);
            self.keep(event, counters);
        }
        for event in sent.try_iter() {
            self.keep(event, counters);
        }
        // The events that waited for a busy database, even when this pass found none.
        self.flush(counters);
    }

    fn keep(&mut self, event: Event, counters: &Counters) {
        if let Some(lost) = self.waiting.push(event) {
            counters
                .fault_events_unsaved
                .fetch_add(1, Ordering::Relaxed);
            log::error(&format!(
                "event history: more than {} events waiting for a busy database: the {} event of {} at {} ms is in the journal only",
                waiting::MAX,
                lost.kind.name(),
                lost.user,
                lost.time_ms
            ));
        }
    }

    /// Writes the waiting events, oldest first, until the database is busy.
    fn flush(&mut self, counters: &Counters) {
        if self.waiting.len() == 0 {
            return;
        }
        if self.history.is_none() {
            self.open_history();
        }
        let Some(history) = self.history.as_mut() else {
            let lost = self.waiting.drain().count();
            counters
                .fault_events_unsaved
                .fetch_add(lost as u64, Ordering::Relaxed);
            return;
        };
        let done = self.waiting.flush(|event| match history.add(event) {
            Ok(_) => Ok(()),
            Err(e) if e.is_busy() => Err(WriteError::Busy),
            Err(e) => Err(WriteError::Failed(format!("event history: {e}"))),
        });
        counters
            .fault_events_unsaved
            .fetch_add(done.failed.len() as u64, Ordering::Relaxed);
        if let Some(why) = done.failed.into_iter().last() {
            self.history_failed(why);
        } else if done.written > 0 {
            self.history_error = None;
        }
        if done.waiting > 0 && !self.busy_logged {
            log::info(&format!(
                "event history: {} busy (a rollup in progress): {} events wait and are written at a later pass",
                self.database.display(),
                done.waiting
            ));
        }
        self.busy_logged = done.waiting > 0;
    }
}

/// Samples once a second until `stop` becomes readable; picks up `[events]` and `[history]
/// database` changes (SIGHUP). The daemon's worker thread.
pub fn run(
    tree: Arc<RwLock<Tree>>,
    config: Arc<RwLock<Arc<Config>>>,
    counters: Arc<Counters>,
    sent: Receiver<Event>,
    stop: OwnedFd,
) {
    let read_config = move || match config.read() {
        Ok(c) => (c.events.clone(), c.history.database.clone()),
        Err(p) => {
            let c = p.into_inner();
            (c.events.clone(), c.history.database.clone())
        }
    };
    let current_tree = move || match tree.read() {
        Ok(t) => t.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let mut cfg = read_config();
    let mut faults = Faults::new(&cfg.0, &cfg.1, &current_tree());
    faults.import_old_ring();
    let every = Duration::from_secs(1);
    let mut next = Instant::now();
    while sleep_until("fault events", &stop, next) {
        let now_cfg = read_config();
        if now_cfg != cfg {
            faults.reload(&now_cfg.0, &now_cfg.1);
            cfg = now_cfg;
        }
        faults.pass(&current_tree().users_dir(), &counters, &sent);
        next = Instant::now() + every;
    }
}
