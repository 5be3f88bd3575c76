//! Concurrency storm (issue: hardening): 200 sessions of 50 users opening and closing in a
//! random order while `cgroupctl reload` and `cgroupctl gc` run over the same tree.
//! Zero failures, zero leaves left, limits as configured.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
                    // reload may find a user cgroup mid-creation; it must never fail on config.
                    assert_ne!(
                        out.status.code(),
                        Some(3),
                        "{verb}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    *count += 1;
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
        let user = &users[(next() % 50) as usize];
        let hold = next() % 400;
        children.push((
            i,
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
    for (i, child) in children {
        let out = child.wait_with_output().unwrap();
        match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            Ok(v)
                if v["open_rc"] == 0
                    && v["close_rc"] == 0
                    && v["cgroup_after_open"]
                        .as_str()
                        .unwrap_or("")
                        .contains("/session-") => {}
            Ok(v) => failures.push(format!("session {i}: {v}")),
            Err(e) => failures.push(format!(
                "session {i}: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (reloads, gcs) = admin.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(reloads > 0 && gcs > 0, "reload and gc ran during the storm");
    for user in &users {
        assert!(
            setup.tree.session_leaves(&user.name).is_empty(),
            "leaf left for {}",
            user.name
        );
        let dir = setup.tree.user(&user.name);
        if dir.exists() {
            let caps = std::fs::read_to_string(dir.join("cgroup.max.descendants")).unwrap();
            assert_eq!(caps.trim(), "64", "{}", user.name);
        }
    }
    eprintln!("storm: 200 sessions, {reloads} reloads and {gcs} gc runs alongside");
}
