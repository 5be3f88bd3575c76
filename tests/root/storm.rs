//! Concurrency storm (issue: hardening): 200 sessions of 50 users opening and closing in a
//! random order while `cgroupctl reload` and `cgroupctl gc` run over the same tree, and one of
//! the users runs the inotify racer of issue 11 against its own user cgroup the whole time.
//! Zero failures, zero unconfined sessions, zero leaves left, limits as configured.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pam_cgroup_tests::support::cgroup::user_dir_name;
use pam_cgroup_tests::support::pip_tree::cgroupctl_path;
use pam_cgroup_tests::support::{require_root, TestSetup, TestUser};

#[test]
fn two_hundred_sessions_of_fifty_users_with_reload_and_gc_running() {
    require_root();
    let users: Vec<TestUser> = (0..50).map(|_| TestUser::new("pcs")).collect();
    let setup = TestSetup::new("", "");
    setup.write_config_with_tree(
        "max_descendants = 64\nmax_depth = 3\n",
        "[policy]\non_error = \"closed\"\n[limits]\n\"pids.max\" = 300\n\"memory.max\" = \"1G\"\n",
    );
    // The hostile customer: a session held open, and from inside it the racer attacking every
    // new leaf of its user cgroup for as long as the storm lasts.
    let hostile = &users[0];
    let held = pam_cgroup_tests::support::run_session(
        &setup.pam_dir(),
        &hostile.name,
        &pam_cgroup_tests::support::SessionOptions::no_close(),
    );
    assert_eq!(held.open_rc, 0, "{held:?}");
    let racer =
        Command::new(pam_cgroup_tests::support::driver::driver().with_file_name("escape-probe"))
            .arg("--cgroup")
            .arg(setup.tree.path_of(&held.cgroup_after_open))
            .args([
                "--uid",
                &hostile.uid.to_string(),
                "--gid",
                &hostile.gid.to_string(),
            ])
            .arg(format!(
                "race:{}=600",
                setup.tree.user(&hostile.name).display()
            ))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let config = setup.config_path();
    let admin = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut runs = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                for (verb, count) in [("reload", &mut runs.0), ("gc", &mut runs.1)] {
                    let out = Command::new(cgroupctl_path())
                        .arg("--config")
                        .arg(&config)
                        .arg(verb)
                        .output()
                        .unwrap();
                    // reload may find a user cgroup mid-creation (4, a system error, or 1,
                    // problems reported); it must never fail on config (3), on usage (2), by
                    // a panic (101) or a signal (no code). Only completed runs are counted.
                    let code = out.status.code();
                    assert!(
                        matches!(code, Some(0 | 1 | 4)),
                        "{verb} exited with {code:?}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    if matches!(code, Some(0 | 1)) {
                        *count += 1;
                    }
                }
            }
            runs
        })
    };

    // A pseudo-random order of users and hold times (xorshift, fixed seed: reproducible).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let driver = pam_cgroup_tests::support::driver::driver();
    let mut children = Vec::new();
    for i in 0..200 {
        // Every fifth session is the hostile customer's: its racer gets work all along.
        let pick = (next() % 50) as usize;
        let user = if i % 5 == 0 { hostile } else { &users[pick] };
        let hold = next() % 400;
        children.push((
            i,
            user.name.clone(),
            Command::new(&driver)
                .arg("--confdir")
                .arg(setup.pam_dir())
                .args(["--service", "pamcgroup-test"])
                .arg(format!("--user={}", user.name))
                .args(["--hold-ms", &hold.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ));
    }
    let mut failures = Vec::new();
    for (i, name, child) in children {
        let out = child.wait_with_output().unwrap();
        match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            Ok(v)
                if v["open_rc"] == 0
                    && v["close_rc"] == 0
                    && v["cgroup_after_open"]
                        .as_str()
                        .unwrap_or("")
                        .contains(&format!("/users/{}/session-", user_dir_name(&name))) => {}
            Ok(v) => failures.push(format!("session {i} of {name}: {v}")),
            Err(e) => failures.push(format!(
                "session {i}: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (reloads, gcs) = admin.join().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(racer.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let raced = racer.wait_with_output().unwrap();
    let raced = String::from_utf8_lossy(&raced.stdout).into_owned();
    eprintln!("storm: racer {raced}");
    assert!(raced.contains("removed=0 retyped=0"), "{raced}");
    assert!(
        !raced.contains("seen=0 "),
        "the racer saw the leaves: {raced}"
    );
    // Leaves the racer left children in are dead now: gc's to trim, like any customer's.
    let gc = Command::new(cgroupctl_path())
        .arg("--config")
        .arg(setup.config_path())
        .args(["gc", "--min-age", "0"])
        .output()
        .unwrap();
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        reloads > 0 && gcs > 0,
        "reload and gc completed during the storm ({reloads} reloads, {gcs} gc runs)"
    );
    for user in &users {
        assert!(
            setup.tree.session_leaves(&user.name).is_empty(),
            "leaf left for {}",
            user.name
        );
        let dir = setup.tree.user(&user.name);
        if dir.exists() {
            // The user cgroup's depth cap: the leaves' (3) plus <service>/<leaf>.
            let caps = std::fs::read_to_string(dir.join("cgroup.max.depth")).unwrap();
            assert_eq!(caps.trim(), "5", "{}", user.name);
        }
    }
    eprintln!("storm: 200 sessions, {reloads} reloads and {gcs} gc runs alongside");
}
