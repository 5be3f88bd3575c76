//! The PAM side of private IPs: the module never loads BPF, it only checks the programs are
//! attached at the tree root and follows on_error when they are not (issue: private IPs).

use pam_cgroup_tests::support::pamconf::{module_path, SERVICE};
use pam_cgroup_tests::support::pip_tree::{port_block, PipTree};
use pam_cgroup_tests::support::{require_root, run_session, SessionOptions, TestUser};

#[test]
fn a_login_without_the_programs_follows_on_error_and_says_why() {
    require_root();
    let pip = PipTree::new(port_block());
    let alice = TestUser::new("pci");
    let pam_dir = pip.dir.path().join("pam.d");
    std::fs::create_dir(&pam_dir).unwrap();
    let stack = |on_error: &str| {
        std::fs::write(
            pam_dir.join(SERVICE),
            format!(
                "session required {} config={} on_error={on_error}\n",
                module_path().display(),
                pip.config_path().display()
            ),
        )
        .unwrap()
    };

    stack("closed");
    let r = run_session(&pam_dir, &alice.name, &SessionOptions::default());
    assert_ne!(r.open_rc, 0, "refused without the programs: {r:?}");
    assert!(
        r.syslog_text().contains("are not attached") && r.syslog_text().contains("cgroupctl init"),
        "{:?}",
        r.syslog
    );

    stack("open");
    let r = run_session(&pam_dir, &alice.name, &SessionOptions::default());
    assert_eq!(r.open_rc, 0, "{r:?}");
    assert_eq!(r.cgroup_after_open, r.cgroup_before, "let in unconfined");
    assert!(r.syslog_text().contains("on_error=open"), "{:?}", r.syslog);

    let init = pip.cgroupctl(&["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    stack("closed");
    let r = run_session(&pam_dir, &alice.name, &SessionOptions::default());
    assert_eq!(r.open_rc, 0, "{r:?}");
    assert!(r.cgroup_after_open.contains("/session-"), "{r:?}");
}
