//! Draining a cgroup of strays: once a process of a confined uid is seen outside its fence in
//! a cgroup S (a root daemon's service, a login scope), every process of a confined uid in S
//! is moved, read from S's cgroup.procs again and again until a pass finds none.
//!
//! Moving the one process that was seen is not enough. A customer's process that forks and
//! lets its parent exit, again and again (`|~/bin/hop` in ~/.forward), has a child in S by
//! the time its move is done, an orphan no list of children names; a process gone before it
//! was pinned tells nothing at all. Every generation keeps S across fork, so S is where all
//! of them are found.
//!
//! A pass is clean when it finds no stray and every process it listed could be told (one
//! gone before it was read may have been a stray that forked: its child is in S). The first
//! pass moves what it finds (one CGI process: nothing more is done than one more read of S).
//! What a later pass finds forks faster than it is moved, so from then on each
//! process found is stopped (SIGSTOP through its pidfd, as soon as its uid, cgroup and state
//! are read) and S read again until every stray in it is stopped; then they are moved
//! together and continued (SIGCONT through the same pidfds), and S is read again: the move
//! waits for the forks under way (the kernel's threadgroup lock), whose children are then in
//! S to be found. Each pass tells first the processes the pass before did not list
//! (`strays::walk::Listing`): a hopper's next generation is among them, wherever the
//! kernel lists it. SIGSTOP is acceptable: only
//! processes that are outside their fence and must move anyway are touched, for the few
//! milliseconds of the move; a parent waiting with WUNTRACED or WCONTINUED may see them stop
//! and go on. One stopped before the drain (job control, a tracer) is left stopped. Its owner
//! can continue what the drain stopped (`kill -CONT -1` in a loop): once a held process is
//! seen running again, the drain moves what it holds and from then on each stray as soon as
//! it is found, the way the first pass does (a fork waits for a move under way).
//!
//! A drain is bounded (`MAX_PASSES`, `TIME_LIMIT`): past either it gives up, still moves and
//! continues what it stopped, and logs and counts the give-up; the next sighting drains again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cgroup_core::cgroup_files::PROCS;
use cgroup_core::service::{new_service_leaf, release_leaf};
use cgroup_core::strays;
use cgroup_core::strays::walk::Listing;
use cgroup_core::tree::dirfd::CgroupDir;
use cgroup_core::tree::processes::own_processes;

use super::{log, pinned, OnFind, PinnedStray, SafetyNet, Seen};
use crate::process::pidfd::{move_pinned, PidFd};

/// Reads of S in one drain. A hopper (a generation every ~0.2 ms) took 4 to 7 on a 2-CPU
/// host, up to 28 when S was the root cgroup with a test harness's processes coming and going.
const MAX_PASSES: u32 = 64;
/// How long one drain may hold the net's thread (events wait in the socket meanwhile).
const TIME_LIMIT: Duration = Duration::from_millis(500);

/// The leaf each user's strays go to in one drain, by uid: made once (a full apply of the
/// user's cgroup costs ~0.6 ms, as long as a hopper's generation may live) and filed under
/// the service of the first stray found. The later ones are mostly orphans, whose parent
/// (init) tells nothing of where they came from.
type Leaves = HashMap<u32, PathBuf>;

impl SafetyNet {
    /// Moves every process of a confined uid out of the cgroup directory `dir` into its
    /// fence; see the module's comment. A directory, not the cgroup as /proc/PID/cgroup shows
    /// it: the sweep's walk knows the name's exact bytes.
    pub(super) fn drain(&mut self, dir: &Path) {
        let source = dir
            .strip_prefix(&self.tree.mount.mount_point)
            .unwrap_or(dir);
        let started = Instant::now();
        let mut leaves = Leaves::new();
        // Strays found stopped, to be moved together.
        let mut held: Vec<PinnedStray> = Vec::new();
        let mut previous: Vec<u32> = Vec::new();
        let mut passes = 0;
        let mut gave_up = false;
        // Moving each stray as found instead of holding them (see below).
        let mut chasing = false;
        loop {
            if passes == MAX_PASSES || started.elapsed() > TIME_LIMIT {
                gave_up = true;
                break;
            }
            passes += 1;
            let listed = match processes_in(dir) {
                Ok(pids) => pids,
                // Removed: nothing is left in it.
                Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::ENODEV)) => break,
                Err(e) => {
                    log::error(&format!("safety net: drain of {source:?}: {e}"));
                    gave_up = true;
                    break;
                }
            };
            let mut listing = Listing::new_first(&listed, &previous);
            previous = listed;
            for part in [&mut listing.new, &mut listing.known] {
                part.retain(|pid| !held.iter().any(|h| h.process.pid == *pid));
            }
            // A process the drain stopped that runs again was continued by another (its
            // owner's `kill -CONT -1`, from inside its fence): holding does not work on these,
            // so from now on each stray is moved as soon as it is found (a fork waits for a
            // move under way: the kernel's threadgroup lock) and what is held goes now.
            if !chasing
                && held
                    .iter()
                    .any(|h| h.stopped_here && !strays::stopped(&self.proc_root, h.process.pid))
            {
                chasing = true;
                log::warn(&format!(
                    "safety net: a process stopped for its move out of {source:?} was continued \
                     by another: each one found there is moved at once"
                ));
                self.move_and_release(&mut held, &mut leaves);
            }
            // After the first pass, what is found forks faster than it is moved: stopped
            // when found, and S read again until every stray in it is.
            let on_find = if passes > 1 && !chasing {
                OnFind::Stop
            } else {
                OnFind::Look
            };
            let mut stopped_some = false;
            let mut moved_some = false;
            // Gone before they were told, among the new ones: one told in the pass before
            // (not a stray then) that is gone now forked nothing that pass did not see.
            let mut vanished = 0;
            for (part, new) in [(&listing.new, true), (&listing.known, false)] {
                for process in pinned(part) {
                    match process.map(|p| self.judge(p, on_find)) {
                        Some(Seen::Stray(stray)) if on_find == OnFind::Stop => {
                            held.push(stray);
                            stopped_some = true;
                        }
                        // Moved as soon as found: the next of a hopper's generations is
                        // forked where this one is moved to.
                        Some(Seen::Stray(stray)) => {
                            self.move_stray(stray, &mut leaves);
                            moved_some = true;
                        }
                        Some(Seen::Other) => {}
                        Some(Seen::Gone | Seen::StrayGone { .. }) | None if new => vanished += 1,
                        Some(Seen::Gone | Seen::StrayGone { .. }) | None => {}
                    }
                }
            }
            if stopped_some {
                continue;
            }
            let moving = moved_some || !held.is_empty();
            self.move_and_release(&mut held, &mut leaves);
            // Clean only when nothing was to move and every new process listed could be told:
            // one gone before it was read may have been a stray that forked (its child is in S).
            if !moving && vanished == 0 {
                break;
            }
        }
        self.move_and_release(&mut held, &mut leaves);
        if passes > 2 {
            log::info(&format!(
                "safety net: drained {source:?} in {passes} passes, {:.1} ms",
                started.elapsed().as_secs_f64() * 1e3
            ));
        }
        if gave_up {
            self.sources
                .counters
                .drains_given_up
                .fetch_add(1, Ordering::Relaxed);
            log::error(&format!(
                "safety net: gave up draining {source:?} after {passes} passes in {:.1} ms: \
                 processes of confined users may still be there (drained again at the next \
                 sighting)",
                started.elapsed().as_secs_f64() * 1e3
            ));
        }
    }

    /// Moves every held stray, then lets the ones the drain stopped go on.
    fn move_and_release(&mut self, held: &mut Vec<PinnedStray>, leaves: &mut Leaves) {
        for stray in held.drain(..) {
            let stopped_here = stray.stopped_here;
            if let Some(process) = self.move_stray(stray, leaves) {
                if stopped_here {
                    // ESRCH: it exited meanwhile (a SIGKILL); nothing to continue.
                    let _ = process.signal(libc::SIGCONT);
                }
            }
        }
    }

    /// Moves one stray into its user's leaf of this drain; gives its pidfd back (to continue
    /// it) unless it is gone.
    fn move_stray(&mut self, stray: PinnedStray, leaves: &mut Leaves) -> Option<PidFd> {
        let pid = stray.process.pid;
        let uid = stray.user.uid;
        let mut outcome = self.move_into_leaf(&stray, leaves);
        // The leaf of this drain may have been reaped meanwhile (its processes all exited):
        // once more, in a new one.
        if outcome.is_err() && stray.process.alive() && leaves.remove(&uid).is_some() {
            outcome = self.move_into_leaf(&stray, leaves);
        }
        match outcome {
            Ok(leaf) => {
                self.record(pid, &stray.user, &stray.cgroup, &leaf, stray.comm.clone());
            }
            // Gone during the move: nothing to fence, and whatever its PID reached meanwhile
            // was moved back by move_pinned.
            Err(_) if !stray.process.alive() => return None,
            Err(e) => {
                self.sources
                    .counters
                    .fence_failures
                    .fetch_add(1, Ordering::Relaxed);
                log::error(&format!(
                    "safety net: could not move process {pid} of {} out of {}: {e:#}",
                    stray.user.name, stray.cgroup
                ));
            }
        }
        Some(stray.process)
    }

    fn move_into_leaf(&self, stray: &PinnedStray, leaves: &mut Leaves) -> anyhow::Result<PathBuf> {
        let uid = stray.user.uid;
        if let Some(leaf) = leaves.get(&uid) {
            move_pinned(&self.tree, &stray.process, leaf)?;
            return Ok(leaf.clone());
        }
        // Handed to the customer only once the stray is in (see NewServiceLeaf): a leaf it
        // got first could be made to refuse the move.
        let new = new_service_leaf(
            &self.tree,
            &self.config,
            &stray.user,
            &stray.service,
            "pid",
            stray.process.pid,
        )?;
        if let Err(e) = move_pinned(&self.tree, &stray.process, new.path()) {
            let _ = release_leaf(&self.tree, new.path());
            return Err(e);
        }
        let path = new.path().to_path_buf();
        let leaf = match new.hand_over() {
            Ok(leaf) => leaf,
            // In its fence all the same, in a leaf the customer cannot build in.
            Err(e) => {
                log::warn(&format!(
                    "safety net: {} could not be handed to {}: {e}",
                    path.display(),
                    stray.user.name
                ));
                path
            }
        };
        leaves.insert(uid, leaf.clone());
        Ok(leaf)
    }
}

/// The processes in the cgroup `dir` itself. The root cgroup has no cgroup.type for
/// `own_processes` to read, and a threaded cgroup refuses cgroup.procs (EOPNOTSUPP): that one
/// is read as `own_processes` reads it, through cgroup.threads.
fn processes_in(dir: &Path) -> cgroup_core::error::Result<Vec<u32>> {
    let dir = CgroupDir::open(dir)?;
    match dir.read(PROCS) {
        Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => own_processes(&dir),
        Err(e) => Err(e),
    }
}
