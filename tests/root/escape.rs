//! Escape attempts by unprivileged users from inside their own fence. Each attempt runs as the
//! confined user, in its session leaf, and must be refused with the expected errno; the
//! attacks of the review of issue 11 (racing a fresh leaf, re-typing the user cgroup, filling
//! its descendants) are each followed by real logins of that user, which must all be confined.
//! Socket escapes (other users' private addresses) are in `private_ip`.

use std::path::Path;
use std::process::Command;

use pam_cgroup_tests::support::escape_probe::{attempt_as, escape_probe};
use pam_cgroup_tests::support::{require_root, run_session, SessionOptions, TestSetup, TestUser};

const EACCES: i32 = libc::EACCES;
const EPERM: i32 = libc::EPERM;
const EAGAIN: i32 = libc::EAGAIN;
const ENOENT: i32 = libc::ENOENT;
const PAM_SUCCESS: i32 = 0;

/// Runs ops as `user` inside `cgroup`; returns (op, errno, detail) for each.
fn attempt(cgroup: &Path, user: &TestUser, ops: &[String]) -> Vec<(String, i32, String)> {
    attempt_as(Some(cgroup), user.uid, user.gid, ops)
}

fn leaf_of(setup: &TestSetup, user: &TestUser) -> std::path::PathBuf {
    let r = run_session(&setup.pam_dir(), &user.name, &SessionOptions::no_close());
    assert_eq!(r.open_rc, 0, "{r:?}");
    setup.tree.session_leaf_of(&r.cgroup_after_open)
}

#[test]
fn a_confined_user_cannot_leave_or_widen_its_fence() {
    require_root();
    let setup = TestSetup::new("", "");
    setup.write_config_with_tree(
        "max_descendants = 6\nmax_depth = 3\n",
        "[limits]\n\"memory.max\" = \"1G\"\n\"pids.max\" = 100\n\"cpu.max\" = \"50%\"\n",
    );
    let alice = TestUser::new("pce");
    let bob = TestUser::new("pce");
    let alice_leaf = leaf_of(&setup, &alice);
    let bob_leaf = leaf_of(&setup, &bob);
    let a = setup.tree.user(&alice.name);
    let b = setup.tree.user(&bob.name);
    // A process of bob's to steal.
    let mut bob_proc = Command::new("setpriv")
        .args([
            &format!("--reuid={}", bob.uid),
            &format!("--regid={}", bob.gid),
            "--clear-groups",
            "sleep",
            "30",
        ])
        .spawn()
        .unwrap();
    std::fs::write(
        bob_leaf.join("cgroup.procs"),
        format!("{}\n", bob_proc.id()),
    )
    .unwrap();

    let d = |p: &Path| p.display().to_string();
    // Limit files exist only where the controller is available: then EACCES, else ENOENT.
    let limit_errno = |file: &str| {
        if a.join(file).exists() {
            EACCES
        } else {
            ENOENT
        }
    };
    let cases: Vec<(String, i32)> = vec![
        (
            format!("write:{}/cgroup.max.descendants=100000", d(&a)),
            EACCES,
        ),
        (format!("write:{}/cgroup.max.depth=max", d(&a)), EACCES),
        (
            format!("write:{}/memory.max=max", d(&a)),
            limit_errno("memory.max"),
        ),
        (
            format!("write:{}/pids.max=max", d(&a)),
            limit_errno("pids.max"),
        ),
        (
            format!("write:{}/cpu.max=max", d(&a)),
            limit_errno("cpu.max"),
        ),
        (
            format!(
                "write:{}/cgroup.subtree_control=-hugetlb",
                d(&setup.tree.users())
            ),
            EACCES,
        ),
        (format!("write:{}/cgroup.freeze=1", d(&a)), EACCES),
        (format!("join:{}", d(&bob_leaf)), EACCES),
        (format!("join:{}", d(&b)), EACCES),
        (format!("join:{}", d(&setup.tree.users())), EACCES),
        (format!("join:{}", d(&setup.tree.root)), EACCES),
        (format!("join:{}", d(&setup.tree.mount_point)), EACCES),
        (
            format!("movepid:{}={}", d(&alice_leaf), bob_proc.id()),
            EACCES,
        ),
        (format!("write:{}/cgroup.kill=1", d(&b)), EACCES),
        (format!("rmdir:{}", d(&b)), EACCES),
        (format!("rmdir:{}", d(&bob_leaf)), EACCES),
        (format!("rename:{}={}/stolen", d(&b), d(&a)), EACCES),
        (
            format!(
                "rename:{}={}/{}-2",
                d(&a),
                d(&setup.tree.users()),
                alice.name
            ),
            EACCES,
        ),
        (
            format!("setxattr:{}=trusted.pam_cgroup.applied", d(&a)),
            EPERM,
        ),
        (format!("chmod:{}/cgroup.max.descendants", d(&a)), EPERM),
        (format!("chown:{}/cgroup.max.descendants", d(&a)), EPERM),
        (format!("symlink:/etc/passwd={}/link", d(&a)), EACCES),
        (
            format!("mknod:{}/{}.toml", d(&setup.users_dir()), alice.name),
            EACCES,
        ),
        (format!("mknod:{}/evil", d(&a)), EACCES),
        // The user cgroup is root's: nothing made, moved into or removed there by the user.
        (format!("mkdir:{}/x", d(&a)), EACCES),
        (format!("join:{}", d(&a)), EACCES),
        (format!("rmdir:{}", d(&alice_leaf)), EACCES),
        // The leaf's own caps and type are root's, though the leaf is the user's.
        (
            format!("write:{}/cgroup.max.descendants=100000", d(&alice_leaf)),
            EACCES,
        ),
        (
            format!("write:{}/cgroup.max.depth=max", d(&alice_leaf)),
            EACCES,
        ),
        (
            format!("write:{}/cgroup.type=threaded", d(&alice_leaf)),
            EACCES,
        ),
        // The leaf's caps: depth 3 below it (d0/d1/d2 made, d3 refused), then 6 descendants
        // in all (d0-d2 leave room for three more).
        (format!("mkdirs:{}=5", d(&alice_leaf)), EAGAIN),
        (format!("mkwide:{}=10", d(&alice_leaf)), EAGAIN),
    ];
    assert!(cases.len() >= 15);
    let ops: Vec<String> = cases.iter().map(|(op, _)| op.clone()).collect();
    let results = attempt(&alice_leaf, &alice, &ops);
    let _ = bob_proc.kill();
    let _ = bob_proc.wait();
    let mut wrong = Vec::new();
    for ((op, want), (_, got, detail)) in cases.iter().zip(&results) {
        if got != want {
            wrong.push(format!("{op}: errno {got} ({detail}), expected {want}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "escapes not refused as expected:\n{}",
        wrong.join("\n")
    );
    // The caps were reached, not bypassed.
    let count = walk_count(&alice_leaf);
    assert!(
        count <= 6,
        "{count} descendants under {}",
        alice_leaf.display()
    );
}

/// Opens `rounds` sessions of `user` (closing each) and checks each one landed in a fresh
/// session leaf of the user's own cgroup: confined, never unconfined, never refused.
fn logins_are_confined(setup: &TestSetup, user: &TestUser, rounds: usize) {
    let user_dir = setup.tree.user(&user.name);
    for i in 0..rounds {
        let r = run_session(&setup.pam_dir(), &user.name, &SessionOptions::default());
        let cg = setup.tree.path_of(&r.cgroup_after_open);
        let leaf = cg.parent().unwrap();
        assert!(
            r.open_rc == PAM_SUCCESS
                && leaf.parent() == Some(user_dir.as_path())
                && cg.file_name().unwrap() == "login",
            "login {i} of {} not confined in a leaf of {}: {r:?}",
            user.name,
            user_dir.display()
        );
        assert!(
            leaf.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("session-"),
            "{r:?}"
        );
    }
}

#[test]
fn racing_a_fresh_leaf_with_inotify_never_makes_a_login_unconfined() {
    require_root();
    let setup = TestSetup::new("", "on_error=open");
    let alice = TestUser::new("pce");
    let alice_leaf = leaf_of(&setup, &alice);
    let user_dir = setup.tree.user(&alice.name);
    // The racer: a real process of alice's, in her fence, watching her user cgroup.
    let racer = Command::new(escape_probe())
        .arg("--cgroup")
        .arg(&alice_leaf)
        .args([
            "--uid",
            &alice.uid.to_string(),
            "--gid",
            &alice.gid.to_string(),
        ])
        // Until SIGTERM below, not a fixed time: on a loaded machine 40 logins can outlast any
        // guess, and a racer that stopped early would see too few leaves.
        .arg(format!("race:{}=600", user_dir.display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    pam_cgroup_tests::support::wait_until(
        "the racer's watch",
        std::time::Duration::from_secs(10),
        || pam_cgroup_tests::support::inotify_watches(racer.id()) > 0,
    );
    logins_are_confined(&setup, &alice, 40);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(racer.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = racer.wait_with_output().unwrap();
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let detail = v[0]["detail"].as_str().unwrap().to_string();
    assert_eq!(v[0]["errno"], 0, "the racer ran: {detail}");
    let count = |key: &str| -> u32 {
        detail
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    // It saw the leaves appear (the test can fail), and could not remove or re-type any.
    assert!(count("seen") >= 40, "{detail}");
    assert_eq!(count("removed"), 0, "{detail}");
    assert_eq!(count("retyped"), 0, "{detail}");
}

#[test]
fn a_threaded_cgroup_made_by_the_user_never_makes_a_login_unconfined() {
    require_root();
    let setup = TestSetup::new("", "on_error=open");
    let alice = TestUser::new("pce");
    let alice_leaf = leaf_of(&setup, &alice);
    let a = setup.tree.user(&alice.name);
    let d = |p: &Path| p.display().to_string();
    // The review's sequence: move into the user cgroup, remove the leaf, make a threaded
    // child of the user cgroup. Each refused; the same inside its own leaf is its business.
    let ops = vec![
        format!("join:{}", d(&a)),
        format!("rmdir:{}", d(&alice_leaf)),
        format!("mkdir:{}/t", d(&a)),
        format!("write:{}/t/cgroup.type=threaded", d(&a)),
        format!("mkdir:{}/t", d(&alice_leaf)),
        format!("write:{}/t/cgroup.type=threaded", d(&alice_leaf)),
    ];
    let got: Vec<i32> = attempt(&alice_leaf, &alice, &ops)
        .iter()
        .map(|(_, e, _)| *e)
        .collect();
    assert_eq!(got, vec![EACCES, EACCES, EACCES, ENOENT, 0, 0], "{ops:?}");
    assert_eq!(
        std::fs::read_to_string(a.join("cgroup.type"))
            .unwrap()
            .trim(),
        "domain"
    );
    logins_are_confined(&setup, &alice, 5);
}

#[test]
fn filling_the_leaf_caps_never_makes_a_login_unconfined() {
    require_root();
    let setup = TestSetup::new("", "on_error=open");
    setup.write_config_with_tree("max_descendants = 8\nmax_depth = 2\n", "");
    let alice = TestUser::new("pce");
    // Several leaves held open, each filled to its cap by the user.
    for _ in 0..3 {
        let leaf = leaf_of(&setup, &alice);
        let got = attempt(&leaf, &alice, &[format!("mkwide:{}=20", leaf.display())]);
        assert_eq!(got[0].1, EAGAIN, "{got:?}");
        assert_eq!(walk_count(&leaf), 8);
    }
    logins_are_confined(&setup, &alice, 5);
}

#[test]
fn other_customers_see_nothing_of_a_user_cgroup_the_user_sees_its_own() {
    require_root();
    let setup = TestSetup::new("", "");
    let alice = TestUser::new("pce");
    let bob = TestUser::new("pce");
    let alice_leaf = leaf_of(&setup, &alice);
    let bob_leaf = leaf_of(&setup, &bob);
    let a = setup.tree.user(&alice.name);
    let d = |p: &Path| p.display().to_string();
    let as_bob: Vec<(String, i32)> = vec![
        (format!("list:{}", d(&setup.tree.users())), EACCES),
        (format!("list:{}", d(&a)), EACCES),
        (format!("read:{}/cpu.stat", d(&a)), EACCES),
        (format!("read:{}/cgroup.procs", d(&alice_leaf)), EACCES),
        (format!("list:{}", d(&alice_leaf)), EACCES),
    ];
    let ops: Vec<String> = as_bob.iter().map(|(o, _)| o.clone()).collect();
    let got = attempt(&bob_leaf, &bob, &ops);
    for ((op, want), (_, errno, detail)) in as_bob.iter().zip(&got) {
        assert_eq!(errno, want, "bob: {op}: {detail}");
    }
    // Alice reads her own totals and leaf, and builds in her leaf.
    let web = alice_leaf.join("web");
    let as_alice = vec![
        format!("list:{}", d(&a)),
        format!("read:{}/cpu.stat", d(&a)),
        format!("read:{}/cgroup.procs", d(&alice_leaf)),
        format!("mkdir:{}", d(&web)),
        format!("join:{}", d(&web)),
        format!("join:{}", d(&alice_leaf)),
        format!("rmdir:{}", d(&web)),
    ];
    for (op, errno, detail) in attempt(&alice_leaf, &alice, &as_alice) {
        assert_eq!(errno, 0, "alice: {op}: {detail}");
    }
}

fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| 1 + walk_count(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}
