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

#[test]
fn a_tree_root_with_dots_gets_a_pin_directory_bpffs_accepts() {
    require_root();
    // The packaged root is .../system.slice/pam-cgroup.service/tree: bpffs refuses dots.
    let mut tree = pam_cgroup_tests::support::TestTree::new();
    tree.root = tree.root.with_file_name(format!(
        "{}.service",
        tree.root.file_name().unwrap().to_string_lossy()
    ));
    let conf = tempfile::tempdir().unwrap();
    let config = conf.path().join("config.toml");
    let _kept = pam_cgroup_tests::support::pamconf::KeptPolicyGuard(config.clone());
    std::fs::write(
        &config,
        format!(
            "[tree]\nroot = \"{}\"\n[private_ip]\nenabled = true\nports = \"31990-31999\"\n",
            tree.root.display()
        ),
    )
    .unwrap();
    let ctl = |verb: &str| {
        std::process::Command::new(pam_cgroup_tests::support::pip_tree::cgroupctl_path())
            .arg("--config")
            .arg(&config)
            .arg(verb)
            .output()
            .unwrap()
    };
    let init = ctl("init");
    let deinit = ctl("deinit");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(
        deinit.status.success(),
        "{}",
        String::from_utf8_lossy(&deinit.stderr)
    );
    assert!(!tree.root.exists(), "deinit removed the empty tree");
}

/// Python that binds `0.0.0.0:PORT` (TCP) and prints the address, or the errno.
fn bind_probe(port: u16) -> Vec<String> {
    vec![
        "/usr/bin/python3".into(),
        "-c".into(),
        format!(
            "import socket\ns=socket.socket()\ntry:\n s.bind(('0.0.0.0',{port})); print('bound', s.getsockname()[0])\nexcept OSError as e:\n print('errno', e.errno)"
        ),
    ]
}

/// A login registers its fence: whatever runs in the session (root here, as the driver's
/// child) gets the user's address; a user whose primary gid is below min_gid gets none, the
/// log says so, doctor lists it, and its binds on the range are refused.
#[test]
fn a_login_registers_its_fence_and_a_low_gid_user_gets_no_address() {
    use pam_cgroup_tests::support::TestGroup;
    require_root();
    let pip = PipTree::new(port_block());
    let alice = TestUser::new("pcf");
    let low = TestGroup::low("pcl-");
    let bob = TestUser::with_primary("pcb", &low);
    let pam_dir = pip.dir.path().join("pam.d");
    std::fs::create_dir(&pam_dir).unwrap();
    std::fs::write(
        pam_dir.join(SERVICE),
        format!(
            "session required {} config={} on_error=closed\n",
            module_path().display(),
            pip.config_path().display()
        ),
    )
    .unwrap();
    let init = pip.cgroupctl(&["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let port = *pip.ports.start();
    let session = |user: &TestUser| {
        run_session(
            &pam_dir,
            &user.name,
            &SessionOptions {
                command: bind_probe(port),
                ..SessionOptions::default()
            },
        )
    };
    let r = session(&alice);
    assert_eq!(r.open_rc, 0, "{r:?}");
    let own = cgroup_core::private_ip::private_address(alice.gid, 2000).unwrap();
    assert_eq!(r.child_stdout.trim(), format!("bound {own}"), "{r:?}");

    let r = session(&bob);
    assert_eq!(r.open_rc, 0, "{r:?}");
    assert_eq!(r.child_stdout.trim(), "errno 13", "{r:?}");
    assert!(
        r.syslog_text().contains("has no private address"),
        "{:?}",
        r.syslog
    );
    let doctor = pip.cgroupctl(&["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("users without a private address") && l.contains(&bob.name)),
        "{text}"
    );
}
