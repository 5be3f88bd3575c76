//! PAM services whose caller outlived a session's close: a long-lived root process that opens
//! and closes sessions without exiting (Dovecot's auth worker with `session=yes`), found at its
//! next open back in the session leaf it closed itself, same PID and start time
//! (`session::survived_close`).
//!
//! Close moves nobody (session.rs), so such a caller stays in the last customer's leaf until
//! its next open. Close takes the leaf's delegated files back (`tree::delegation::
//! end_of_session`), so there the customer cannot move it (cgroup v2 lets a delegatee move any
//! process inside its leaf, root's too, into a sub-cgroup of its own, whose cgroup.freeze and
//! cgroup.kill are the customer's: one customer could freeze or kill the worker that serves
//! every other one); but it is counted against that customer's limits, and between its open
//! and its close it sits in a delegated leaf. So once a service has been seen doing this, its
//! sessions' leaves are not handed over (`session::enter`) and its closes move the caller out
//! to an unconfined leaf (one migration, at close, for those services only).
//!
//! The record is a root-only file per service under /run: forgotten at boot, learnt again at
//! the first survivor. A wrong record costs only a migration at that service's closes (of a
//! root process about to exit or to serve the next login), never a confinement.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::paths::RUN_DIR;

/// Below `RUN_DIR`.
const DIR: &str = "survivor-services";

/// Notes that `service`'s caller outlived its close. Best effort: a failure only leaves the
/// next close where it was (the warning that came with the detection still says so).
pub fn record(service: &str) {
    record_in(&Path::new(RUN_DIR).join(DIR), service);
}

/// Whether `service`'s caller was seen outliving a close since boot.
pub fn is_recorded(service: &str) -> bool {
    is_recorded_in(&Path::new(RUN_DIR).join(DIR), service)
}

fn record_in(dir: &Path, service: &str) {
    let _ = std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir);
    let _ = std::fs::write(file_of(dir, service), service);
}

fn is_recorded_in(dir: &Path, service: &str) -> bool {
    file_of(dir, service).exists()
}

/// The service's file: its name in hex. The calling program chooses the PAM service name, and
/// hex keeps any of its bytes from becoming a path component ('/', "..").
fn file_of(dir: &Path, service: &str) -> PathBuf {
    let hex: String = service.bytes().map(|b| format!("{b:02x}")).collect();
    dir.join(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_recorded_by_its_name_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join(DIR);
        assert!(!is_recorded_in(&dir, "dovecot"));
        record_in(&dir, "dovecot");
        assert!(is_recorded_in(&dir, "dovecot"));
        assert!(!is_recorded_in(&dir, "sshd"));
        record_in(&dir, "../x");
        assert!(is_recorded_in(&dir, "../x"));
        assert!(!dir.parent().unwrap().join("x").exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    }
}
