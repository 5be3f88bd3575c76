//! Issue 13: the operator's levers through real libpam and the built cgroupctl: sessions.max
//! under 50 concurrent logins, suspend/resume with the account and session parts, kill of one
//! session, `cgroupctl sessions`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pam_cgroup_tests::support::cgroup::populated;
use pam_cgroup_tests::support::pamconf::module_path;
use pam_cgroup_tests::support::{
    parse_report, require_root, run_session, session_command, wait_until, SessionOptions,
    SessionReport, TestSetup, TestUser,
};

use crate::cgroupctl::{ctl, ctl_json, ctl_ok, describe, session_with_sleeps};

const PAM_SUCCESS: i32 = 0;
const PAM_PERM_DENIED: i32 = 6;

/// Kills every process left in a user's cgroup on drop (the nohup leftovers of a test), so
/// that nothing outlives the test when the tree is removed.
pub struct KillOnDrop(pub PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.join("cgroup.kill").exists() {
            let _ = std::fs::write(self.0.join("cgroup.freeze"), "0");
            if let Err(e) = std::fs::write(self.0.join("cgroup.kill"), "1") {
                eprintln!("cleanup: kill {}: {e}", self.0.display());
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while populated(&self.0) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The per-user lock file of sessions.max (root-only, in /run/pam_cgroup).
        if let Some(name) = self.0.file_name() {
            let _ = std::fs::remove_file(
                Path::new("/run/pam_cgroup")
                    .join(format!("sessions-{}.lock", name.to_string_lossy())),
            );
        }
    }
}

fn events(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default()
}

/// A PAM stack with the account part (as pam-auth-update writes it) and the session part.
fn stack_with_account(setup: &TestSetup) {
    let line = format!(
        "{} config={}",
        module_path().display(),
        setup.config_path().display()
    );
    setup.write_pam_stack(&format!(
        "account [success=ok ignore=ignore module_unknown=ignore default=bad] {line}\n\
         account required pam_permit.so\n\
         session required {line}\n"
    ));
}

/// Spawns a held session: it opens, runs `command`, and stays open until `release` exists.
fn spawn_held(setup: &TestSetup, user: &str, release: &Path, command: &[&str]) -> Child {
    let opts = SessionOptions {
        hold_until: Some(release.to_path_buf()),
        as_user: true,
        command: command.iter().map(|s| s.to_string()).collect(),
        ..SessionOptions::default()
    };
    session_command(&setup.pam_dir(), user, &opts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `n` of `children` have exited (the refused ones), at most `wait`.
fn wait_exited(children: &mut [Child], n: usize, wait: Duration) -> usize {
    let deadline = Instant::now() + wait;
    loop {
        let exited = children
            .iter_mut()
            .map(|c| c.try_wait().unwrap().is_some())
            .filter(|done| *done)
            .count();
        if exited >= n || Instant::now() >= deadline {
            return exited;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn reports(children: Vec<Child>) -> Vec<SessionReport> {
    children
        .into_iter()
        .map(|c| parse_report(&c.wait_with_output().unwrap()))
        .collect()
}

/// The open sessions of a user according to `cgroupctl sessions --json`.
fn open_sessions(setup: &TestSetup, user: &str) -> Vec<serde_json::Value> {
    if !setup.tree.user(user).is_dir() {
        return Vec::new();
    }
    let v = ctl_json(setup, &["sessions", user, "--json"]);
    v.as_array().unwrap().clone()
}

#[test]
fn sessions_max_holds_under_50_concurrent_logins_and_nohup_leftovers_do_not_count() {
    require_root();
    let setup = TestSetup::new("[limits]\n\"sessions.max\" = 10\n", "");
    let alice = TestUser::new("pcm");
    let _kill = KillOnDrop(setup.tree.user(&alice.name));
    let release = setup.dir.path().join("release-1");
    let users_prefix = format!(
        "/{}/",
        setup
            .tree
            .user(&alice.name)
            .strip_prefix(&setup.tree.mount_point)
            .unwrap()
            .display()
    );

    // 50 logins at once; the first one to open also leaves a nohup process behind.
    let nohup = "sleep 600 </dev/null >/dev/null 2>&1 & cat /proc/self/cgroup";
    let mut children: Vec<Child> = (0..50)
        .map(|_| spawn_held(&setup, &alice.name, &release, &["sh", "-c", nohup]))
        .collect();
    let exited = wait_exited(&mut children, 40, Duration::from_secs(120));
    assert_eq!(exited, 40, "40 logins refused and gone, 10 held open");
    assert_eq!(open_sessions(&setup, &alice.name).len(), 10);
    std::fs::write(&release, "").unwrap();
    let all = reports(children);
    let opened: Vec<&SessionReport> = all.iter().filter(|r| r.open_rc == PAM_SUCCESS).collect();
    let refused: Vec<&SessionReport> = all.iter().filter(|r| r.open_rc != PAM_SUCCESS).collect();
    assert_eq!(opened.len(), 10, "exactly 10 open");
    assert_eq!(refused.len(), 40, "40 refused");
    for r in &opened {
        assert!(
            r.cgroup_after_open.starts_with(&users_prefix),
            "confined: {r:?}"
        );
    }
    for r in &refused {
        assert_eq!(r.open_rc, PAM_PERM_DENIED, "{r:?}");
        assert_eq!(r.cgroup_after_open, r.cgroup_before, "0 unconfined: {r:?}");
        assert!(
            r.messages
                .iter()
                .any(|m| m.contains("too many sessions") && m.contains("sessions.max = 10")),
            "the message names the cap: {r:?}"
        );
    }
    // Every session is closed; the nohup processes keep their leaves, which must not count.
    assert!(
        populated(&setup.tree.user(&alice.name)),
        "the nohup leftovers run"
    );
    assert_eq!(open_sessions(&setup, &alice.name).len(), 0);

    let release2 = setup.dir.path().join("release-2");
    let mut again: Vec<Child> = (0..10)
        .map(|_| spawn_held(&setup, &alice.name, &release2, &["true"]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while open_sessions(&setup, &alice.name).len() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(wait_exited(&mut again, 1, Duration::from_millis(10)), 0);
    // The 11th is refused, through the account part as well.
    stack_with_account(&setup);
    let eleventh = run_session(
        &setup.pam_dir(),
        &alice.name,
        &SessionOptions {
            acct: true,
            ..SessionOptions::default()
        },
    );
    assert_eq!(eleventh.acct_rc, Some(PAM_PERM_DENIED), "{eleventh:?}");
    assert!(
        eleventh
            .messages
            .iter()
            .any(|m| m.contains("sessions.max = 10")),
        "{eleventh:?}"
    );
    std::fs::write(&release2, "").unwrap();
    let second = reports(again);
    assert!(
        second.iter().all(|r| r.open_rc == PAM_SUCCESS),
        "10 more succeed after closing: {second:?}"
    );
}

#[test]
fn uncounted_services_are_neither_counted_nor_refused() {
    require_root();
    let setup = TestSetup::new(
        "[limits]\n\"sessions.max\" = 1\n[sessions]\nuncounted_services = [\"pamcgroup-test\"]\n",
        "",
    );
    let bob = TestUser::new("pcm");
    let _kill = KillOnDrop(setup.tree.user(&bob.name));
    let release = setup.dir.path().join("release");
    let mut held: Vec<Child> = (0..3)
        .map(|_| spawn_held(&setup, &bob.name, &release, &["true"]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while setup.tree.session_leaves(&bob.name).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(wait_exited(&mut held, 1, Duration::from_millis(10)), 0);
    std::fs::write(&release, "").unwrap();
    assert!(reports(held).iter().all(|r| r.open_rc == PAM_SUCCESS));
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Returns once a loop like the customer's (as nice), outside any frozen cgroup, has had
/// `ticks` of CPU time: the customer's loop would have had its share meanwhile, had it been
/// allowed to run. (A fixed wait proves nothing on a machine too busy to run either.)
fn a_twin_loop_runs(ticks: u64) {
    let twin = crate::events::Sleeper(
        Command::new("nice")
            .args(["-n", "19", "sh", "-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = cpu_ticks(twin.pid());
    wait_until("the twin loop's CPU time", Duration::from_secs(60), || {
        cpu_ticks(twin.pid()) >= start + ticks
    });
}

/// The pid of a process under `dir` whose command line starts with `prefix` (NUL-separated).
fn find_pid(dir: &Path, prefix: &str) -> Option<u32> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.parse::<u32>().ok()) {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if cmd.starts_with(prefix.as_bytes()) {
                    return Some(pid);
                }
            }
        }
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(e.path());
            }
        }
    }
    None
}

#[test]
fn suspend_freezes_and_refuses_with_the_reason_resume_restores_kill_session_spares_others() {
    require_root();
    let setup = TestSetup::new("", "");
    let carol = TestUser::new("pcs");
    let user_dir = setup.tree.user(&carol.name);
    let _kill = KillOnDrop(user_dir.clone());
    let release = setup.dir.path().join("release");
    // Session 1 runs a busy loop (niced: the machine is shared); session 2 a sleeper.
    let busy = "nice -n 19 sh -c 'while :; do :; done; busy-loop' </dev/null >/dev/null 2>&1 &";
    let mut s1 = spawn_held(&setup, &carol.name, &release, &["sh", "-c", busy]);
    let mut s2 = spawn_held(
        &setup,
        &carol.name,
        &release,
        &["sh", "-c", "sleep 600 </dev/null >/dev/null 2>&1 &"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_sessions(&setup, &carol.name).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let loop_cmdline = "sh\0-c\0while :; do :; done; busy-loop";
    let mut busy_pid = None;
    while busy_pid.is_none() && Instant::now() < deadline {
        busy_pid = find_pid(&user_dir, loop_cmdline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let busy_pid = busy_pid.expect("the busy loop runs");
    let t0 = cpu_ticks(busy_pid);
    wait_until(
        "the loop to run before the suspension",
        Duration::from_secs(30),
        || cpu_ticks(busy_pid) > t0,
    );

    let out = ctl_ok(
        &setup,
        &["suspend", &carol.name, "--reason", "unpaid invoice 2026-11"],
    );
    assert!(out.contains("frozen"), "{out}");
    assert!(
        events(&user_dir).contains("frozen 1"),
        "{}",
        events(&user_dir)
    );
    let frozen_at = cpu_ticks(busy_pid);
    a_twin_loop_runs(10);
    assert_eq!(
        cpu_ticks(busy_pid),
        frozen_at,
        "no CPU time advances while frozen"
    );
    // The reason is the admin's business: another customer, a real unprivileged process with
    // every directory on the way open to it, cannot read carol's user file.
    let user_file = setup
        .config_path()
        .parent()
        .unwrap()
        .join("users")
        .join(format!("{}.toml", carol.name));
    let meta = std::fs::metadata(&user_file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{user_file:?}");
    for dir in user_file.ancestors().skip(1) {
        if dir.starts_with(setup.dir.path()) {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let neighbour = TestUser::new("pcs");
    let peek = neighbour.command("cat").arg(&user_file).output().unwrap();
    let peeked = String::from_utf8_lossy(&peek.stdout);
    assert!(
        !peek.status.success() && !peeked.contains("unpaid"),
        "another customer read the suspension reason: {peeked}"
    );
    // `reload` keeps it (the suspension lives in the user file).
    ctl_ok(&setup, &["reload"]);
    assert!(events(&user_dir).contains("frozen 1"));

    // A login through the account part: refused, the reason in the conversation.
    stack_with_account(&setup);
    let acct = SessionOptions {
        acct: true,
        ..SessionOptions::default()
    };
    let r = run_session(&setup.pam_dir(), &carol.name, &acct);
    assert_eq!(r.acct_rc, Some(PAM_PERM_DENIED), "{r:?}");
    assert_eq!(
        r.messages,
        vec!["account suspended: unpaid invoice 2026-11".to_string()],
        "{r:?}"
    );
    // Root is never refused, suspended users or not.
    let root = run_session(&setup.pam_dir(), "root", &acct);
    assert_eq!(root.acct_rc, Some(PAM_SUCCESS), "{root:?}");
    assert_eq!(root.open_rc, PAM_SUCCESS, "{root:?}");
    // Without the account part, the session part refuses.
    setup.write_pam_stack(&format!(
        "session required {} config={}\n",
        module_path().display(),
        setup.config_path().display()
    ));
    let r = run_session(&setup.pam_dir(), &carol.name, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_PERM_DENIED, "{r:?}");
    assert_eq!(r.cgroup_after_open, r.cgroup_before, "not let in: {r:?}");
    assert!(
        r.messages
            .iter()
            .any(|m| m == "account suspended: unpaid invoice 2026-11"),
        "{r:?}"
    );
    // A broken config is met with the last good one: a typo does not lift the suspension.
    let good = std::fs::read_to_string(setup.config_path()).unwrap();
    stack_with_account(&setup);
    setup.write_config(&format!("{good}\n[limits\n"));
    let r = run_session(&setup.pam_dir(), &carol.name, &acct);
    assert_eq!(r.acct_rc, Some(PAM_PERM_DENIED), "{r:?}");
    setup.write_config(&good);

    // resume: the loop runs again, logins work.
    let out = ctl_ok(&setup, &["resume", &carol.name]);
    assert!(out.contains("thawed"), "{out}");
    assert!(events(&user_dir).contains("frozen 0"));
    let t1 = cpu_ticks(busy_pid);
    wait_until(
        "the loop to run again after resume",
        Duration::from_secs(30),
        || cpu_ticks(busy_pid) > t1,
    );
    let r = run_session(&setup.pam_dir(), &carol.name, &acct);
    assert_eq!(r.acct_rc, Some(PAM_SUCCESS), "{r:?}");
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");

    // kill --session: that session's processes go, the other session stays.
    let sessions = open_sessions(&setup, &carol.name);
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let s1_pid = s1.id();
    let first = sessions
        .iter()
        .find(|s| s["pid"].as_u64() == Some(u64::from(s1_pid)))
        .expect("session 1 listed");
    let id = first["id"].as_str().unwrap();
    let o = ctl(&setup, &["kill", &carol.name, "--session", id]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("0 remaining"),
        "{}",
        describe(&o)
    );
    assert!(s1.wait().unwrap().code().is_none(), "session 1 was killed");
    assert!(is_gone(busy_pid), "its loop is gone");
    let left = open_sessions(&setup, &carol.name);
    assert_eq!(left.len(), 1, "the other session stays: {left:?}");
    assert_eq!(left[0]["pid"].as_u64(), Some(u64::from(s2.id())));
    assert!(s2.try_wait().unwrap().is_none());
    std::fs::write(&release, "").unwrap();
    let r2 = parse_report(&s2.wait_with_output().unwrap());
    assert_eq!(r2.close_rc, Some(PAM_SUCCESS), "{r2:?}");
}

#[test]
fn sessions_lists_service_tty_and_remote_host_root_only() {
    require_root();
    let setup = TestSetup::new("", "");
    let dave = TestUser::new("pcl");
    let _kill = KillOnDrop(setup.tree.user(&dave.name));
    let release = setup.dir.path().join("release");
    let opts = SessionOptions {
        hold_until: Some(release.clone()),
        tty: Some("pts/7".into()),
        rhost: Some("198.51.100.23".into()),
        ..SessionOptions::default()
    };
    let child = session_command(&setup.pam_dir(), &dave.name, &opts)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut listed = Vec::new();
    while listed.is_empty() && Instant::now() < deadline {
        listed = open_sessions(&setup, &dave.name);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(listed.len(), 1, "{listed:?}");
    let s = &listed[0];
    assert_eq!(s["service"], "pamcgroup-test");
    assert_eq!(s["tty"], "pts/7");
    assert_eq!(s["rhost"], "198.51.100.23");
    assert_eq!(s["pid"].as_u64(), Some(u64::from(child.id())));
    assert!(s["processes"].as_u64().unwrap() >= 1);
    // The record is a trusted.* attribute: root sees it on the leaf, the user (who owns the
    // leaf) sees no pam_cgroup attribute at all, whatever its name.
    let leaf = PathBuf::from(s["path"].as_str().unwrap());
    let list_xattrs = "import os, sys; print(' '.join(os.listxattr(sys.argv[1])))";
    let as_root = std::process::Command::new("/usr/bin/python3")
        .args(["-c", list_xattrs])
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(as_root.status.success(), "{as_root:?}");
    let root_sees = String::from_utf8_lossy(&as_root.stdout).into_owned();
    assert!(root_sees.contains("pam_cgroup"), "root sees {root_sees:?}");
    let as_user = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={}", dave.uid),
            &format!("--regid={}", dave.gid),
            "--clear-groups",
            // Debian's, not a python3 first on root's PATH that the user cannot run.
            "/usr/bin/python3",
            "-c",
            list_xattrs,
        ])
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(as_user.status.success(), "{as_user:?}");
    let user_sees = String::from_utf8_lossy(&as_user.stdout).into_owned();
    assert!(
        !user_sees.contains("pam_cgroup"),
        "the user sees {user_sees:?}"
    );
    let text = ctl_ok(&setup, &["sessions"]);
    assert!(
        text.contains("198.51.100.23") && text.contains("pts/7"),
        "{text}"
    );
    std::fs::write(&release, "").unwrap();
    let r = parse_report(&child.wait_with_output().unwrap());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert!(open_sessions(&setup, &dave.name).is_empty());
}

/// The customer moves its process `pid` into the cgroup `dir` (inside its own leaf).
pub fn move_as_user(user: &TestUser, pid: u32, dir: &Path) {
    let o = user
        .command("sh")
        .args(["-c", "echo \"$0\" > \"$1/cgroup.procs\""])
        .arg(pid.to_string())
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "move {pid} to {}: {}",
        dir.display(),
        describe(&o)
    );
}

/// A process gone, or a zombie waiting for whichever process inherited it.
pub fn is_gone(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
    matches!(state.as_deref(), None | Some("Z") | Some("X"))
}

#[test]
fn show_kill_and_sessions_see_processes_in_cgroups_with_children_and_non_utf8_names() {
    use std::os::unix::ffi::OsStrExt;
    require_root();
    let setup = TestSetup::new("", "");
    let dave = TestUser::new("pchid");
    let _kill = KillOnDrop(setup.tree.user(&dave.name));
    let (pids, leaf) = session_with_sleeps(&setup, &dave, 3);
    // The customer's own layout: a process in its session leaf itself (beside login/), one
    // in a sub-cgroup that has an (empty) child, one in a cgroup whose name is not UTF-8.
    let sub = leaf.join("sub");
    let odd = leaf.join(std::ffi::OsStr::from_bytes(b"odd-\xff\xfe"));
    for dir in [sub.join("child"), odd.clone()] {
        let o = dave.command("mkdir").arg("-p").arg(&dir).output().unwrap();
        assert!(
            o.status.success(),
            "mkdir {}: {}",
            dir.display(),
            describe(&o)
        );
    }
    move_as_user(&dave, pids[0], &leaf);
    move_as_user(&dave, pids[1], &sub);
    move_as_user(&dave, pids[2], &odd);

    // show lists all three, in their cgroups.
    let v = ctl_json(&setup, &["show", &dave.name, "--json"]);
    let mut listed: Vec<(String, u64)> = Vec::new();
    for row in v["leaves"].as_array().unwrap() {
        for p in row["processes"].as_array().unwrap() {
            listed.push((
                row["path"].as_str().unwrap().to_string(),
                p["pid"].as_u64().unwrap(),
            ));
        }
    }
    listed.sort();
    let leaf_name = leaf.file_name().unwrap().to_str().unwrap().to_string();
    let mut want = vec![
        (leaf_name.clone(), u64::from(pids[0])),
        (format!("{leaf_name}/sub"), u64::from(pids[1])),
        (format!("{leaf_name}/odd-\\xff\\xfe"), u64::from(pids[2])),
    ];
    want.sort();
    assert_eq!(listed, want, "{v:#}");
    let text = ctl_ok(&setup, &["show", &dave.name]);
    for pid in &pids {
        assert!(
            text.contains(&format!(" {pid} ")),
            "{pid} not shown: {text}"
        );
    }
    assert!(text.contains("odd-\\xff\\xfe"), "{text}");

    // sessions counts them all.
    let sessions = ctl_json(&setup, &["sessions", &dave.name, "--all", "--json"]);
    let mine = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| Some(s["path"].as_str().unwrap()) == leaf.to_str())
        .unwrap_or_else(|| panic!("{sessions:#}"));
    assert_eq!(mine["processes"].as_u64(), Some(3), "{mine:#}");

    // kill with a signal other than KILL reaches every one, and "0 remaining" is true.
    let id = mine["id"].as_str().unwrap();
    let o = ctl(
        &setup,
        &["kill", &dave.name, "--session", id, "--signal", "TERM"],
    );
    assert!(o.status.success(), "{}", describe(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("SIGTERM sent to 3 processes"), "{out}");
    assert!(out.contains("0 remaining"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids.iter().all(|p| is_gone(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in &pids {
        assert!(is_gone(*pid), "{pid} survived the kill that said: {out}");
    }
    assert!(events(&leaf).contains("populated 0"), "{}", events(&leaf));
}

#[test]
fn show_lists_the_processes_of_a_threaded_sub_cgroup_the_customer_made() {
    require_root();
    let setup = TestSetup::new("", "");
    let erin = TestUser::new("pcthr");
    let _kill = KillOnDrop(setup.tree.user(&erin.name));
    let (pids, leaf) = session_with_sleeps(&setup, &erin, 2);
    // The customer makes app/t threaded (app becomes its threaded domain) and puts one
    // process in each: cgroup.procs of app/t now answers EOPNOTSUPP.
    let app = leaf.join("app");
    let threaded = app.join("t");
    let o = erin
        .command("mkdir")
        .arg("-p")
        .arg(&threaded)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let o = erin
        .command("sh")
        .args(["-c", "echo threaded > \"$0/cgroup.type\""])
        .arg(&threaded)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    move_as_user(&erin, pids[0], &threaded);
    move_as_user(&erin, pids[1], &app);
    assert_eq!(
        std::fs::read_to_string(threaded.join("cgroup.type"))
            .unwrap()
            .trim(),
        "threaded"
    );

    let v = ctl_json(&setup, &["show", &erin.name, "--json"]);
    let leaf_name = leaf.file_name().unwrap().to_str().unwrap();
    let pids_of = |rel: &str| -> Vec<u64> {
        v["leaves"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str() == Some(rel))
            .flat_map(|r| r["processes"].as_array().unwrap().clone())
            .map(|p| p["pid"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        pids_of(&format!("{leaf_name}/app/t")),
        vec![u64::from(pids[0])],
        "{v:#}"
    );
    assert_eq!(
        pids_of(&format!("{leaf_name}/app")),
        vec![u64::from(pids[1])],
        "{v:#}"
    );
    assert!(
        v["leaves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["error"].is_null()),
        "{v:#}"
    );
    let text = ctl_ok(&setup, &["show", &erin.name]);
    for pid in &pids {
        assert!(
            text.contains(&format!(" {pid} ")),
            "{pid} not shown: {text}"
        );
    }
    let sessions = ctl_json(&setup, &["sessions", &erin.name, "--all", "--json"]);
    assert_eq!(sessions[0]["processes"].as_u64(), Some(2), "{sessions:#}");
}

/// The customer may move any process inside its leaf, root's opener too (cgroup v2 asks only
/// for write access to the common ancestor's cgroup.procs). An opener moved into a sub-cgroup
/// named in bytes that are not UTF-8 once made /proc/PID/cgroup unreadable to the count, so
/// the session counted as closed: as many logins as the customer liked past sessions.max.
#[test]
fn an_opener_moved_into_a_sub_cgroup_named_in_odd_bytes_still_counts() {
    use std::os::unix::ffi::OsStrExt;
    require_root();
    let setup = TestSetup::new("[limits]\n\"sessions.max\" = 1\n", "");
    let bob = TestUser::new("pcm");
    let _kill = KillOnDrop(setup.tree.user(&bob.name));
    let release = setup.dir.path().join("release");
    let held = spawn_held(&setup, &bob.name, &release, &["true"]);
    wait_until("bob's first session", Duration::from_secs(30), || {
        open_sessions(&setup, &bob.name).len() == 1
    });
    let leaf = setup.tree.session_leaves(&bob.name).pop().unwrap();
    let odd = leaf.join(std::ffi::OsStr::from_bytes(b"odd-\xff\xfe"));
    let o = bob.command("mkdir").arg(&odd).output().unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    move_as_user(&bob, held.id(), &odd);

    let r = run_session(&setup.pam_dir(), &bob.name, &SessionOptions::default());
    assert_eq!(
        r.open_rc, PAM_PERM_DENIED,
        "refused at sessions.max = 1: {r:?}"
    );
    assert_eq!(
        open_sessions(&setup, &bob.name).len(),
        1,
        "cgroupctl sessions"
    );
    std::fs::write(&release, "").unwrap();
    assert!(reports(vec![held]).iter().all(|r| r.open_rc == PAM_SUCCESS));
}
