//! The module's own resource limits while it works.
//!
//! The PAM hooks run inside the caller's process, with the caller's rlimits. For `su`,
//! `sudo` or any setuid program the customer starts, those are the customer's: `ulimit -n 6`
//! before `su <itself>` made every open fail with EMFILE, and an error there followed
//! `on_error = "open"`, so the customer's own rlimit turned its login into an unconfined one.
//! The hooks run as root (the session cannot be opened otherwise), so they raise the limits
//! that their own work needs to a floor for as long as they run and put the caller's values
//! back before returning: the shell started afterwards gets exactly the limits it had.
//!
//! Only limits whose exhaustion makes a call fail (rather than kill the process) are raised:
//! open files (EMFILE), file size (EFBIG or SIGXFSZ on the state files root writes), and the
//! address space and data segment (ENOMEM, or an allocation failure that aborts the caller).

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The least each limit is raised to while the module works.
const FLOORS: [(Resource, u64); 4] = [
    // Files the module holds at once: a handful of directory fds, a lock, /proc files, the
    // BPF queries. 1024 is the usual default soft limit.
    (Resource::RLIMIT_NOFILE, 1024),
    // Config files and state files are at most a few MiB.
    (Resource::RLIMIT_FSIZE, 64 << 20),
    // TOML parsing, NSS and libbpf queries: far below 1 GiB.
    (Resource::RLIMIT_AS, 1 << 30),
    (Resource::RLIMIT_DATA, 1 << 30),
];

/// The caller's limits, put back when dropped.
#[derive(Debug)]
pub struct RaisedLimits {
    saved: Vec<(Resource, u64, u64)>,
}

impl RaisedLimits {
    /// Raises every limit below its floor (soft, and hard when the hard one is lower too:
    /// root with CAP_SYS_RESOURCE may). A limit that cannot be raised is left as it is: the
    /// work may then fail, and such a failure refuses the login (`is_resource_errno`).
    pub fn raise() -> RaisedLimits {
        let mut saved = Vec::new();
        for (resource, floor) in FLOORS {
            let Ok((soft, hard)) = getrlimit(resource) else {
                continue;
            };
            if soft >= floor {
                continue;
            }
            // Raising a hard limit needs CAP_SYS_RESOURCE, which a root without it (some
            // containers) lacks: then at least up to the hard limit.
            let raised = setrlimit(resource, floor, hard.max(floor)).is_ok()
                || (soft < hard && setrlimit(resource, hard, hard).is_ok());
            if raised {
                saved.push((resource, soft, hard));
            }
        }
        RaisedLimits { saved }
    }

    /// Whether anything had to be raised (the caller came with a limit below a floor).
    pub fn raised_any(&self) -> bool {
        !self.saved.is_empty()
    }
}

impl Drop for RaisedLimits {
    fn drop(&mut self) {
        for (resource, soft, hard) in self.saved.drain(..) {
            // Lowering is always allowed; nothing to do if it fails but leave it raised.
            let _ = setrlimit(resource, soft, hard);
        }
    }
}

/// Is `errno` the sign of a resource exhausted (by the caller's limits or by the host), as
/// opposed to a fault of the config, cgroupfs or NSS? Such a failure may be the customer's
/// own doing, so it never lets a login in unconfined.
pub fn is_resource_errno(errno: i32) -> bool {
    matches!(
        errno,
        libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN | libc::EFBIG
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child that runs the body of the test below alone.
    const ALONE: &str = "PAM_CGROUP_PROCESS_LIMITS_TEST_ALONE";

    #[test]
    fn low_limits_are_raised_while_held_and_put_back_after() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        // Limits belong to the whole process, and the test harness runs other tests on other
        // threads at the same time: an RLIMIT_FSIZE of 4096 here killed the whole test binary
        // with SIGXFSZ when a history test wrote its SQLite file meanwhile. So the body runs
        // in a child of its own: this test binary again, filtered to this one test.
        if std::env::var_os(ALONE).is_none() {
            let exe = std::env::current_exe().unwrap();
            let child = std::process::Command::new(exe)
                .args([
                    "--exact",
                    "process_limits::tests::low_limits_are_raised_while_held_and_put_back_after",
                    "--test-threads=1",
                    "--nocapture",
                ])
                .env(ALONE, "1")
                .output()
                .unwrap();
            // "1 passed": the filter found this test (a renamed one would pass nothing).
            assert!(
                child.status.success()
                    && String::from_utf8_lossy(&child.stdout).contains("1 passed"),
                "the test's own process: {}\n{}{}",
                child.status,
                String::from_utf8_lossy(&child.stdout),
                String::from_utf8_lossy(&child.stderr)
            );
            return;
        }
        let (_, hard0) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
        setrlimit(Resource::RLIMIT_FSIZE, 4096, hard0).unwrap();
        {
            let raised = RaisedLimits::raise();
            assert!(raised.raised_any());
            let (soft, _) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
            assert!(soft >= 64 << 20, "raised while held: {soft}");
        }
        let (soft, hard) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
        assert_eq!((soft, hard), (4096, hard0), "the caller's values are back");
    }

    #[test]
    fn resource_errnos_are_told_apart_from_faults() {
        assert!(is_resource_errno(libc::EMFILE));
        assert!(is_resource_errno(libc::ENOMEM));
        assert!(!is_resource_errno(libc::ENOENT));
        assert!(!is_resource_errno(libc::EACCES));
    }
}
