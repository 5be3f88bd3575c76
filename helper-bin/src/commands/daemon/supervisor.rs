//! The daemon's main thread: the config and tree it supervises, the first pass, and the loop
//! that reaps leaves as inotify reports them empty, makes a full pass every scan interval
//! and reloads on SIGHUP.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use cgroup_core::config::last_good::{self, Keep};
use cgroup_core::config::{Config, EventsConfig};
use cgroup_core::gc::{collect, GcOptions, Reaped};
use cgroup_core::stats::daemon::Counters;
use cgroup_core::tree::Tree;

use super::log;
use super::spares::{keep_spares, spare_queue};
use super::watch::Watcher;
use crate::apply_all::{describe, reload_all};

/// How long queued inotify events wait before the daemon reads them: the first event of a
/// burst of logins (each sends a few as it enters its leaf) wakes the daemon once, and it
/// reads them all one batch later rather than waking for each login while the logins still
/// run (their CPU is the burst's length on a busy host). Everything the events drive already
/// waits longer (the reaping's quiet moment, the spares' 200 ms, the young leaves' minimum
/// age); the kernel keeps the events meanwhile (its queue holds 16384 by default, and an
/// overflow makes the daemon rescan).
const INOTIFY_BATCH: Duration = Duration::from_millis(20);

pub struct Daemon {
    pub config_path: PathBuf,
    pub config: Config,
    pub tree: Arc<RwLock<Tree>>,
    pub counters: Arc<Counters>,
    pub min_age: Duration,
    /// `[events]`, shared with the fault thread and the me socket (follows reloads).
    pub events: Arc<RwLock<EventsConfig>>,
    /// The whole config, shared with the safety net (follows reloads).
    pub shared_config: Arc<RwLock<Arc<Config>>>,
    /// Whether the config and user files parse now (the config_broken metric).
    pub health: last_good::Watch,
}

impl Daemon {
    /// Loads the config, moves out of the tree's parent cgroup, creates the tree and enables
    /// its controllers, then tells systemd the tree is ready.
    pub fn start(config_path: PathBuf, min_age: Duration) -> Result<Daemon> {
        // A broken file: its last good copy, as logins use it (the error is logged by the
        // first pass's config check); with none ever kept, the file's error stops the daemon.
        let config = last_good::load(&config_path, Keep::as_root(Keep::Settled))
            .map_err(|none| none.error)?
            .config;
        let tree =
            Tree::locate_root(config.tree.root.as_deref()).context("locate the cgroup tree")?;
        if let Some(leaf) = tree
            .step_aside("supervisor")
            .context("move out of the tree's parent cgroup")?
        {
            log::info(&format!(
                "moved into {} so controllers can be enabled below",
                leaf.display()
            ));
        }
        tree.ensure_base()
            .with_context(|| format!("create the tree at {}", tree.root.display()))?;
        enable_controllers(&tree);
        // The tree is ready for logins (the unit's cgroup holds no process any more,
        // controllers are enabled): systemd may start what waits for the unit (Type=notify),
        // the lingering users' managers first among them. Without NOTIFY_SOCKET this does
        // nothing.
        if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
            log::warn(&format!("cannot tell systemd the daemon is ready: {e}"));
        }
        Ok(Daemon {
            health: last_good::Watch::new(&config_path),
            events: Arc::new(RwLock::new(config.events.clone())),
            shared_config: Arc::new(RwLock::new(Arc::new(config.clone()))),
            tree: Arc::new(RwLock::new(tree)),
            config_path,
            config,
            counters: Arc::new(Counters::default()),
            min_age,
        })
    }

    /// The main loop: leaves reaped as inotify reports them empty, a full pass every
    /// `interval`, SIGHUP reloads; returns on SIGTERM or SIGINT.
    pub fn serve(
        &mut self,
        watcher: &mut Watcher,
        signals: &SignalFd,
        interval: Duration,
    ) -> Result<()> {
        let mut next_scan = Instant::now() + interval;
        let mut spares = spare_queue();
        let open_at_start = watcher.take_sessions_seen();
        if self.config.tree.spare_leaves {
            spares.note(&open_at_start, Instant::now());
        }
        // When the events queued now are read (INOTIFY_BATCH after the first one was seen);
        // until then the inotify descriptor is not polled.
        let mut read_events_at: Option<Instant> = None;
        loop {
            let wake = [
                watcher.next_young_due(self.min_age),
                watcher.reap_due(),
                spares.due(),
                read_events_at,
            ]
            .into_iter()
            .flatten()
            .fold(next_scan, Instant::min);
            let wait = wake.saturating_duration_since(Instant::now());
            let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
            // The signals first: they are polled always, the events only when not batching.
            let mut fds = [
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(watcher.inotify.as_fd(), PollFlags::POLLIN),
            ];
            let polled = if read_events_at.is_some() { 1 } else { 2 };
            match poll(&mut fds[..polled], timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(anyhow::Error::from(e).context("poll")),
            }
            let signal_ready = fds[0].any().unwrap_or(false);
            if polled == 2 && fds[1].any().unwrap_or(false) {
                read_events_at = Some(Instant::now() + INOTIFY_BATCH);
            }
            let inotify_ready = read_events_at.is_some_and(|at| Instant::now() >= at);
            if inotify_ready {
                read_events_at = None;
            }
            if signal_ready {
                let mut stop = false;
                while let Ok(Some(info)) = signals.read_signal() {
                    match Signal::try_from(info.ssi_signo as i32) {
                        Ok(Signal::SIGHUP) => self.reload(watcher),
                        Ok(s) => {
                            log::info(&format!("{s}: stopping"));
                            stop = true;
                        }
                        Err(_) => {}
                    }
                }
                if stop {
                    return Ok(());
                }
            }
            if inotify_ready {
                let outcome = watcher.handle();
                if self.config.tree.spare_leaves {
                    spares.note(&outcome.sessions_seen, Instant::now());
                }
                if outcome.overflow {
                    log::warn("inotify queue overflowed: rescanning");
                    self.scan(watcher);
                }
            }
            let emptied = watcher.reap_changed(Instant::now());
            self.log_reaped(&emptied, "emptied");
            let due = spares.take_due(Instant::now());
            if !due.is_empty() && self.config.tree.spare_leaves {
                keep_spares(&self.config, &self.current_tree(), &due);
            }
            let young = watcher.recheck_young(self.min_age);
            self.log_reaped(&young, "found empty when looked at again after it was made");
            if Instant::now() >= next_scan {
                self.scan(watcher);
                next_scan = Instant::now() + interval;
            }
        }
    }

    pub fn current_tree(&self) -> Tree {
        match self.tree.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn log_reaped(&self, reaped: &[Reaped], why: &str) {
        for r in reaped {
            log::info(&format!("removed empty leaf {} ({why})", r.path.display()));
            if let Some(e) = &r.carry_error {
                log::warn(&format!("fault counts of {} lost: {e}", r.path.display()));
            }
        }
        self.counters
            .reaped
            .fetch_add(reaped.len() as u64, Ordering::Relaxed);
    }

    /// Applies the config to every live user cgroup and logs what changed.
    pub fn apply(&self) {
        let tree = self.current_tree();
        if let Err(e) = tree.ensure_base() {
            log::error(&format!("create the tree at {}: {e}", tree.root.display()));
            return;
        }
        match reload_all(&self.config, &tree) {
            Ok(outcomes) => {
                for o in outcomes {
                    match (&o.report, &o.error) {
                        (_, Some(e)) => log::error(&format!("{}: {e}", o.user)),
                        (Some(r), None) => {
                            for line in describe(r) {
                                if !line.ends_with(": unchanged") {
                                    log::info(&line);
                                }
                            }
                        }
                        (None, None) => {}
                    }
                }
            }
            Err(e) => log::error(&format!("list user cgroups: {e}")),
        }
        self.counters.reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// SIGHUP: the config in use, re-applied (a broken file's last good copy, as logins use
    /// it); a moved root gets fresh watches.
    fn reload(&mut self, watcher: &mut Watcher) {
        let loaded = match last_good::load(&self.config_path, Keep::as_root(Keep::Settled)) {
            Ok(loaded) => {
                if let Some(broken) = &loaded.broken {
                    // Applied all the same: the file's change is what failed.
                    log::error(&format!(
                        "reload: {}",
                        cgroup_core::config_fallback::broken_line(broken, "config")
                    ));
                    self.counters
                        .reload_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(loaded.config)
            }
            Err(none) => Err(format!("{} (no good config was ever kept)", none.error)),
        };
        let loaded = loaded.and_then(|c| {
            Tree::locate_root(c.tree.root.as_deref())
                .map(|t| (c, t))
                .map_err(|e| e.to_string())
        });
        let (config, tree) = match loaded {
            Ok(both) => both,
            Err(e) => {
                log::error(&format!("reload: {e}; keeping the running config"));
                self.counters
                    .reload_failures
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let moved = tree != self.current_tree();
        match self.tree.write() {
            Ok(mut t) => *t = tree.clone(),
            Err(p) => *p.into_inner() = tree.clone(),
        }
        self.config = config;
        match self.events.write() {
            Ok(mut e) => *e = self.config.events.clone(),
            Err(p) => *p.into_inner() = self.config.events.clone(),
        }
        match self.shared_config.write() {
            Ok(mut c) => *c = Arc::new(self.config.clone()),
            Err(p) => *p.into_inner() = Arc::new(self.config.clone()),
        }
        log::info(&format!("reloaded {}", self.config_path.display()));
        self.apply();
        if moved {
            match Watcher::new(tree) {
                Ok(w) => *watcher = w,
                Err(e) => log::error(&format!("inotify: {e}")),
            }
        }
        self.scan(watcher);
    }

    /// Looks at the config files again: each change of their health logged once, the
    /// metric updated, good files kept once settled.
    fn check_config(&mut self) {
        for change in self.health.refresh() {
            match change {
                last_good::HealthChange::Broken { file, error, kept } => log::error(&format!(
                    "{error}; {}",
                    match (kept, file == self.config_path) {
                        (true, _) => "logins, reload and the daemon use its last good copy",
                        (false, true) => "no good copy was ever kept: logins follow on_error",
                        (false, false) => {
                            "no good copy was ever kept: that user's logins follow on_error"
                        }
                    }
                )),
                last_good::HealthChange::Fixed { file } => {
                    log::info(&format!("{} parses again", file.display()))
                }
            }
        }
        let files = self
            .health
            .files()
            .into_iter()
            .map(|(f, broken)| (f.display().to_string(), broken))
            .collect();
        match self.counters.config_files.lock() {
            Ok(mut f) => *f = files,
            Err(p) => *p.into_inner() = files,
        }
    }

    /// A full pass: gc with the minimum age, and watches for anything new.
    pub fn scan(&mut self, watcher: &mut Watcher) {
        self.check_config();
        match collect(
            &self.current_tree(),
            GcOptions::new(self.min_age, false, self.config.tree.spare_leaves),
        ) {
            Ok(r) => self.log_reaped(&r, "found empty by a full pass"),
            Err(e) => log::warn(&format!("gc pass: {e}")),
        }
        watcher.watch_all();
    }
}

/// Controllers from the mount down to users/, now that this process sits in a leaf: under a
/// unit, `cgroupctl init` could not enable them at the unit's cgroup while it stood there.
fn enable_controllers(tree: &Tree) {
    let offered = match cgroup_core::tree::offered(&tree.mount.mount_point) {
        Ok(o) => o,
        Err(e) => {
            log::error(&format!("read the controllers the kernel offers: {e}"));
            return;
        }
    };
    match cgroup_core::tree::enable_down(&tree.chain_to(&tree.users_dir()), &offered) {
        Ok(report) => {
            for (c, dir, why) in report.failed {
                log::error(&format!(
                    "controller {c} not enabled at {}: {why}",
                    dir.display()
                ));
            }
        }
        Err(e) => log::error(&format!("enable controllers: {e}")),
    }
}
