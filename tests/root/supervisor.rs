//! A systemd unit with Delegate=yes starts `cgroupctl daemon` in the unit's own cgroup, the
//! tree's parent: it must step into a leaf of its own, or no controller can ever be enabled
//! below it (issue: packaging). `init`, an ExecStartPre, must stay where systemd put it.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pam_cgroup_tests::support::pip_tree::cgroupctl_path;
use pam_cgroup_tests::support::{require_root, TestTree};

fn config_for(tree_root: &std::path::Path) -> tempfile::TempDir {
    let conf = tempfile::tempdir().unwrap();
    std::fs::set_permissions(conf.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        conf.path().join("config.toml"),
        // No usage sampling, and its events (and an old ring's import) in the test's own
        // directory: the daemon here must not write the host's own history database.
        format!(
            "[tree]\nroot = \"{}\"\n[history]\nenabled = false\ndatabase = \"{}\"\n\
             [events]\nhistory_dir = \"{}\"\n",
            tree_root.display(),
            conf.path().join("db/history.db").display(),
            conf.path().join("events").display()
        ),
    )
    .unwrap();
    conf
}

/// Runs `cgroupctl ARGS` as a process that starts in `cgroup`.
fn spawn_in(cgroup: &std::path::Path, config: &std::path::Path, args: &str) -> std::process::Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} --config {} {args}",
            cgroup.display(),
            cgroupctl_path().display(),
            config.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn the_daemon_moves_into_a_supervisor_leaf_and_init_stays() {
    require_root();
    let unit = TestTree::new();
    std::fs::create_dir(&unit.root).unwrap();
    let tree_root = unit.root.join("tree");
    let conf = config_for(&tree_root);
    let _kept =
        pam_cgroup_tests::support::pamconf::KeptPolicyGuard(conf.path().join("config.toml"));
    let config = conf.path().join("config.toml");

    let init = spawn_in(&unit.root, &config, "init")
        .wait_with_output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(tree_root.join("users").is_dir());
    assert!(
        !unit.root.join("supervisor").exists(),
        "init must not step aside"
    );

    let mut daemon = spawn_in(&unit.root, &config, "daemon");
    let supervisor = unit.root.join("supervisor");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut moved = false;
    while Instant::now() < deadline {
        let procs = std::fs::read_to_string(supervisor.join("cgroup.procs")).unwrap_or_default();
        if procs
            .split_whitespace()
            .any(|p| p == daemon.id().to_string())
        {
            moved = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = std::fs::read_to_string(unit.root.join("cgroup.procs")).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = daemon.wait().unwrap();
    assert!(moved, "the daemon never reached {}", supervisor.display());
    assert!(
        left.trim().is_empty(),
        "the unit's own cgroup still held {left}"
    );
    assert!(out.success(), "daemon exit {out}");
}
