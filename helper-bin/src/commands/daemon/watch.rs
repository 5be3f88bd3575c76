//! Watching the tree with inotify, only where root writes: the directories root makes children
//! in (the tree root, `users/`, each `users/<user>`, each service dir, `unconfined/`) get a
//! watch for new child directories (IN_CREATE), and each leaf root made a watch on its
//! `cgroup.events` (IN_MODIFY: the kernel signals each change of `populated` that way, and a
//! leaf's `populated` covers its whole subtree). Nothing inside a customer's leaf is watched:
//! the watches grow with sessions, not with the cgroups customers make. When a leaf's
//! `populated` drops to 0 it is trimmed (gc::reap_emptied) once the tree has been quiet for
//! REAP_QUIET, at most REAP_MAX_WAIT after the first change, so leaves do not pile up under
//! cron storms between periodic scans; the wait keeps the daemon's reads out of a burst of
//! logins (each login's leaf sends events as it enters it), and each leaf is read once per
//! batch. A session shorter than the daemon's reaction
//! (a cron job under load) may empty its leaf before the watch exists, and then no IN_MODIFY
//! ever comes: each leaf seen by IN_CREATE is looked at once more, the minimum age after it
//! was seen (`recheck_young`), and removed if empty, as a full pass would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use cgroup_core::cgroup_files;
use cgroup_core::gc::{position, reap_emptied, Position, Reaped};
use cgroup_core::inventory::child_cgroups;
use cgroup_core::tree::dirfd::CgroupDir;
use cgroup_core::tree::{user_cgroup, Tree, SESSION_PREFIX};

use super::log;
use super::quiet_queue::QuietQueue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The directory itself: new children.
    Dir,
    /// Its cgroup.events: populated changes.
    Events,
}

pub struct Watcher {
    pub inotify: Inotify,
    tree: Tree,
    watches: HashMap<WatchDescriptor, (PathBuf, Kind)>,
    /// Leaves whose watch came from an IN_CREATE, and when: looked at once more later.
    young: Vec<(PathBuf, Instant)>,
    /// Set while events are handled: the leaves watched then are new ones.
    handling: bool,
    /// Session leaves made or changed while events are handled (`Outcome::sessions_seen`).
    sessions_seen: Vec<PathBuf>,
    /// Leaves whose cgroup.events changed, once each, waiting to be looked at (`reap_changed`).
    changed: QuietQueue,
}

/// How long the tree must be quiet before changed leaves are looked at: a burst of logins
/// (each sends events as it enters its leaf) is over by then.
const REAP_QUIET: Duration = Duration::from_millis(20);
/// The longest a changed leaf waits under a steady stream of events (a cron storm).
const REAP_MAX_WAIT: Duration = Duration::from_millis(250);

/// What handling a batch of events found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Session leaves that were made or changed (a login came or went): their users are the
    /// ones that may need a spare leaf again (cgroup_core::tree::spare).
    pub sessions_seen: Vec<PathBuf>,
    /// Events were lost (queue overflow): the caller should rescan.
    pub overflow: bool,
}

impl Watcher {
    pub fn new(tree: Tree) -> nix::Result<Watcher> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        let mut w = Watcher {
            inotify,
            tree,
            watches: HashMap::new(),
            young: Vec::new(),
            handling: false,
            sessions_seen: Vec::new(),
            changed: QuietQueue::new(REAP_QUIET, REAP_MAX_WAIT),
        };
        w.watch_all();
        // A daemon that starts (a boot, a restart, an upgrade) meets the sessions already
        // open as if each had just come: their users get a spare leaf (`Outcome::sessions_seen`,
        // `take_sessions_seen`) without waiting for their next login or logout.
        let found: Vec<PathBuf> = w
            .watches
            .values()
            .filter(|(_, kind)| *kind == Kind::Events)
            .map(|(path, _)| path.clone())
            .collect();
        for leaf in found {
            w.note_session(&leaf);
        }
        Ok(w)
    }

    /// The session leaves noted and not yet handed over by `handle` (at the start: those the
    /// first walk found).
    pub fn take_sessions_seen(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.sessions_seen)
    }

    /// Adds watches for the whole tree (idempotent: inotify returns the same descriptor for a
    /// path already watched).
    pub fn watch_all(&mut self) {
        let root = self.tree.root.clone();
        self.watch_subtree(&root);
    }

    fn add(&mut self, path: &Path, kind: Kind) {
        let (target, flags) = match kind {
            Kind::Dir => (
                path.to_path_buf(),
                AddWatchFlags::IN_CREATE | AddWatchFlags::IN_ONLYDIR,
            ),
            Kind::Events => (path.join(cgroup_files::EVENTS), AddWatchFlags::IN_MODIFY),
        };
        match self.inotify.add_watch(&target, flags) {
            Ok(wd) => {
                if kind == Kind::Events && self.handling {
                    self.young.push((path.to_path_buf(), Instant::now()));
                    // A new leaf, seen by its own IN_CREATE or found below a new user cgroup
                    // (a user's first login makes both at once).
                    self.note_session(path);
                }
                self.watches.insert(wd, (path.to_path_buf(), kind));
            }
            // Removed meanwhile: nothing to watch.
            Err(Errno::ENOENT) => {}
            Err(e) => log::warn(&format!("inotify watch {}: {e}", target.display())),
        }
    }

    /// Watches `dir` and what below it root writes.
    fn watch_subtree(&mut self, dir: &Path) {
        if !dir.starts_with(&self.tree.root) {
            return;
        }
        let users = self.tree.users_dir();
        let is_base = dir == self.tree.root
            || dir == users
            || dir == self.tree.unconfined_dir()
            || dir.parent() == Some(users.as_path());
        let descend = if is_base {
            self.add(dir, Kind::Dir);
            true
        } else {
            match position(&self.tree, dir) {
                Some(Position::Leaf { .. }) => {
                    self.add(dir, Kind::Events);
                    false
                }
                Some(Position::ServiceDir { .. }) => {
                    self.add(dir, Kind::Dir);
                    true
                }
                None => false,
            }
        };
        if !descend {
            return;
        }
        let children = match child_cgroups(dir) {
            Ok(c) => c,
            Err(e) => {
                log::warn(&format!("list {}: {e}", dir.display()));
                return;
            }
        };
        for child in children {
            // Below the tree root only users/ and unconfined/ are ours (the daemon's own
            // supervisor/ leaf is not a session).
            if dir == self.tree.root && child != users && child != self.tree.unconfined_dir() {
                continue;
            }
            self.watch_subtree(&child);
        }
    }

    /// When the next young leaf is due to be looked at again (`min_age` after it was seen).
    pub fn next_young_due(&self, min_age: Duration) -> Option<Instant> {
        self.young.iter().map(|(_, seen)| *seen + min_age).min()
    }

    /// The young leaves seen at least `min_age` ago: removed if nothing runs in them (a login
    /// between making its leaf and entering it is given `min_age`, as by a full pass).
    pub fn recheck_young(&mut self, min_age: Duration) -> Vec<Reaped> {
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.young)
            .into_iter()
            .partition(|(_, seen)| now.saturating_duration_since(*seen) >= min_age);
        self.young = waiting;
        let mut reaped = Vec::new();
        for (leaf, _) in due {
            match reap_emptied(&self.tree, &leaf) {
                Ok(r) => reaped.extend(r),
                Err(e) => log::warn(&format!("remove {}: {e}", leaf.display())),
            }
        }
        reaped
    }

    /// When the changed leaves are due to be looked at: REAP_QUIET after the last event, at
    /// most REAP_MAX_WAIT after the first.
    pub fn reap_due(&self) -> Option<Instant> {
        self.changed.due()
    }

    /// Once due, the changed leaves that emptied, removed (gc::reap_emptied).
    pub fn reap_changed(&mut self, now: Instant) -> Vec<Reaped> {
        let mut reaped = Vec::new();
        for path in self.changed.take_due(now) {
            // A leaf a login entered (or a claimed spare) changed too and needs nothing: its
            // `populated` first, one open and one read, before reap_emptied's look at where
            // it sits in the tree. A leaf that empties after this read sends another event.
            if still_populated(&path) {
                continue;
            }
            match reap_emptied(&self.tree, &path) {
                Ok(r) => reaped.extend(r),
                Err(e) => log::warn(&format!("remove {}: {e}", path.display())),
            }
        }
        reaped
    }

    /// Notes `dir` when it is a session leaf of a user cgroup (`users/<user>/session-*`).
    fn note_session(&mut self, dir: &Path) {
        let is_session = dir.parent().and_then(Path::parent)
            == Some(self.tree.users_dir().as_path())
            && dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(SESSION_PREFIX));
        if is_session && !self.sessions_seen.iter().any(|d| d == dir) {
            self.sessions_seen.push(dir.to_path_buf());
        }
    }

    /// Reads and handles every pending event.
    pub fn handle(&mut self) -> Outcome {
        let mut out = Outcome::default();
        loop {
            let events = match self.inotify.read_events() {
                Ok(e) => e,
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    log::error(&format!("read inotify events: {e}"));
                    break;
                }
            };
            if events.is_empty() {
                break;
            }
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    out.overflow = true;
                    continue;
                }
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    self.watches.remove(&ev.wd);
                    continue;
                }
                let Some((path, kind)) = self.watches.get(&ev.wd).cloned() else {
                    continue;
                };
                match kind {
                    Kind::Dir if ev.mask.contains(AddWatchFlags::IN_ISDIR) => {
                        if let Some(name) = &ev.name {
                            self.handling = true;
                            self.watch_subtree(&path.join(name));
                            self.handling = false;
                        }
                    }
                    Kind::Dir => {}
                    Kind::Events => {
                        self.note_session(&path);
                        self.changed
                            .note(std::slice::from_ref(&path), Instant::now());
                    }
                }
            }
        }
        out.sessions_seen = std::mem::take(&mut self.sessions_seen);
        out
    }
}

/// Whether the leaf at `path` still holds a process (in it or below it). Any error (the leaf
/// gone, unreadable) says no: reap_emptied then looks and tells.
fn still_populated(path: &Path) -> bool {
    CgroupDir::open(path)
        .and_then(|dir| user_cgroup::populated(&dir))
        .unwrap_or(false)
}
