//! Guards for the root integration tests. Everything a test creates (users, groups, cgroups,
//! config and PAM conf dirs) is removed on drop, even when the test fails.

pub mod cgroup;
pub mod driver;
pub mod escape_probe;
pub mod pamconf;
pub mod pip_tree;
pub mod probe;
pub mod traffic;
pub mod users;
pub mod wait;

pub use cgroup::TestTree;
pub use driver::{
    parse_report, run_session, run_session_in_namespace, run_session_via, session_command,
    SessionOptions, SessionReport,
};
pub use pamconf::TestSetup;
pub use users::{TestGroup, TestUser};
pub use wait::{flock_held, inotify_watches, wait_for_value, wait_until};

/// Root integration tests need root; say so instead of failing obscurely.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the root integration tests must run as root (they create users and cgroups)"
    );
}

/// A short name unique to this process and call: `<prefix><pid base36><counter>`.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", base36(std::process::id()))
}

fn base36(mut v: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}
