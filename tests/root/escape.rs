//! Escape attempts by unprivileged users from inside their own fence (issue: hardening). Each
//! attempt runs as the confined user, in its session leaf, and must be refused with the
//! expected errno. Socket escapes (other users' private addresses) are in `escape_ip`.

use std::path::Path;
use std::process::Command;

use pam_cgroup_tests::support::{require_root, run_session, SessionOptions, TestSetup, TestUser};

const EACCES: i32 = libc::EACCES;
const EPERM: i32 = libc::EPERM;
const EAGAIN: i32 = libc::EAGAIN;
const ENOENT: i32 = libc::ENOENT;

fn probe() -> std::path::PathBuf {
    pam_cgroup_tests::support::driver::driver().with_file_name("escape-probe")
}

/// Runs ops as `user` inside `cgroup`; returns (op, errno, detail) for each.
fn attempt(cgroup: &Path, user: &TestUser, ops: &[String]) -> Vec<(String, i32, String)> {
    let out = Command::new(probe())
        .arg("--cgroup")
        .arg(cgroup)
        .args([
            "--uid",
            &user.uid.to_string(),
            "--gid",
            &user.gid.to_string(),
        ])
        .args(ops)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.iter()
        .map(|a| {
            (
                a["op"].as_str().unwrap().to_string(),
                a["errno"].as_i64().unwrap() as i32,
                a["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn leaf_of(setup: &TestSetup, user: &TestUser) -> std::path::PathBuf {
    let r = run_session(&setup.pam_dir(), &user.name, &SessionOptions::no_close());
    assert_eq!(r.open_rc, 0, "{r:?}");
    setup.tree.path_of(&r.cgroup_after_open)
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
        (format!("symlink:/etc/passwd={}/link", d(&a)), EPERM),
        (
            format!("mknod:{}/{}.toml", d(&setup.users_dir()), alice.name),
            EACCES,
        ),
        (format!("mknod:{}/evil", d(&a)), EACCES),
        // The subtree caps: depth 3 below the user cgroup (d0/d1/d2 made, d3 refused), then 6
        // descendants in all (the session leaf and d0-d2 leave room for two more).
        (format!("mkdirs:{}=5", d(&a)), EAGAIN),
        (format!("mkwide:{}=10", d(&a)), EAGAIN),
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
    let count = walk_count(&a);
    assert!(count <= 6, "{count} descendants under {}", a.display());
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
