//! Waiting for a condition instead of sleeping a fixed time: a fixed sleep is too long on an
//! idle machine and too short on a loaded one, and a check that something did *not* happen
//! after one passes when the code under test is merely slow.

use std::time::{Duration, Instant};

/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(10);

/// Checks `cond` until it holds; panics naming `what` once `limit` has passed. Returns how long
/// it took (tests print latencies worth knowing).
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
    start.elapsed()
}

/// Like `wait_until`, for a value: checks `get` until it gives one.
pub fn wait_for_value<T>(what: &str, limit: Duration, mut get: impl FnMut() -> Option<T>) -> T {
    let mut value = None;
    wait_until(what, limit, || {
        value = get();
        value.is_some()
    });
    value.expect("wait_until returned: the value was there")
}

/// inotify watches held by process `pid` (its fdinfo lists one `inotify wd:` line each): a
/// process watching a directory has set up what it reacts to.
pub fn inotify_watches(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .map(|t| t.lines().filter(|l| l.starts_with("inotify wd:")).count())
                .sum()
        })
        .unwrap_or(0)
}

/// Whether another open file holds a flock on `path` (a file or a directory): a non-blocking
/// try, released at once when it succeeds.
pub fn flock_held(path: &std::path::Path) -> bool {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open {} to test its lock: {e}", path.display()));
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(_) => false,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => true,
        Err((_, e)) => panic!("flock {}: {e}", path.display()),
    }
}
