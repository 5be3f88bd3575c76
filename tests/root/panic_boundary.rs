//! The module's panic boundary, driven from a C program as sshd, su and cron drive it: the
//! process has no Rust runtime and no libgcc_s of its own, so the unwinder that catches a panic
//! at the FFI boundary must be the module's own (linked in statically). Run against the
//! release module with PAM_CGROUP_SO=target/release/libpam_cgroup.so (tests/run does).

use std::path::{Path, PathBuf};
use std::process::Command;

use pam_cgroup_tests::support::{require_root, TestSetup, TestUser};

const PAM_SESSION_ERR: i32 = 14;

/// Compiles tests/cdriver/pam-c-driver.c into `dir`.
pub fn c_driver(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cdriver/pam-c-driver.c");
    let out = dir.join("pam-c-driver");
    let cc = Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-lpam")
        .output()
        .unwrap();
    assert!(
        cc.status.success(),
        "cc {}: {}",
        src.display(),
        String::from_utf8_lossy(&cc.stderr)
    );
    out
}

/// One transaction through the C driver: (open_rc, close_rc, libgcc_s mapped during open).
fn one_transaction(driver: &Path, setup: &TestSetup, user: &str) -> (i32, i32, i32) {
    let out = Command::new(driver)
        .arg(setup.pam_dir())
        .args(["pamcgroup-test", user, "1", "0"])
        .output()
        .unwrap();
    // A panic that escaped would abort the driver (SIGABRT): it must exit normally.
    assert!(
        out.status.success(),
        "the C driver did not survive: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 9, "{line}");
    (
        f[4].parse().unwrap(),
        f[5].parse().unwrap(),
        f[6].parse().unwrap(),
    )
}

#[test]
fn a_panic_in_the_module_is_caught_without_libgcc_s_and_follows_on_error() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let driver = c_driver(dir.path());
    let alice = TestUser::new("pcp");
    // The module alone brings no libgcc_s into a C process.
    let plain = TestSetup::new("", "");
    assert_eq!(one_transaction(&driver, &plain, &alice.name), (0, 0, 0));
    // A panic in open and in close, caught. It comes before the config is read, so the
    // policy known then decides: the module argument's. on_error=open lets the session in...
    let open = TestSetup::new("", "selftest=panic on_error=open");
    assert_eq!(one_transaction(&driver, &open, &alice.name), (0, 0, 0));
    // ... on_error=closed refuses it (a program closes no session whose open failed; what
    // libpam answers to that close is its own).
    let closed = TestSetup::new("", "selftest=panic on_error=closed");
    let (open_rc, _, mapped) = one_transaction(&driver, &closed, &alice.name);
    assert_eq!((open_rc, mapped), (PAM_SESSION_ERR, 0));
}
