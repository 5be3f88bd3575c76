//! The safety net: every process whose REAL uid becomes a confined customer's for good (no
//! root left in its effective or saved uid, see `strays`; a root daemon's setuid(): PHP-FPM
//! workers, suexec, runuser, a platform's service starter) is moved into
//! the customer's fence, `users/<user>/<service>/pid-<PID>`, a leaf made as `cgroupctl
//! classify` makes one. It runs in a thread of its own, woken by the kernel's process events
//! (proc_events.rs) and every 30 s (`Sources::sweep_every`) for a sweep (a walk of the cgroups outside the
//! fences, then a listing of /proc: cgroup-core's `strays`), which also runs at start and
//! after the kernel dropped events: a process no event named (switched while the daemon was
//! down, or gone before it was read) is found there, a hopper's short-lived generations too. Each stray found, by an
//! event or the sweep, has the cgroup it is in drained (drain.rs): the children it forked
//! before its move, and the orphans of one that forks and exits again and again, are there.
//!
//! A PID is pinned by a pidfd before anything about it is read and checked alive after, so a
//! recycled PID is never moved (classify's `move_pinned`). Each move is logged, counted and
//! recorded as a `fenced` event (sent to the fault thread, the history's one writer).
//!
//! `[policy] safety_net = false` stops it (the subscription is dropped) until a reload turns
//! it on again.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use cgroup_core::config::Config;
use cgroup_core::events::{Event, FaultKind, ProcessInfo};
use cgroup_core::nss::UserInfo;
use cgroup_core::strays::walk::{Listing, Told, SWEEP_LIMITS};
use cgroup_core::strays::{self, Confinement};
use cgroup_core::time;
use cgroup_core::tree::Tree;

mod drain;

use super::log;
use super::proc_events::{ProcEvents, Subscription};
use crate::process::pidfd::PidFd;
use cgroup_core::stats::daemon::Counters;

/// What the thread reads and reports to; the config follows reloads.
pub struct Sources {
    pub tree: Arc<RwLock<Tree>>,
    pub config: Arc<RwLock<Arc<Config>>>,
    /// The config file the module reads: who is confined is judged by the policy it follows.
    pub config_path: PathBuf,
    pub counters: Arc<Counters>,
    pub events: Sender<Event>,
    pub subscription: Subscription,
    /// Only these uids (empty: all); see the daemon's --safety-net-uid.
    pub only_uids: Vec<u32>,
    /// Between sweeps (30 s unless --safety-net-sweep says otherwise): a
    /// process missed by the events (a lost burst, a hopper) waits at most this.
    pub sweep_every: Duration,
}

/// A process of a confined uid outside its fence, pinned by its pidfd.
struct PinnedStray {
    process: PidFd,
    /// Stopped by the net (SIGSTOP) when it was found, to be continued after its move; one
    /// already stopped (job control, a tracer) is neither stopped nor continued.
    stopped_here: bool,
    user: UserInfo,
    /// Where it is, as /proc/PID/cgroup showed it.
    cgroup: String,
    comm: String,
    /// The service it is filed under (`strays::service_name`).
    service: String,
}

/// What `judge` tells of a process.
enum Seen {
    Stray(PinnedStray),
    /// Root's, an exempt user's, one inside its fence: left alone.
    Other,
    /// Exited before it could be told: it may have been a stray (and forked one).
    Gone,
    /// A process of a confined uid outside its fence in `cgroup` (as /proc/PID/cgroup showed
    /// it), exited before it could be moved: what it forked may be there, alive.
    StrayGone {
        cgroup: String,
    },
}

/// Whether `judge` stops a stray it finds: in a cgroup known to hold processes that fork
/// faster than they are moved, before anything more is read of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnFind {
    Look,
    Stop,
}

struct SafetyNet {
    sources: Sources,
    proc_root: PathBuf,
    config: Arc<Config>,
    tree: Tree,
    who: Confinement,
    policy: PolicyFile,
    /// Whether a sweep ran yet (the first one logs what it cost).
    swept: bool,
}

/// The `[policy]` the module follows for the config file now: the file's own when it parses,
/// else the module's fallback (the broken file's readable `[policy]`, the last valid one, the
/// defaults). Read again whenever the file changes: the daemon's own config changes only on a
/// reload, and a net judging by it would move the processes of a user the logins treat as
/// exempt (an admin added to `exempt_groups` without a reload, or a typo after which the
/// module falls back to a policy the daemon never loaded).
struct PolicyFile {
    path: PathBuf,
    /// When the file last changed, as last seen (`None`: never read).
    seen: Option<Option<(i64, i64)>>,
    current: cgroup_core::config::Policy,
}

impl PolicyFile {
    /// The policy, read again if the file changed; `true` with it when it was.
    fn refresh(&mut self) -> bool {
        let now = cgroup_core::config::last_good::config_changed_at(&self.path);
        if self.seen == Some(now) {
            return false;
        }
        self.seen = Some(now);
        self.current = match cgroup_core::config_fallback::load_config(&self.path) {
            Ok(loaded) => loaded.config.policy,
            Err(failure) => failure.fallback,
        };
        true
    }
}

impl SafetyNet {
    /// Takes the running config and tree; true when they changed.
    fn refresh(&mut self) -> bool {
        let config = match self.sources.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let reloaded = !Arc::ptr_eq(&config, &self.config);
        if reloaded {
            self.tree = match self.sources.tree.read() {
                Ok(t) => t.clone(),
                Err(p) => p.into_inner().clone(),
            };
            self.config = config;
        }
        if self.policy.refresh() || reloaded {
            self.who.set_policy(self.policy.current.clone());
            return true;
        }
        false
    }

    /// Drains every cgroup a stray is found in: first by a walk of the cgroups outside the
    /// fences, each process pinned and read as soon as its cgroup lists it (one that lives a
    /// millisecond, a hopper's generation, is caught; a listing of /proc reads it only once it
    /// is gone), then by the listing of /proc, for what the walk cannot see (cgroup-core's
    /// `strays::scan`).
    fn sweep(&mut self) {
        self.who.forget();
        let started = Instant::now();
        let tree = self.tree.clone();
        let mut seen_in: Vec<PathBuf> = Vec::new();
        let walked = strays::walk::outside_fences(&tree, SWEEP_LIMITS, |dir, listing| {
            let (stray_here, told) = self.look_at(listing);
            if stray_here {
                seen_in.push(dir.to_path_buf());
            }
            told
        });
        let (listed, problems) = strays::scan_listed(&self.proc_root, &self.tree, &mut self.who);
        for p in walked.problems.iter().chain(&problems) {
            log::warn(&format!("safety net sweep: {p}"));
        }
        for stray in listed {
            let dir = self.tree.path_of(&stray.cgroup);
            if !seen_in.contains(&dir) {
                seen_in.push(dir);
            }
        }
        // The drain judges each process again: by the policy of now, not of the walk's start
        // (an admin made exempt meanwhile by an edit of the file is left alone).
        self.refresh();
        for dir in &seen_in {
            self.drain(dir);
        }
        if !self.swept || !seen_in.is_empty() {
            log::info(&format!(
                "safety net sweep: {} cgroups walked, {} drained, in {:.1} ms",
                walked.cgroups,
                seen_in.len(),
                started.elapsed().as_secs_f64() * 1e3
            ));
        }
        self.swept = true;
    }

    /// The processes a cgroup just listed: is one a stray, or was one (gone already, what it
    /// forked may be there), and was one gone before it could be told (its child may be a
    /// stray)? The new ones first, each part pinned before any of it is read (`pinned`).
    fn look_at(&mut self, listing: &Listing) -> (bool, Told) {
        let mut told = Told::All;
        for (part, new) in [(&listing.new, true), (&listing.known, false)] {
            for process in pinned(part) {
                match process.map(|p| self.judge(p, OnFind::Look)) {
                    // The drain reads the cgroup again (and moves this one with the others).
                    Some(Seen::Stray(_) | Seen::StrayGone { .. }) => return (true, Told::All),
                    Some(Seen::Other) => {}
                    // One told at the read before (not a stray then) forked nothing it missed.
                    Some(Seen::Gone) | None if new => told = Told::SomeGone,
                    Some(Seen::Gone) | None => {}
                }
            }
        }
        (false, told)
    }

    /// A process whose uid changed: if it is a stray, its cgroup is drained (the process, and
    /// whatever it forked there before the move, its own children or orphans). So is the
    /// cgroup of one found a stray that exited before it could be moved: a hopper's first
    /// generation (`|~/bin/hop` in ~/.forward: the MTA's child switches and execs it) is gone
    /// within a millisecond, its child is there.
    ///
    /// A process gone before it is read tells nothing: not where it was, nor what it forked.
    /// Its cgroup is drained at the next sighting of a stray there: the uid change of another
    /// process, or the sweep.
    ///
    /// `drained`: the cgroups drained for the events of one read of the socket. Each is
    /// drained once: every change of that read happened before its drain began (a customer's
    /// burst of switches, a mail to many local users, costs one drain, not one each).
    fn fence(&mut self, pid: u32, drained: &mut Vec<PathBuf>) {
        let Ok(process) = PidFd::open(pid) else {
            return;
        };
        let cgroup = match self.judge(process, OnFind::Look) {
            Seen::Stray(stray) => stray.cgroup,
            Seen::StrayGone { cgroup } => cgroup,
            Seen::Other | Seen::Gone => return,
        };
        // The cgroup's name in its exact bytes (`cgroup` is read as text, lossily: a name a
        // customer chose in a subtree delegated to it may be any bytes).
        let exact = cgroup_core::tree::fs::cgroup_v2_of(pid).ok().flatten();
        let dir = match exact {
            Some(exact) => self.tree.path_of(exact),
            None => self.tree.path_of(&cgroup),
        };
        if !drained.contains(&dir) {
            self.drain(&dir);
            drained.push(dir);
        }
    }

    /// What a pinned process is: a stray, another process, or gone before it could be told.
    /// With `OnFind::Stop`, a stray is stopped as soon as it is known to be one: its uid,
    /// cgroup and state read, nothing else (its parent and names are read after).
    fn judge(&mut self, process: PidFd, on_find: OnFind) -> Seen {
        let pid = process.pid;
        let Some((ruid, cgroup)) = strays::ruid_and_cgroup(&self.proc_root, pid) else {
            return Seen::Gone;
        };
        if self.who.never_confined(ruid) {
            return Seen::Other;
        }
        let user = match self.who.confined(ruid) {
            Ok(Some(user)) => user,
            Ok(None) => return Seen::Other,
            Err(e) => {
                log::warn(&format!("safety net: process {pid}: {e}"));
                return Seen::Other;
            }
        };
        if strays::inside_fence(&self.tree, &cgroup, &user.name) {
            return Seen::Other;
        }
        // A zombie is alive to its pidfd, yet can no longer be moved; one whose main thread
        // alone exited runs on where its threads are (a move of its PID takes them), and is
        // listed where the main thread exited: `cgroup` stays that one, drained to find it.
        let stat = match strays::running(&self.proc_root, pid) {
            None => return Seen::StrayGone { cgroup },
            Some(running) => {
                if running
                    .thread_cgroup
                    .is_some_and(|c| strays::inside_fence(&self.tree, &c, &user.name))
                {
                    return Seen::Other;
                }
                running.stat
            }
        };
        let stopped_here =
            on_find == OnFind::Stop && !stat.stopped() && process.signal(libc::SIGSTOP).is_ok();
        // Alive now (the signal or this check went to the pinned process itself): what was
        // read above was about it, not about a process its PID was given to after.
        if !stopped_here && !process.alive() {
            return Seen::StrayGone { cgroup };
        }
        let parent_comm = strays::parent_and_comm(&self.proc_root, stat.ppid).map(|(_, c)| c);
        let service = strays::service_name(&cgroup, parent_comm.as_deref(), Some(&stat.comm));
        Seen::Stray(PinnedStray {
            process,
            stopped_here,
            user,
            cgroup,
            comm: stat.comm,
            service,
        })
    }

    fn record(&self, pid: u32, user: &UserInfo, from: &str, leaf: &Path, comm: String) {
        let counters = &self.sources.counters;
        counters.fenced.fetch_add(1, Ordering::Relaxed);
        let user_dir = self.tree.user_dir(&user.name).unwrap_or_default();
        let rel_leaf = leaf
            .strip_prefix(user_dir)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| leaf.display().to_string());
        log::info(&format!(
            "safety net: moved process {pid} ({comm:?}) of {} from {from:?} into {}",
            user.name,
            leaf.display()
        ));
        let event = Event {
            time_ms: time::now_ms(),
            user: user.name.clone(),
            kind: FaultKind::Fenced,
            delta: 1,
            limit: None,
            usage: None,
            processes: vec![ProcessInfo {
                pid,
                cmdline: comm.clone(),
                comm,
                uid: Some(user.uid),
                rss_bytes: 0,
                cpu_usec: 0,
                cpu_percent: None,
                cgroup: rel_leaf,
            }],
            killed: Vec::new(),
            from: Some(from.to_string()),
        };
        if self.sources.events.send(event).is_err() {
            counters
                .fault_events_unsaved
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `pids`, each pinned by a pidfd before any is read (`None`: gone already). A hopper's
/// generation lives ~0.2 ms: reading a long listing one process at a time reached it only
/// once it was gone, while a pidfd_open is a few µs.
fn pinned(pids: &[u32]) -> Vec<Option<PidFd>> {
    pids.iter().map(|pid| PidFd::open(*pid).ok()).collect()
}

/// Runs until `stop` becomes readable (the daemon's worker thread).
pub fn run(sources: Sources, stop: OwnedFd) {
    let config = match sources.config.read() {
        Ok(c) => c.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let tree = match sources.tree.read() {
        Ok(t) => t.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let mut policy = PolicyFile {
        path: sources.config_path.clone(),
        seen: None,
        current: config.policy.clone(),
    };
    policy.refresh();
    let mut net = SafetyNet {
        who: Confinement::new(policy.current.clone()).only(&sources.only_uids),
        policy,
        swept: false,
        proc_root: PathBuf::from("/proc"),
        config,
        tree,
        sources,
    };
    let mut events: Option<ProcEvents> = None;
    let mut next_sweep = Instant::now();
    loop {
        net.refresh();
        let on = net.policy.current.safety_net;
        if on && events.is_none() {
            match ProcEvents::subscribe(net.sources.subscription) {
                Ok(e) => {
                    log::info("safety net: listening to the kernel's process events");
                    events = Some(e);
                    next_sweep = Instant::now();
                }
                Err(e) => {
                    // Sweeps still run: a process is fenced within a sweep's time, not at once.
                    log::error(&format!(
                        "safety net: process events connector: {e}; falling back to sweeps every {}s",
                        net.sources.sweep_every.as_secs()
                    ));
                }
            }
        } else if !on && events.is_some() {
            log::warn("safety net: off ([policy] safety_net = false)");
            events = None;
        }
        if on && Instant::now() >= next_sweep {
            net.sweep();
            next_sweep = Instant::now() + net.sources.sweep_every;
        }
        let wait = if on {
            next_sweep.saturating_duration_since(Instant::now())
        } else {
            // Off: only reloads matter, looked at every few seconds.
            Duration::from_secs(5)
        };
        let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
        let stop_ready;
        let events_ready;
        {
            let mut fds = vec![PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
            if let Some(e) = &events {
                fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    log::error(&format!("safety net: poll: {e}"));
                    return;
                }
            }
            stop_ready = fds[0].any().unwrap_or(true);
            events_ready = fds.get(1).and_then(|f| f.any()).unwrap_or(false);
        }
        if stop_ready {
            return;
        }
        if !events_ready {
            continue;
        }
        let Some(source) = events.as_mut() else {
            continue;
        };
        match source.read() {
            Ok(batch) => {
                if net.refresh() {
                    log::info("safety net: config reloaded");
                }
                let mut drained = Vec::new();
                for change in batch.changes {
                    if !net.who.never_confined(change.ruid) {
                        net.fence(change.tgid, &mut drained);
                    }
                }
                if batch.lost {
                    net.sources
                        .counters
                        .proc_events_lost
                        .fetch_add(1, Ordering::Relaxed);
                    log::warn("safety net: the kernel dropped process events: sweeping");
                    next_sweep = Instant::now();
                }
            }
            Err(e) => {
                log::error(&format!(
                    "safety net: read process events: {e}; subscribing again"
                ));
                events = None;
            }
        }
    }
}
