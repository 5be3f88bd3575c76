//! The daemon's fault events: a pass of cgroup-core's `Recorder` over users/ once a
//! second; each event gets one journal line and a row in the history database's events
//! (`[history] database`, whether usage sampling is on or off).
//!
//! The database is opened at the first event (a host without faults gets no file), and again
//! at the next event after a failure. A database that cannot be opened or written is logged
//! (once until it works again) and the events still reach the journal: losing the database
//! must never stop the daemon.
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

pub struct Faults {
    recorder: Recorder,
    database: PathBuf,
    history: Option<Writer>,
    /// The last history error logged, so a broken disk gives one line, not one per event.
    history_error: Option<String>,
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
        match history.import_ring(&dir) {
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
        match Writer::open(&self.database, bound) {
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
    }

    fn keep(&mut self, event: Event, counters: &Counters) {
        if self.history.is_none() {
            self.open_history();
        }
        let Some(history) = self.history.as_mut() else {
            counters
                .fault_events_unsaved
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Err(e) = history.add(&event) {
            counters
                .fault_events_unsaved
                .fetch_add(1, Ordering::Relaxed);
            self.history_failed(format!("event history: {e}"));
        }
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
