//! The daemon's fault events: a pass of cgroup-core's `Recorder` over users/ once a
//! second; each event gets one journal line and a record in the history ring.
//!
//! The history is opened at the first event (a host without faults gets no files), and again
//! at the next event after a failure. A history that cannot be opened or written is logged
//! (once until it works again) and the events still reach the journal: losing the history must
//! never stop the daemon.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cgroup_core::tree::Tree;

use cgroup_core::config::EventsConfig;
use cgroup_core::events::history::Writer;
use cgroup_core::events::recorder::Recorder;
use cgroup_core::events::Event;

use super::log;
use super::worker::sleep_until;
use cgroup_core::stats::daemon::Counters;

pub struct Faults {
    recorder: Recorder,
    history: Option<Writer>,
    /// The last history error logged, so a broken disk gives one line, not one per event.
    history_error: Option<String>,
}

impl Faults {
    pub fn new(cfg: &EventsConfig, tree: &Tree) -> Faults {
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
            history: None,
            history_error: None,
        }
    }

    fn open_history(&mut self) {
        let cfg = self.recorder.config();
        match Writer::open(&cfg.history_dir, cfg.history_size) {
            Ok(w) => {
                log::info(&format!(
                    "recording fault events in {}",
                    cfg.history_dir.display()
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

    /// SIGHUP: new thresholds; a moved or resized history is reopened.
    pub fn reload(&mut self, cfg: &EventsConfig) {
        let reopen = cfg.history_dir != self.recorder.config().history_dir
            || cfg.history_size != self.recorder.config().history_size;
        self.recorder.set_config(cfg.clone());
        if reopen {
            // Reopened (at the next event) with the new place and bound.
            self.history = None;
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
        if let Err(e) = history.append(&event) {
            counters
                .fault_events_unsaved
                .fetch_add(1, Ordering::Relaxed);
            self.history_failed(format!("event history: {e}"));
        }
    }
}

/// Samples once a second until `stop` becomes readable; picks up `[events]` changes (SIGHUP).
/// The daemon's worker thread.
pub fn run(
    tree: Arc<RwLock<Tree>>,
    events: Arc<RwLock<EventsConfig>>,
    counters: Arc<Counters>,
    sent: Receiver<Event>,
    stop: OwnedFd,
) {
    let read_events = move || match events.read() {
        Ok(e) => e.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let current_tree = move || match tree.read() {
        Ok(t) => t.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let mut cfg = read_events();
    let mut faults = Faults::new(&cfg, &current_tree());
    let every = Duration::from_secs(1);
    let mut next = Instant::now();
    while sleep_until("fault events", &stop, next) {
        let now_cfg = read_events();
        if now_cfg != cfg {
            faults.reload(&now_cfg);
            cfg = now_cfg;
        }
        faults.pass(&current_tree().users_dir(), &counters, &sent);
        next = Instant::now() + every;
    }
}
