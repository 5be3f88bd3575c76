//! The operator's levers on a user's processes: kill, freeze, thaw, and the suspension that
//! keeps them. Every write goes through the user cgroup's descriptor
//! (`tree::user_cgroup::TargetDir::write_kill/write_freeze`, opened through it).
//!
//! SIGKILL uses `cgroup.kill`: the kernel kills every process of the subtree, including those
//! forked meanwhile, with no pid race. Other signals have no such file: the target is frozen
//! first (a frozen process cannot fork), every pid is signalled, and it is thawed again (unless
//! it was frozen before), so no process started in between escapes the signal.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::Serialize;

use crate::cgroup_files;
use crate::error::{Error, Result};
use crate::tree::dirfd::CgroupDir;
use crate::tree::processes::{subtree_pids, subtree_thread_groups};
use crate::tree::user_cgroup::{populated, Target, TargetDir, UserCgroup};

/// How often the waits below look at cgroup.events.
const POLL: Duration = Duration::from_millis(20);

/// What a kill did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KillOutcome {
    pub signal: String,
    /// Processes found before the signal.
    pub processes: u64,
    /// Processes still there when the wait ended: 0 only when the kernel says the subtree is
    /// empty (`populated 0`, or the cgroup was removed because it emptied), at least 1
    /// otherwise.
    pub remaining: u64,
    pub waited_ms: u64,
    /// The target's cgroup was removed while the lever ran: it emptied and was reaped (the
    /// daemon, `gc` or a closing session remove a leaf the moment it is empty).
    pub vanished: bool,
}

/// Did `e` come from a cgroup that was removed after it was opened? A removed cgroup's
/// files are gone (ENOENT at openat) and a file still open answers ENODEV. cgroupfs removes
/// only an empty cgroup, so a vanished target holds no process: the lever's work is done.
pub fn vanished(e: &Error) -> bool {
    matches!(e.errno(), Some(libc::ENOENT) | Some(libc::ENODEV))
}

/// `Ok(true)` when `r` failed because the target vanished.
fn gone(r: Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(false),
        Err(e) if vanished(&e) => Ok(true),
        Err(e) => Err(e),
    }
}

pub use crate::tree::freezer::{freeze_requested, is_frozen};

fn wait_until(wait: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<(bool, u64)> {
    let start = Instant::now();
    loop {
        if done()? {
            return Ok((true, start.elapsed().as_millis() as u64));
        }
        if start.elapsed() >= wait {
            return Ok((false, start.elapsed().as_millis() as u64));
        }
        std::thread::sleep(POLL);
    }
}

/// Sends `signal` to every process of `target` and waits (at most `wait`) until it is empty.
/// A target missing when the lever starts is an error that names it; one removed while the
/// lever runs emptied, which is what a kill is for.
pub fn kill(
    user: &UserCgroup,
    target: Target<'_>,
    signal: Signal,
    wait: Duration,
) -> Result<KillOutcome> {
    kill_in(&user.open_target(target)?, signal, wait)
}

/// `kill` on a target already opened.
pub fn kill_in(dir: &TargetDir<'_>, signal: Signal, wait: Duration) -> Result<KillOutcome> {
    let processes = if signal == Signal::SIGKILL {
        subtree_pids(dir).len()
    } else {
        subtree_thread_groups(dir).len()
    } as u64;
    let mut vanished = false;
    if signal == Signal::SIGKILL {
        vanished = gone(dir.write_kill())?;
    } else {
        let was_frozen = match dir.read(cgroup_files::FREEZE) {
            Ok(text) => text.trim() == "1",
            Err(e) if self::vanished(&e) => {
                vanished = true;
                false
            }
            Err(e) => return Err(e),
        };
        if !vanished && !was_frozen {
            vanished = gone(dir.write_freeze(true))?;
            // Processes already in the kernel's freezer path finish it quickly; a process
            // stuck in uninterruptible sleep is signalled anyway and gets it at thaw.
            let _ = wait_until(Duration::from_secs(2), || match is_frozen(dir) {
                Err(e) if self::vanished(&e) => Ok(true),
                other => other,
            })?;
        }
        let mut failed = None;
        // By thread: a process whose main thread exited elsewhere runs here unlisted.
        for pid in subtree_thread_groups(dir) {
            let Ok(raw) = i32::try_from(pid) else {
                continue;
            };
            match nix::sys::signal::kill(Pid::from_raw(raw), signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => failed = Some((pid, e)),
            }
        }
        if !vanished && !was_frozen {
            vanished = gone(dir.write_freeze(false))?;
        }
        if let Some((pid, e)) = failed {
            return Err(Error::Other(format!("kill -{signal} {pid}: {e}")));
        }
    }
    let (emptied, waited_ms) = if vanished {
        (true, 0)
    } else {
        wait_until(wait, || match populated(dir) {
            Ok(p) => Ok(!p),
            Err(e) if self::vanished(&e) => {
                vanished = true;
                Ok(true)
            }
            Err(e) => Err(e),
        })?
    };
    Ok(KillOutcome {
        signal: signal.as_str().to_string(),
        processes,
        remaining: remaining_after(dir, emptied),
        waited_ms,
        vanished,
    })
}

/// Processes left after a kill. The kernel's `populated` decides whether any is left: a
/// process the walk could not see (a cgroup that could not be read, one made meanwhile)
/// still counts, so "0 remaining" is never said of a subtree that is not empty.
fn remaining_after(dir: &CgroupDir, emptied: bool) -> u64 {
    if emptied || matches!(populated(dir), Ok(false)) {
        return 0;
    }
    (subtree_pids(dir).len() as u64).max(1)
}

/// What a freeze or thaw did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreezeOutcome {
    pub frozen: bool,
    /// The kernel reported the wanted state within the wait (or the target vanished: an
    /// empty cgroup that was reaped has nothing left to freeze or thaw).
    pub reached: bool,
    pub processes: u64,
    pub waited_ms: u64,
    /// The target's cgroup was removed while the lever ran (it emptied and was reaped).
    pub vanished: bool,
}

/// Freezes (`true`) or thaws `target`, waiting (at most `wait`) for `frozen` in cgroup.events.
pub fn set_frozen(
    user: &UserCgroup,
    target: Target<'_>,
    frozen: bool,
    wait: Duration,
) -> Result<FreezeOutcome> {
    set_frozen_in(&user.open_target(target)?, frozen, wait)
}

/// `set_frozen` on a target already opened.
pub fn set_frozen_in(dir: &TargetDir<'_>, frozen: bool, wait: Duration) -> Result<FreezeOutcome> {
    let mut vanished = gone(dir.write_freeze(frozen))?;
    let (reached, waited_ms) = if vanished {
        (true, 0)
    } else {
        wait_until(wait, || match is_frozen(dir) {
            Ok(f) => Ok(f == frozen),
            Err(e) if self::vanished(&e) => {
                vanished = true;
                Ok(true)
            }
            Err(e) => Err(e),
        })?
    };
    Ok(FreezeOutcome {
        frozen,
        reached,
        processes: if vanished {
            0
        } else {
            subtree_pids(dir).len() as u64
        },
        waited_ms,
        vanished,
    })
}

/// The targets in the user cgroups `users` (`UserCgroup::open_all`: the user's own, then a
/// legacy one an upgrade left), each opened once: all of them for the whole user, those with
/// the named session or service otherwise. None of them: the first one's error naming what is
/// missing.
pub fn open_targets<'a>(users: &'a [UserCgroup], target: Target<'_>) -> Result<Vec<TargetDir<'a>>> {
    let mut found = Vec::new();
    let mut first_error = None;
    for user in users {
        match user.open_target(target) {
            Ok(dir) => found.push(dir),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (found.is_empty(), first_error) {
        (false, _) => Ok(found),
        (true, Some(e)) => Err(e),
        (true, None) => Err(Error::Other("no user cgroup to act on".to_string())),
    }
}

/// `kill` on every user cgroup of a user holding `target`: an upgraded customer's sessions
/// in a legacy cgroup are reached with its new ones.
pub fn kill_all(
    users: &[UserCgroup],
    target: Target<'_>,
    signal: Signal,
    wait: Duration,
) -> Result<KillOutcome> {
    let mut total = KillOutcome {
        signal: signal.as_str().to_string(),
        processes: 0,
        remaining: 0,
        waited_ms: 0,
        vanished: false,
    };
    for dir in open_targets(users, target)? {
        let one = kill_in(&dir, signal, wait)?;
        total.processes += one.processes;
        total.remaining += one.remaining;
        total.waited_ms += one.waited_ms;
        total.vanished |= one.vanished;
    }
    Ok(total)
}

/// `set_frozen` on every user cgroup of a user holding `target` (see `kill_all`).
pub fn set_frozen_all(
    users: &[UserCgroup],
    target: Target<'_>,
    frozen: bool,
    wait: Duration,
) -> Result<FreezeOutcome> {
    let mut total = FreezeOutcome {
        frozen,
        reached: true,
        processes: 0,
        waited_ms: 0,
        vanished: false,
    };
    for dir in open_targets(users, target)? {
        let one = set_frozen_in(&dir, frozen, wait)?;
        total.reached &= one.reached;
        total.processes += one.processes;
        total.waited_ms += one.waited_ms;
        total.vanished |= one.vanished;
    }
    Ok(total)
}

/// Keeps a suspension written in the user's file in force (`reload`, the daemon): freezes the
/// user cgroup if it exists and is not frozen. Returns the reason when the user is suspended,
/// and whether this call froze it.
pub fn enforce_suspension(
    tree: &crate::tree::Tree,
    config: &crate::config::Config,
    user: &str,
) -> Result<Option<(String, bool)>> {
    let file = config.load_user_file(user)?;
    let Some(reason) = crate::policy::suspension(file.as_ref()).map(|s| s.reason.clone()) else {
        return Ok(None);
    };
    // A legacy cgroup an upgrade left holds sessions of the same customer: frozen too.
    let mut froze = false;
    for uc in UserCgroup::open_all(tree, user)? {
        if !freeze_requested(uc.dir())? {
            uc.write_freeze(Target::User, true)?;
            froze = true;
        }
    }
    Ok(Some((reason, froze)))
}

/// Parses a signal as `kill(1)` takes it: `KILL`, `SIGTERM`, `15`.
pub fn parse_signal(text: &str) -> std::result::Result<Signal, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("{t}: no such signal"));
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| format!("{t}: no such signal (KILL, TERM, HUP, INT, ... or a number)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL"), Ok(Signal::SIGKILL));
        assert_eq!(parse_signal("sigterm"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("1"), Ok(Signal::SIGHUP));
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
