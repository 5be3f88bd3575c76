//! The PAM session life cycle through real libpam on the real cgroup2 mount (issue: core).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use pam_cgroup_tests::support::{
    require_root, run_session, run_session_via, SessionOptions, TestGroup, TestSetup, TestTree,
    TestUser,
};

const PAM_SUCCESS: i32 = 0;

fn owner(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .uid()
}

/// The kernel path (as in /proc/PID/cgroup) of a directory under the mount.
pub(crate) fn kernel_path(setup: &TestSetup, dir: &Path) -> String {
    format!(
        "/{}",
        dir.strip_prefix(&setup.tree.mount_point).unwrap().display()
    )
}

#[test]
fn session_lands_in_its_leaf_child_inherits_and_close_moves_nobody() {
    require_root();
    let setup = TestSetup::new("[limits]\n\"memory.max\" = \"1G\"\n", "debug");
    let alice = TestUser::new("pca");
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    let leaf = format!(
        "{}/session-{}/login",
        kernel_path(&setup, &setup.tree.user(&alice.name)),
        r.pid
    );
    assert_eq!(r.cgroup_after_open, leaf, "{r:?}");
    assert_eq!(
        r.child_cgroup().as_deref(),
        Some(leaf.as_str()),
        "child inherits"
    );
    assert_eq!(r.close_rc, Some(PAM_SUCCESS));
    // Close migrates nobody: the process stays in its leaf until it exits.
    assert_eq!(r.cgroup_after_close, leaf, "still in its leaf after close");
    assert!(
        r.syslog_text().contains(&format!(
            "user {}: session closed, leaf {}{leaf}: no longer counted as open; removed once its processes exit",
            alice.name,
            setup.tree.mount_point.display()
        )),
        "{:?}",
        r.syslog
    );
    // The driver has exited: the leaf is empty, unmarked, and gone at the next reaping.
    let session = setup.tree.path_of(&leaf);
    let session = session.parent().unwrap();
    let events = std::fs::read_to_string(session.join("cgroup.events"))
        .unwrap_or_else(|e| panic!("{}: {e}", session.display()));
    assert!(events.contains("populated 0"), "{events}");
    let path = std::ffi::CString::new(session.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: both strings are NUL-terminated; a null buffer of size 0 asks for the size.
    let rc = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"trusted.pam_cgroup.session".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    assert_eq!(
        (rc, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::ENODATA)),
        "the mark is gone at close"
    );
    setup.gc();
    assert!(
        setup.tree.session_leaves(&alice.name).is_empty(),
        "empty leaf reaped"
    );
    assert!(
        setup.tree.user(&alice.name).is_dir(),
        "the user cgroup stays (it holds limits)"
    );
}

/// Every cgroup.procs file the driver (and its child) opened for writing, from an strace log.
fn procs_writes(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("openat(") && l.contains("cgroup.procs\""))
        .filter(|l| l.contains("O_WRONLY") || l.contains("O_RDWR"))
        .map(str::to_string)
        .collect()
}

/// One session under strace: the log of its openat calls.
fn strace_session(setup: &TestSetup, user: &str) -> (SessionReportJson, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.log");
    let mut cmd = Command::new("strace");
    // -y: each descriptor with its path, so a write through a directory fd names its cgroup.
    cmd.args(["-f", "-qq", "-y", "-e", "trace=openat", "-o"])
        .arg(&log);
    cmd.arg(pam_cgroup_tests::support::driver::driver());
    let out = cmd
        .arg("--confdir")
        .arg(setup.pam_dir())
        .args(["--service", "pamcgroup-test", "--user", user])
        .output()
        .unwrap_or_else(|e| panic!("strace is needed for this test (apt install strace): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: SessionReportJson = serde_json::from_slice(&out.stdout).unwrap();
    (report, std::fs::read_to_string(&log).unwrap())
}

type SessionReportJson = serde_json::Value;

#[test]
fn close_writes_no_cgroup_procs_and_the_daemon_or_gc_reaps_the_leaf() {
    require_root();
    let setup = TestSetup::new("", "");
    let alice = TestUser::new("pca");
    let (r, log) = strace_session(&setup, &alice.name);
    assert_eq!(r["open_rc"], 0, "{r}");
    assert_eq!(r["close_rc"], 0, "{r}");
    // One migration in the whole session: open's, into the new leaf.
    let writes = procs_writes(&log);
    assert_eq!(
        writes.len(),
        1,
        "cgroup.procs opened for writing: {writes:#?}"
    );
    assert!(
        writes[0].contains("/session-") && writes[0].contains("/login/cgroup.procs"),
        "{writes:#?}"
    );
    assert_eq!(r["cgroup_after_close"], r["cgroup_after_open"], "{r}");
    setup.gc();
    assert!(setup.tree.session_leaves(&alice.name).is_empty());
}
#[test]
fn a_hostile_process_name_tty_or_rhost_never_splits_or_forges_a_log_line() {
    require_root();
    let setup = TestSetup::new("", "debug");
    let alice = TestUser::new("pca");
    // The customer starts the PAM program through a link it named: that name is the
    // process's comm, which the module uses as the syslog tag.
    let dir = tempfile::Builder::new()
        .prefix("pct-comm-")
        .tempdir()
        .unwrap();
    let forged = "x\nsshd[1]: ok";
    let link = dir.path().join(forged);
    std::os::unix::fs::symlink(pam_cgroup_tests::support::driver::driver(), &link).unwrap();
    let r = run_session_via(
        &link,
        &setup.pam_dir(),
        &alice.name,
        &SessionOptions {
            tty: Some("pts/0\nsshd[1]: tty".to_string()),
            rhost: Some("h\nsshd[1]: rhost".to_string()),
            ..SessionOptions::default()
        },
    );
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    // Only the module's lines: libpam's own (through glibc's syslog) carry argv[0] as their
    // tag, which is outside the module's reach.
    let ours: Vec<&String> = r
        .syslog
        .iter()
        .filter(|l| l.contains("pam_cgroup("))
        .collect();
    assert!(!ours.is_empty(), "debug logs the session: {r:?}");
    for line in ours {
        let body = line.strip_suffix('\n').unwrap_or(line);
        assert!(!body.contains('\n'), "a raw newline in {line:?}");
        assert!(!line.contains("sshd[1]: ok"), "a forged tag in {line:?}");
        // One tag, then the module's own prefix.
        assert!(
            line.contains("x\\x0asshd\\x5b1\\x5d\\x3a\\x20ok["),
            "the tag is not the escaped comm: {line:?}"
        );
        assert!(line.contains("]: pam_cgroup("), "{line:?}");
    }
}

#[test]
fn the_child_runs_as_the_user_inside_the_leaf() {
    require_root();
    let setup = TestSetup::new("", "");
    let alice = TestUser::new("pca");
    let r = run_session(
        &setup.pam_dir(),
        &alice.name,
        &SessionOptions {
            as_user: true,
            command: vec![
                "sh".into(),
                "-c".into(),
                "id -u; grep ^0:: /proc/self/cgroup".into(),
            ],
            ..SessionOptions::default()
        },
    );
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    let mut lines = r.child_stdout.lines();
    assert_eq!(lines.next(), Some(alice.uid.to_string().as_str()), "{r:?}");
    assert_eq!(
        lines.next().and_then(|l| l.strip_prefix("0::")),
        Some(r.cgroup_after_open.as_str())
    );
}

#[test]
fn the_user_cgroup_is_roots_and_only_the_session_leaf_is_delegated() {
    use std::os::unix::fs::MetadataExt;
    require_root();
    let setup = TestSetup::new("", "");
    setup.write_config_with_tree("max_descendants = 77\nmax_depth = 3\n", "");
    let alice = TestUser::new("pca");
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::no_close());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    let user_dir = setup.tree.user(&alice.name);
    let login = setup.tree.path_of(&r.cgroup_after_open);
    let leaf = login.parent().unwrap().to_path_buf();
    assert_eq!(leaf.parent(), Some(user_dir.as_path()));
    // The session's own (root) process sits in login/, root's: the leaf itself holds none,
    // so the customer can give its processes cgroups of their own and enable controllers.
    assert_eq!(login.file_name().unwrap(), "login");
    let lm = std::fs::metadata(&login).unwrap();
    assert_eq!((lm.uid(), lm.mode() & 0o7777), (0, 0o755));
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    // users/ is traversable, not listable; users/<user> is root's, readable by the user's own
    // (private) group; the leaf is the user's alone.
    assert_eq!(
        (
            meta(&setup.tree.users()).uid(),
            meta(&setup.tree.users()).mode() & 0o7777
        ),
        (0, 0o711)
    );
    let u = meta(&user_dir);
    assert_eq!((u.uid(), u.gid(), u.mode() & 0o7777), (0, alice.gid, 0o750));
    let l = meta(&leaf);
    assert_eq!(
        (l.uid(), l.gid(), l.mode() & 0o7777),
        (alice.uid, alice.gid, 0o700)
    );
    let delegated: Vec<String> = std::fs::read_to_string("/sys/kernel/cgroup/delegate")
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    for (dir, delegated_here) in [(&user_dir, false), (&leaf, true)] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                continue;
            }
            let expected = if delegated_here && delegated.contains(&name) {
                alice.uid
            } else {
                0
            };
            assert_eq!(owner(&entry.path()), expected, "{}/{name}", dir.display());
        }
    }
    let read = |p: &Path| std::fs::read_to_string(p).unwrap().trim().to_string();
    // The customer's budget is per leaf; the user cgroup's count is never capped (a count
    // there could be used up by the customer's own cgroups and starve the next login).
    assert_eq!(read(&leaf.join("cgroup.max.descendants")), "77");
    assert_eq!(read(&leaf.join("cgroup.max.depth")), "3");
    assert_eq!(read(&user_dir.join("cgroup.max.descendants")), "max");
    assert_eq!(read(&user_dir.join("cgroup.max.depth")), "5");
    // The tree above the user stays root's.
    assert_eq!(owner(&setup.tree.users()), 0);
    assert_eq!(owner(&setup.tree.root), 0);
}

#[test]
fn root_is_untouched_even_with_a_broken_config_and_on_error_closed() {
    require_root();
    let setup = TestSetup::new("[limits]\n\"pids.max\" = 0\n", "on_error=closed");
    let r = run_session(&setup.pam_dir(), "root", &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert_eq!(r.cgroup_after_open, r.cgroup_before);
    assert!(!setup.tree.user("root").exists());
}

#[test]
fn exempt_users_groups_and_low_uids_are_untouched() {
    require_root();
    let admins = TestGroup::new("pcg");
    let listed = TestUser::new("pcl");
    let in_group = TestUser::with_groups("pcm", &[&admins]);
    let setup = TestSetup::new(
        &format!(
            "[policy]\non_error = \"closed\"\nexempt_users = [\"root\", \"{}\"]\nexempt_groups = [\"{}\"]\n",
            listed.name, admins.name
        ),
        "",
    );
    for user in [&listed.name, &in_group.name] {
        let r = run_session(&setup.pam_dir(), user, &SessionOptions::default());
        assert_eq!(r.open_rc, PAM_SUCCESS, "{user}: {r:?}");
        assert_eq!(r.cgroup_after_open, r.cgroup_before, "{user} untouched");
    }
    // min_uid above the test users' uids: not confined either.
    let low = TestSetup::new("[policy]\nmin_uid = 60000\n", "");
    let r = run_session(&low.pam_dir(), &listed.name, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS);
    assert_eq!(r.cgroup_after_open, r.cgroup_before);
    assert!(!low.tree.users().exists() || low.tree.session_leaves(&listed.name).is_empty());
}

const HOSTILE: &[&str] = &[
    "..",
    ".",
    "../../etc",
    "a/b",
    "/root",
    "x\ny",
    "-rf",
    "cgroup.procs",
    "al\u{0456}ce",
    " root",
    "root ",
    "",
];

#[test]
fn unknown_and_hostile_names_are_refused_and_create_nothing() {
    require_root();
    let setup = TestSetup::new("[policy]\non_error = \"closed\"\n", "");
    // A name NSS does resolve, that would be a cgroupfs interface file under users/: only the
    // name check stands between it and the tree (for the others NSS would refuse as well).
    let resolvable = TestUser::new("cgroup.");
    let mut names: Vec<&str> = HOSTILE.to_vec();
    names.push(&resolvable.name);
    names.push("pcnosuchuser");
    for name in &names {
        let r = run_session(&setup.pam_dir(), name, &SessionOptions::default());
        assert_ne!(r.open_rc, PAM_SUCCESS, "{name:?} was let in: {r:?}");
        assert_eq!(r.cgroup_after_open, r.cgroup_before);
        assert!(
            r.syslog_text().contains("pam_cgroup("),
            "{name:?}: the refusal is logged: {r:?}"
        );
        if *name != "pcnosuchuser" {
            assert!(
                r.syslog_text().contains("invalid user name"),
                "{name:?}: refused by the name check, not by NSS: {r:?}"
            );
        }
    }
    // Nothing was created: not the tree, not anything beside it.
    assert!(
        !setup.tree.root.exists(),
        "tree root created for refused users"
    );
    for stray in ["etc", "root", "b", "x"] {
        assert!(
            !setup.tree.mount_point.join(stray).exists(),
            "{stray} created"
        );
    }
    // With on_error=open the same names get in, unconfined, and nothing is created either.
    let open = TestSetup::new("", "on_error=open");
    for name in &names {
        let r = run_session(&open.pam_dir(), name, &SessionOptions::default());
        assert_eq!(r.open_rc, PAM_SUCCESS, "{name:?}: {r:?}");
        assert_eq!(r.cgroup_after_open, r.cgroup_before);
    }
    assert!(!open.tree.root.exists());
}

#[test]
fn broken_config_open_logs_file_line_key_and_closed_refuses() {
    require_root();
    let alice = TestUser::new("pca");
    let body = "[limits]\n\"memory.max\" = \"1G\"\n\"pids.max\" = 0\n";
    let setup = TestSetup::new(body, "");
    // Line 1-2 are the [tree] header and root, so pids.max is on line 5.
    let needle = format!("{}:5:14: limits.pids.max", setup.config_path().display());
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS, "on_error defaults to open: {r:?}");
    assert_eq!(r.cgroup_after_open, r.cgroup_before, "unconfined");
    assert!(
        r.syslog_text().contains(&needle),
        "{needle} not in {:?}",
        r.syslog
    );
    assert!(r.syslog_text().contains("on_error=open"), "{:?}", r.syslog);

    setup.write_pam_stack(&format!(
        "session required {} config={} on_error=closed\n",
        pam_cgroup_tests::support::pamconf::module_path().display(),
        setup.config_path().display()
    ));
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_ne!(r.open_rc, PAM_SUCCESS, "on_error=closed refuses: {r:?}");
    assert!(r.syslog_text().contains(&needle), "{:?}", r.syslog);
    assert!(!setup.tree.root.exists());
}

#[test]
fn config_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let alice = TestUser::new("pca");
    let setup = TestSetup::new("[policy]\non_error = \"closed\"\n", "");
    std::fs::set_permissions(setup.config_path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    // Untrusted file: its on_error is not read either; the default (open) applies.
    assert_eq!(r.open_rc, PAM_SUCCESS);
    assert_eq!(r.cgroup_after_open, r.cgroup_before);
    assert!(
        r.syslog_text().contains("writable by group or others"),
        "{:?}",
        r.syslog
    );
}

#[test]
fn missing_controllers_are_reported_once_and_never_fail_the_login() {
    require_root();
    let alice = TestUser::new("pca");
    let setup = TestSetup::new(
        "[policy]\non_error = \"closed\"\n[limits]\n\"memory.max\" = \"1G\"\n\"pids.max\" = 100\n",
        "",
    );
    // On a host whose kernel offers memory and pids, a process held in the tree's root keeps
    // them from being enabled below it (cgroup v2 gives controllers to children only of a
    // cgroup without processes), so the limits cannot be applied there either; on a host that
    // offers neither, they are missing at the mount. Either way the login must go on.
    std::fs::create_dir(&setup.tree.root).unwrap();
    let holder = crate::events::Sleeper(Command::new("sleep").arg("300").spawn().unwrap());
    std::fs::write(
        setup.tree.root.join("cgroup.procs"),
        format!("{}\n", holder.pid()),
    )
    .unwrap();
    let first = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_eq!(first.open_rc, PAM_SUCCESS, "{first:?}");
    assert!(first.cgroup_after_open.contains("/session-"));
    assert!(
        first.syslog_text().contains("not applied: controllers"),
        "{:?}",
        first.syslog
    );
    let second = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_eq!(second.open_rc, PAM_SUCCESS);
    assert!(
        !second.syslog_text().contains("not applied"),
        "reported once: {:?}",
        second.syslog
    );
}

#[test]
fn profiles_and_user_files_resolve_through_nss_groups() {
    require_root();
    let plan = TestGroup::new("pcp");
    let alice = TestUser::with_groups("pca", &[&plan]);
    let setup = TestSetup::new(
        &format!(
            "[policy]\non_error = \"closed\"\n[profiles.pro]\n\"pids.max\" = 300\n[groups]\n{} = \"pro\"\n",
            plan.name
        ),
        "",
    );
    setup.write_user_file(&alice.name, "\"memory.max\" = \"2G\"\n");
    let out = Command::new(cgroupctl())
        .args(["--config"])
        .arg(setup.config_path())
        .args(["check", "--json", "--user", &alice.name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["user"]["profile"], "pro");
    let limits = v["user"]["limits"].as_array().unwrap();
    let find = |k: &str| limits.iter().find(|l| l["key"] == k).unwrap().clone();
    assert_eq!(find("pids.max")["value"], "300");
    assert_eq!(
        find("pids.max")["source"],
        format!("profile pro (group {})", plan.name)
    );
    assert_eq!(find("memory.max")["value"], "2147483648");
    assert_eq!(find("memory.max")["source"], "user file");
    // And a login with that config opens fine.
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
}

#[test]
fn a_symlinked_user_file_is_refused() {
    require_root();
    let alice = TestUser::new("pca");
    let setup = TestSetup::new("[policy]\non_error = \"closed\"\n", "");
    std::os::unix::fs::symlink(
        "/etc/passwd",
        setup.users_dir().join(format!("{}.toml", alice.name)),
    )
    .unwrap();
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_ne!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert!(r.syslog_text().contains("symbolic link"), "{:?}", r.syslog);
}

#[test]
fn exempt_login_from_inside_a_fence_leaves_it_and_stays_out_until_it_exits() {
    require_root();
    let alice = TestUser::new("pca");
    let setup = TestSetup::new("", "");
    // Alice's session first, so her cgroup exists; then a "su -" to root from inside it.
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::no_close());
    assert_eq!(r.open_rc, PAM_SUCCESS);
    let alice_leaf = setup.tree.path_of(&r.cgroup_after_open);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} --confdir {} --service pamcgroup-test --user root",
            alice_leaf.display(),
            pam_cgroup_tests::support::driver::driver().display(),
            setup.pam_dir().display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root_session: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let before = root_session["cgroup_before"].as_str().unwrap();
    let during = root_session["cgroup_after_open"].as_str().unwrap();
    let after = root_session["cgroup_after_close"].as_str().unwrap();
    assert_eq!(before, r.cgroup_after_open);
    assert!(
        during.starts_with(&kernel_path(
            &setup,
            &setup.tree.root.join("unconfined/session-")
        )),
        "root's session left alice's fence: {during}"
    );
    // Close moves nobody: su exits from the unconfined leaf, never back into the fence.
    assert_eq!(after, during, "still unconfined after close");
    setup.gc();
    let unconfined = setup.tree.root.join("unconfined");
    let leftover: Vec<_> = std::fs::read_dir(&unconfined)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .collect();
    assert!(leftover.is_empty(), "unconfined leaf reaped once empty");
}

fn concurrent(setup: &TestSetup, users: &[String], sessions_per_user: usize) {
    let driver = pam_cgroup_tests::support::driver::driver();
    let mut children = Vec::new();
    for user in users {
        for _ in 0..sessions_per_user {
            children.push(
                Command::new(&driver)
                    .arg("--confdir")
                    .arg(setup.pam_dir())
                    .args([
                        "--service",
                        "pamcgroup-test",
                        "--user",
                        user,
                        "--hold-ms",
                        "300",
                    ])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
    }
    let mut leaves = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
                continue;
            }
        };
        if v["open_rc"] != 0 || v["close_rc"] != 0 {
            failures.push(v.to_string());
        }
        let leaf = v["cgroup_after_open"].as_str().unwrap_or("").to_string();
        if !leaf.contains("/session-") || !leaves.insert(leaf.clone()) {
            failures.push(format!("not in a unique leaf: {leaf}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures: {failures:#?}",
        failures.len()
    );
    setup.gc();
    for user in users {
        assert!(
            setup.tree.session_leaves(user).is_empty(),
            "leaf left for {user}"
        );
    }
}

#[test]
fn fifty_concurrent_sessions_of_one_user() {
    require_root();
    let alice = TestUser::new("pca");
    let setup = TestSetup::new(
        "[policy]\non_error = \"closed\"\n[limits]\n\"pids.max\" = 500\n",
        "",
    );
    concurrent(&setup, std::slice::from_ref(&alice.name), 50);
}

#[test]
fn fifty_sessions_of_fifty_users() {
    require_root();
    let users: Vec<TestUser> = (0..50).map(|_| TestUser::new("pcu")).collect();
    let names: Vec<String> = users.iter().map(|u| u.name.clone()).collect();
    let setup = TestSetup::new("[policy]\non_error = \"closed\"\n", "");
    concurrent(&setup, &names, 1);
}

#[test]
fn a_leaf_still_holding_a_daemon_stays_after_close() {
    require_root();
    let alice = TestUser::new("pca");
    let setup = TestSetup::new("", "");
    // The child leaves a background process behind (nohup-style) in the session leaf.
    let r = run_session(
        &setup.pam_dir(),
        &alice.name,
        &SessionOptions {
            command: vec![
                "sh".into(),
                "-c".into(),
                "sleep 30 >/dev/null 2>&1 & echo $!".into(),
            ],
            ..SessionOptions::default()
        },
    );
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    let daemon: i32 = r.child_stdout.trim().parse().unwrap();
    let leaves = setup.tree.session_leaves(&alice.name);
    // Read while the daemon lives: it sits where the session's processes start, login/.
    let procs = leaves
        .first()
        .and_then(|l| std::fs::read_to_string(l.join("login/cgroup.procs")).ok())
        .unwrap_or_default();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert_eq!(leaves.len(), 1, "the busy leaf stays: {leaves:?}");
    assert!(
        procs.lines().any(|p| p.trim() == daemon.to_string()),
        "the daemon {daemon} is not in the kept leaf's login/: {procs:?}"
    );
}

fn cgroupctl() -> std::path::PathBuf {
    pam_cgroup_tests::support::driver::driver().with_file_name("cgroupctl")
}

#[test]
fn test_tree_guard_removes_everything() {
    require_root();
    let tree = TestTree::new();
    std::fs::create_dir_all(tree.root.join("users/x/session-1")).unwrap();
    let root = tree.root.clone();
    drop(tree);
    assert!(!root.exists());
}

#[test]
fn a_config_change_reaches_the_next_login_and_an_unchanged_one_writes_nothing() {
    require_root();
    let alice = TestUser::new("pca");
    let setup = TestSetup::new("", "");
    let write = |depth: u32| setup.write_config_with_tree(&format!("max_depth = {depth}\n"), "");
    let caps = || {
        std::fs::read_to_string(setup.tree.user(&alice.name).join("cgroup.max.depth"))
            .unwrap()
            .trim()
            .to_string()
    };
    write(7);
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert_eq!(caps(), "9");
    // An admin writes the file by hand; an unchanged config leaves it alone (the stamp says
    // the config's values were applied already)...
    std::fs::write(setup.tree.user(&alice.name).join("cgroup.max.depth"), "6").unwrap();
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS);
    assert_eq!(caps(), "6");
    // ...and a changed config is applied at the next login.
    write(8);
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS);
    assert_eq!(caps(), "10");
}

/// Opens (and closes, unless `no_close`) a session of the user manager's PAM service,
/// `systemd-user`, as systemd does for user@UID.service (the stack includes common-session).
fn user_manager_session(setup: &TestSetup, user: &str, no_close: bool) -> serde_json::Value {
    let stack = setup.pam_dir().join("systemd-user");
    if !stack.exists() {
        std::fs::copy(setup.pam_dir().join("pamcgroup-test"), &stack).unwrap();
    }
    let mut cmd = Command::new(pam_cgroup_tests::support::driver::driver());
    cmd.arg("--confdir")
        .arg(setup.pam_dir())
        .args(["--service", "systemd-user", "--capture-syslog"])
        .arg(format!("--user={user}"));
    if no_close {
        cmd.arg("--no-close");
    }
    let out = cmd.output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_user_manager_runs_in_a_delegated_leaf_of_the_fence_by_default() {
    require_root();
    let alice = TestUser::new("pca");
    let setup = TestSetup::new("", "");
    let r = user_manager_session(&setup, &alice.name, true);
    assert_eq!(r["open_rc"], 0, "{r}");
    // The process itself is in the leaf (no login/): systemd --user takes the cgroup it
    // starts in as the root of its own tree.
    let cgroup = r["cgroup_after_open"].as_str().unwrap();
    let leaf = setup.tree.path_of(cgroup);
    assert_eq!(
        leaf.parent().unwrap(),
        setup.tree.user(&alice.name),
        "directly below users/<user>: {r}"
    );
    let name = leaf.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("manager-"), "{r}");
    let meta = std::fs::metadata(&leaf).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (alice.uid, alice.gid),
        "delegated"
    );
    for f in ["cgroup.procs", "cgroup.subtree_control"] {
        assert_eq!(
            std::fs::metadata(leaf.join(f)).unwrap().uid(),
            alice.uid,
            "{f} is the manager's"
        );
    }
    for f in ["cgroup.max.descendants", "cgroup.max.depth"] {
        assert_eq!(
            std::fs::metadata(leaf.join(f)).unwrap().uid(),
            0,
            "{f} stays root's"
        );
    }
    // Its close (systemd's (sd-pam), as the user by then) leaves the leaf to the daemon and
    // logs no error.
    let closed = user_manager_session(&setup, &alice.name, false);
    assert_eq!(closed["close_rc"], 0, "{closed}");
    let log = closed["syslog"].to_string();
    assert!(!log.contains("close:"), "close logged a failure: {log}");
    // The user manager is no login: `cgroupctl sessions` does not list it.
    let sessions = crate::cgroupctl::ctl_json(&setup, &["sessions", &alice.name, "--json"]);
    assert_eq!(sessions.as_array().map(Vec::len), Some(0), "{sessions}");
}

#[test]
fn the_user_manager_is_refused_by_policy_and_whenever_it_cannot_be_fenced() {
    require_root();
    let alice = TestUser::new("pcr");
    // A broken config with on_error = "open": a login may be let in, a user manager never.
    let setup = TestSetup::new(
        "[policy]\non_error = \"open\"\n[limits]\n\"memory.max\" = \"1Gx\"\n",
        "",
    );
    let r = user_manager_session(&setup, &alice.name, false);
    assert_ne!(
        r["open_rc"], 0,
        "a manager that cannot be fenced is not started: {r}"
    );
    assert_eq!(r["cgroup_after_open"], r["cgroup_before"], "{r}");
    setup.write_config("[policy]\nuser_manager = \"refuse\"\n");
    let r = user_manager_session(&setup, &alice.name, false);
    assert_ne!(r["open_rc"], 0, "refused by policy: {r}");
    assert_eq!(r["cgroup_after_open"], r["cgroup_before"], "{r}");
    // The explicit choice leaves it where systemd put it.
    setup.write_config("[policy]\nuser_manager = \"unconfined\"\n");
    let r = user_manager_session(&setup, &alice.name, false);
    assert_eq!(r["open_rc"], 0, "{r}");
    assert_eq!(r["cgroup_after_open"], r["cgroup_before"], "{r}");
}

/// The kernel's list of delegated files is kept on the user cgroup for the next login (a
/// `trusted.` attribute): the customer cannot write it, and a value that is not a plain list
/// with the required files is replaced by the kernel's at the next login.
#[test]
fn the_delegated_files_list_kept_on_the_user_cgroup_is_the_kernels_and_root_only() {
    require_root();
    let setup = TestSetup::new("", "");
    let alice = TestUser::new("pca");
    let kernel: Vec<String> = std::fs::read_to_string("/sys/kernel/cgroup/delegate")
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    let user_dir = setup.tree.user(&alice.name);
    let xattr = cgroup_core::tree::DELEGATE_XATTR;
    let python = |script: &str, args: &[&str]| {
        Command::new("/usr/bin/python3")
            .args(["-c", script])
            .args(args)
            .output()
            .unwrap()
    };
    let get = "import os, sys; print(os.getxattr(sys.argv[1], sys.argv[2]).decode())";
    let kept = |dir: &Path| {
        let out = python(get, &[dir.to_str().unwrap(), xattr]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(kept(&user_dir), kernel);
    // The customer cannot write it (trusted.* needs CAP_SYS_ADMIN).
    let set = "import os, sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())";
    let forged = alice
        .command("/usr/bin/python3")
        .args(["-c", set, user_dir.to_str().unwrap(), xattr])
        .arg("cgroup.procs cgroup.threads cgroup.subtree_control cgroup.max.depth")
        .output()
        .unwrap();
    assert!(
        !forged.status.success(),
        "the customer wrote it: {forged:?}"
    );
    assert_eq!(kept(&user_dir), kernel);
    // A damaged value is not used: the next login delegates the kernel's list and keeps it.
    let damaged = python(
        set,
        &[user_dir.to_str().unwrap(), xattr, "cgroup.procs ../x"],
    );
    assert!(damaged.status.success(), "{damaged:?}");
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::no_close());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert_eq!(kept(&user_dir), kernel);
    let leaf = setup.tree.path_of(&r.cgroup_after_open);
    let leaf = leaf.parent().unwrap();
    for name in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
        assert_eq!(owner(&leaf.join(name)), alice.uid, "{name}");
    }
    assert_eq!(owner(&leaf.join("cgroup.max.depth")), 0);
}

/// `su -` to root from a shell the customer moved into a sub-cgroup it named in bytes that are
/// not UTF-8: /proc/PID/cgroup once failed to decode there, the move out of the fence failed,
/// and root's shell stayed in the customer's fence.
#[test]
fn exempt_login_from_a_sub_cgroup_named_in_odd_bytes_still_leaves_the_fence() {
    use std::os::unix::ffi::OsStrExt;
    require_root();
    let alice = TestUser::new("pca");
    let setup = TestSetup::new("", "");
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::no_close());
    assert_eq!(r.open_rc, PAM_SUCCESS);
    let alice_leaf = setup.tree.path_of(&r.cgroup_after_open);
    let alice_leaf = alice_leaf.parent().unwrap_or(&alice_leaf).to_path_buf();
    let odd = alice_leaf.join(std::ffi::OsStr::from_bytes(b"odd-\xff\xfe"));
    let o = alice.command("mkdir").arg(&odd).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = Command::new("sh")
        .arg("-c")
        .arg("echo $$ > \"$0/cgroup.procs\" && exec \"$1\" --confdir \"$2\" --service pamcgroup-test --user root")
        .arg(&odd)
        .arg(pam_cgroup_tests::support::driver::driver())
        .arg(setup.pam_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root_session: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let during = root_session["cgroup_after_open"].as_str().unwrap();
    assert!(
        during.starts_with(&kernel_path(
            &setup,
            &setup.tree.root.join("unconfined/session-")
        )),
        "root's session left alice's fence: {root_session}"
    );
}
