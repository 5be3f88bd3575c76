//! Fault counts that must outlive the leaf they were counted in.
//!
//! Where the kernel counts an event only in the cgroup it happened in (`pids.events` before
//! 6.12, `memory.events` under `memory_localevents`; see `semantics`), removing an emptied
//! session leaf would take its count with it. So right before root removes a leaf,
//! `before_removal` adds the leaf's own counts to a per-user record, a `trusted.` extended
//! attribute of the user cgroup; `user_faults` then reports the record plus what the live
//! cgroups of the subtree still hold.
//!
//! Neither side can be forged by the customer: `trusted.*` attributes need CAP_SYS_ADMIN (in
//! the initial user namespace) to read or write, whoever owns the directory. A leaf whose
//! removal then fails (the customer made a sub-cgroup in it meanwhile) keeps a mark, the same
//! attribute on the leaf, of what was already carried from it: it is subtracted when the leaf
//! is read and when it is carried again, so nothing is counted twice. Carrying is serialized
//! with flock(2) on a root-only lock file per user (`lock_carrying`; the module at close and
//! the daemon can race), never on anything a customer can open, with a bounded wait.
//!
//! What the customer can still do (the kernel's limits, documented in cgroupctl-stats(8)):
//! on kernels with local pids counting, events counted in a sub-cgroup the customer made and
//! then removed itself are lost (root removes a customer's cgroups only from a dead leaf, in
//! `user_cgroup::trim`, carrying each first; nothing of ours runs before the customer's own
//! rmdir), and the daemon takes the drop for no fault (`events::detect`); and a customer can set pids.max on its own sub-cgroups and hit it,
//! which counts real refused forks.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::semantics::EventSemantics;
use super::{parse_flat_keyed, read_optional, MemoryEvents};
use crate::error::{Error, IoContext, Result};

/// The per-user record on the user cgroup, and the per-leaf mark.
pub const CARRIED_XATTR: &str = "trusted.pam_cgroup.carried";

/// Counts of the local-semantics counters (the hierarchical ones stay 0: never carried).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// pids.events max.
    pub pids_max: u64,
    pub memory: MemoryEvents,
}

impl Counts {
    fn fields(&self) -> [(&'static str, u64); 5] {
        [
            ("pids_max", self.pids_max),
            ("memory_high", self.memory.high),
            ("memory_max", self.memory.max),
            ("memory_oom", self.memory.oom),
            ("memory_oom_kill", self.memory.oom_kill),
        ]
    }

    fn render(&self) -> String {
        let parts: Vec<String> = self
            .fields()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.join(" ")
    }

    fn parse(text: &str) -> Counts {
        let mut c = Counts::default();
        for part in text.split_whitespace() {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            let Ok(v) = value.parse::<u64>() else {
                continue;
            };
            match key {
                "pids_max" => c.pids_max = v,
                "memory_high" => c.memory.high = v,
                "memory_max" => c.memory.max = v,
                "memory_oom" => c.memory.oom = v,
                "memory_oom_kill" => c.memory.oom_kill = v,
                _ => {}
            }
        }
        c
    }

    fn zip(&self, other: &Counts, f: fn(u64, u64) -> u64) -> Counts {
        Counts {
            pids_max: f(self.pids_max, other.pids_max),
            memory: MemoryEvents {
                high: f(self.memory.high, other.memory.high),
                max: f(self.memory.max, other.memory.max),
                oom: f(self.memory.oom, other.memory.oom),
                oom_kill: f(self.memory.oom_kill, other.memory.oom_kill),
            },
        }
    }

    pub fn plus(&self, other: &Counts) -> Counts {
        self.zip(other, u64::saturating_add)
    }

    pub fn minus(&self, other: &Counts) -> Counts {
        self.zip(other, u64::saturating_sub)
    }

    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// The counts of `dir` itself for the counters that are local on this kernel.
pub fn local_counts(dir: &Path, sem: EventSemantics) -> Result<Counts> {
    let mut c = Counts::default();
    if !sem.pids_hierarchical {
        // Old kernels: pids.events is the local count. New ones with pids_localevents: the
        // same (pids.events then shows the forking cgroup's count).
        if let Some(t) = read_optional(&dir.join("pids.events"))? {
            c.pids_max = parse_flat_keyed(&t).get("max").copied().unwrap_or(0);
        }
    }
    if !sem.memory_hierarchical {
        if let Some(t) = read_optional(&dir.join("memory.events"))? {
            let kv = parse_flat_keyed(&t);
            let get = |k: &str| kv.get(k).copied().unwrap_or(0);
            c.memory = MemoryEvents {
                high: get("high"),
                max: get("max"),
                oom: get("oom"),
                oom_kill: get("oom_kill"),
            };
        }
    }
    Ok(c)
}

/// How long carrying waits for another carry of the same user. Carrying takes microseconds;
/// the holder can only be stalled by that user's own processes (a stopped `su` at logout),
/// and then the waiter gives up: what that user's leaf alone counted is lost (the caller logs
/// it and goes on), a loss only the customer itself can cause, and only to its own counts.
pub const CARRY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Takes the carrying lock of one user (the module at close and the daemon can race on one
/// user): a root-only lock file per user in `/run/pam_cgroup`, never anything a customer can
/// open (a customer can open its own user cgroup, 0750 root:<its gid>), and never one lock for
/// every user: a lock held by one customer's stopped process stalls nobody else.
fn lock_carrying(user_dir: &Path) -> Result<nix::fcntl::Flock<File>> {
    // Named by the user the directory belongs to (its own or a legacy one: one lock).
    let key = crate::tree::tree_key()?;
    let user = user_dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| key.classify(n))
        .map(|entry| entry.user())
        .ok_or_else(|| Error::NotUserCgroup {
            path: user_dir.to_path_buf(),
        })?;
    let run_dir = Path::new(crate::paths::RUN_DIR);
    let dir = crate::state_dir::StateDir::open(run_dir, true)?.ok_or_else(|| Error::Missing {
        path: run_dir.to_path_buf(),
    })?;
    Ok(dir.lock(&crate::paths::carry_lock_name(user), CARRY_WAIT)?)
}

/// Opens a cgroup directory without following a symlink.
fn open_dir(dir: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .ctx("open", dir)
}

/// The carried counts recorded on a directory (zero when none).
fn read_mark(dir: &File) -> Counts {
    crate::tree::dirfd::read_xattr(dir.as_fd(), CARRIED_XATTR, 256)
        .map(|text| Counts::parse(&text))
        .unwrap_or_default()
}

/// Records `counts` on a directory (through the tree's one xattr writer).
fn write_mark(dir: &File, path: &Path, counts: &Counts) -> Result<()> {
    crate::tree::dirfd::write_xattr(dir.as_fd(), path, CARRIED_XATTR, &counts.render())
}

/// The carried record of `user_dir` (zero when none or unreadable).
pub fn carried(user_dir: &Path) -> Counts {
    open_dir(user_dir)
        .map(|d| read_mark(&d))
        .unwrap_or_default()
}

/// What `dir` adds on top of what was carried from it already.
pub fn uncarried_local_counts(dir: &Path, sem: EventSemantics) -> Result<Counts> {
    let live = local_counts(dir, sem)?;
    let mark = open_dir(dir).map(|d| read_mark(&d)).unwrap_or_default();
    Ok(live.minus(&mark))
}

/// Call right before root removes `leaf` (a cgroup below `user_dir`): adds the leaf's own
/// counts that the kernel would forget to the user's record. Nothing to do on kernels that
/// count hierarchically. A failure loses those counts, nothing else: the caller logs it and
/// goes on with the removal.
pub fn before_removal(user_dir: &Path, leaf: &Path) -> Result<()> {
    if !leaf.starts_with(user_dir) || leaf == user_dir {
        return Err(Error::Other(format!(
            "{} is not below {}: counts not carried",
            leaf.display(),
            user_dir.display()
        )));
    }
    // The common case first, without reading mountinfo: a leaf whose own files count nothing
    // (no refused fork, no memory event, or no such controller) has nothing to carry.
    let raw = local_counts(
        leaf,
        EventSemantics {
            pids_hierarchical: false,
            memory_hierarchical: false,
        },
    )?;
    if raw.is_zero() {
        return Ok(());
    }
    let sem = EventSemantics::detect(user_dir);
    if sem.pids_hierarchical && sem.memory_hierarchical {
        return Ok(());
    }
    let _lock = lock_carrying(user_dir)?;
    let user = open_dir(user_dir)?;
    let leaf_dir = match open_dir(leaf) {
        Ok(d) => d,
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let live = local_counts(leaf, sem)?;
    let mark = read_mark(&leaf_dir);
    let delta = live.minus(&mark);
    if delta.is_zero() {
        return Ok(());
    }
    write_mark(&user, user_dir, &read_mark(&user).plus(&delta))?;
    // If the rmdir that follows fails, the leaf stays and this mark keeps its counts from
    // being counted twice.
    write_mark(&leaf_dir, leaf, &live)
}

#[cfg(test)]
mod tests {
    use super::{before_removal, Counts};
    use crate::stats::read_user_stats;

    /// A fake user subtree in a plain directory: no pids.events.local, so pids counting is
    /// local (as on kernel 6.1). trusted.* attributes need root.
    #[test]
    fn local_counts_are_summed_and_survive_removal_without_double_counting() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let user = base.path().join("alice");
        // The carry's lock file for "alice" in /run/pam_cgroup goes with the test.
        struct RemoveLock;
        impl Drop for RemoveLock {
            fn drop(&mut self) {
                let run = std::path::Path::new(crate::paths::RUN_DIR);
                let _ = std::fs::remove_file(run.join(crate::paths::carry_lock_name("alice")));
            }
        }
        let _remove_lock = RemoveLock;
        let leaf = |name: &str, max: u64| {
            let d = user.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("pids.events"), format!("max {max}\n")).unwrap();
            d
        };
        std::fs::create_dir(&user).unwrap();
        std::fs::write(user.join("pids.events"), "max 0\n").unwrap();
        let one = leaf("session-1", 5);
        leaf("session-1/customer-sub", 2);
        let two = leaf("session-2", 3);
        let pids = || read_user_stats(&user).unwrap().pids_events_max;
        assert_eq!(pids(), Some(10));
        // session-2 carried and removed: still counted, once.
        before_removal(&user, &two).unwrap();
        assert_eq!(pids(), Some(10), "carried and still present: not twice");
        std::fs::remove_dir_all(&two).unwrap();
        assert_eq!(pids(), Some(10));
        // A carry whose rmdir then fails (session-1 has a child): counted once, and a second
        // carry adds only what is new.
        before_removal(&user, &one).unwrap();
        before_removal(&user, &one).unwrap();
        assert_eq!(pids(), Some(10));
        std::fs::write(one.join("pids.events"), "max 9\n").unwrap();
        assert_eq!(pids(), Some(14));
        before_removal(&user, &one).unwrap();
        assert_eq!(pids(), Some(14));
        // Nothing outside the user's subtree is carried.
        assert!(before_removal(&user, base.path()).is_err());
    }

    #[test]
    fn record_text_round_trips_and_ignores_junk() {
        let c = Counts {
            pids_max: 192,
            memory: crate::stats::MemoryEvents {
                oom_kill: 3,
                ..Default::default()
            },
        };
        assert_eq!(Counts::parse(&c.render()), c);
        assert_eq!(
            Counts::parse("pids_max=7 bogus x=y memory_oom=q").pids_max,
            7
        );
        assert_eq!(c.minus(&Counts::parse("pids_max=500")).pids_max, 0);
    }
}
