//! The customer's life cycle through the built cgroupctl: levers that succeed although the
//! daemon reaped their target as it emptied, resume/thaw/kill/remove of what is not there
//! (exit 2, nothing written), suspension shown wherever customers are listed, `remove` after
//! `userdel`, `reload` with a deleted account, `plans`, and the JSON field names of
//! docs/json.md.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use cgroup_core::config::last_good;
use cgroup_core::events::{Event, FaultKind};
use cgroup_core::gc::{collect, reap_emptied, GcOptions};
use cgroup_core::history::events::Writer;
use cgroup_core::tree::user_cgroup::{Target, UserCgroup};
use cgroup_core::tree::Tree;
use nix::sys::signal::Signal;
use pam_cgroup_tests::support::{require_root, unique_name, wait_until, TestSetup, TestUser};

use crate::cgroupctl::{ctl, ctl_json, ctl_ok, describe, session_with_sleeps, stdout};
use crate::levers::{is_gone, move_as_user, KillOnDrop};

/// The daemon's reaping, done as fast as a test can: a thread that looks at every leaf each
/// millisecond and reaps one (`gc::reap_emptied`, what the daemon calls) the moment it has
/// gone from populated to empty, as the daemon does on cgroup.events. A leaf never seen
/// populated is left alone, like the daemon leaves a leaf that `classify` is still filling.
struct Reaper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Session leaves and service leaves: users/*/session-*, users/*/<service>/*.
fn leaves(users: &Path) -> Vec<PathBuf> {
    let dirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for user in dirs(users) {
        for child in dirs(&user) {
            if child
                .file_name()
                .unwrap()
                .as_bytes()
                .starts_with(b"session-")
            {
                out.push(child);
            } else {
                out.extend(dirs(&child));
            }
        }
    }
    out
}

fn is_populated(dir: &Path) -> Option<bool> {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .ok()
        .map(|t| t.lines().any(|l| l == "populated 1"))
}

impl Reaper {
    fn start(root: &Path) -> Reaper {
        let tree = Tree::locate_root(Some(root)).unwrap();
        let users = tree.users_dir();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
            while !flag.load(Ordering::Relaxed) {
                for leaf in leaves(&users) {
                    match is_populated(&leaf) {
                        Some(true) => {
                            seen.insert(leaf);
                        }
                        Some(false) if seen.remove(&leaf) => {
                            let _ = reap_emptied(&tree, &leaf);
                        }
                        _ => {}
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Reaper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A `sleep` of the user, classified into `users/<user>/<service>/`; returns the child.
fn service_sleeper(setup: &TestSetup, user: &TestUser, service: &str) -> Child {
    let child = user.command("sleep").arg("300").spawn().unwrap();
    // setpriv execs sleep in place: wait until it runs as the user.
    let uid = user.uid.to_string();
    wait_until(
        "the sleeper to run as the user",
        Duration::from_secs(5),
        || {
            std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid))
        },
    );
    ctl_ok(
        setup,
        &[
            "classify",
            &child.id().to_string(),
            "--user",
            &user.name,
            "--service",
            service,
        ],
    );
    child
}

fn exit_code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn levers_succeed_when_the_daemon_reaps_their_target_as_it_empties() {
    require_root();
    let setup = TestSetup::new("", "");
    let fay = TestUser::new("pcreap");
    let _kill = KillOnDrop(setup.tree.user(&fay.name));
    let _reaper = Reaper::start(&setup.tree.root);

    // kill --service: the service dir goes with its last leaf (6 of 6 failed before).
    for round in 0..5 {
        let mut child = service_sleeper(&setup, &fay, "web");
        let o = ctl(&setup, &["kill", &fay.name, "--service", "web"]);
        assert!(o.status.success(), "round {round}: {}", describe(&o));
        assert!(stdout(&o).contains("0 remaining"), "{}", describe(&o));
        assert!(child.wait().unwrap().code().is_none(), "killed");
    }
    // kill --session, with a signal other than KILL too.
    for signal in ["KILL", "TERM"] {
        let (pids, leaf) = session_with_sleeps(&setup, &fay, 2);
        let id = leaf
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_prefix("session-")
            .unwrap()
            .to_string();
        let o = ctl(
            &setup,
            &[
                "kill",
                &fay.name,
                "--session",
                &id,
                "--signal",
                signal,
                "--json",
            ],
        );
        assert!(o.status.success(), "{signal}: {}", describe(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["remaining"], 0, "{v}");
        wait_until(
            &format!("{signal} to end them"),
            Duration::from_secs(5),
            || pids.iter().all(|p| is_gone(*p)),
        );
        assert!(pids.iter().all(|p| is_gone(*p)), "{signal}: {v}");
    }
    // suspend --kill of the whole user while its leaves are reaped under it.
    let mut sleeper = service_sleeper(&setup, &fay, "cron");
    session_with_sleeps(&setup, &fay, 2);
    let o = ctl(
        &setup,
        &["suspend", &fay.name, "--reason", "abuse", "--kill"],
    );
    assert!(o.status.success(), "{}", describe(&o));
    assert!(stdout(&o).contains("(0 remaining)"), "{}", describe(&o));
    assert!(sleeper.wait().unwrap().code().is_none(), "killed");
    ctl_ok(&setup, &["resume", &fay.name]);
}

#[test]
fn each_lever_on_a_target_removed_after_it_was_opened_reports_success() {
    require_root();
    let setup = TestSetup::new("", "");
    let gus = TestUser::new("pcvan");
    let _kill = KillOnDrop(setup.tree.user(&gus.name));
    let tree = Tree::locate_root(Some(&setup.tree.root)).unwrap();
    let wait = Duration::from_secs(2);
    // Each lever opens its target, then the daemon reaps it (its process ended): here the
    // process is killed and the leaf removed between the open and the lever's first write.
    type Lever = fn(&cgroup_core::tree::user_cgroup::TargetDir<'_>, Duration) -> (bool, bool);
    let levers: [(&str, Lever); 4] = [
        ("kill", |d, w| {
            let k = cgroup_core::levers::kill_in(d, Signal::SIGKILL, w).unwrap();
            assert_eq!(k.remaining, 0, "{k:?}");
            (k.vanished, true)
        }),
        ("kill TERM", |d, w| {
            let k = cgroup_core::levers::kill_in(d, Signal::SIGTERM, w).unwrap();
            assert_eq!(k.remaining, 0, "{k:?}");
            (k.vanished, true)
        }),
        ("freeze", |d, w| {
            let f = cgroup_core::levers::set_frozen_in(d, true, w).unwrap();
            (f.vanished, f.reached)
        }),
        ("thaw", |d, w| {
            let f = cgroup_core::levers::set_frozen_in(d, false, w).unwrap();
            (f.vanished, f.reached)
        }),
    ];
    for (name, lever) in levers {
        let mut child = service_sleeper(&setup, &gus, "job");
        let user = UserCgroup::open(&tree, &gus.name).unwrap().unwrap();
        let dir = user.open_target(Target::Service("job")).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let service = setup.tree.user(&gus.name).join("job");
        wait_until(
            &format!("{name}: gc to reap the stand-in"),
            Duration::from_secs(5),
            || {
                let _ = collect(&tree, GcOptions::new(Duration::ZERO, false, false));
                !service.exists()
            },
        );
        assert!(!service.exists(), "{name}: the stand-in did not reap");
        let (vanished, reached) = lever(&dir, wait);
        assert!(vanished && reached, "{name}: {vanished} {reached}");
    }
}

#[test]
fn what_is_not_there_is_an_error_that_writes_nothing() {
    require_root();
    let setup = TestSetup::new("", "");
    let hal = TestUser::new("pcnot");
    let _kill = KillOnDrop(setup.tree.user(&hal.name));
    let (_pids, leaf) = session_with_sleeps(&setup, &hal, 1);
    let id = leaf.file_name().unwrap().to_str().unwrap()["session-".len()..].to_string();
    let nobody = unique_name("pcnone");
    let user_file = |u: &str| setup.users_dir().join(format!("{u}.toml"));
    let freeze_file = setup.tree.user(&hal.name).join("cgroup.freeze");
    let expect_2 = |args: &[&str], says: &str| {
        let o = ctl(&setup, args);
        assert_eq!(exit_code(&o), Some(2), "{args:?}: {}", describe(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {}", describe(&o));
        assert!(o.stdout.is_empty(), "{args:?}: {}", describe(&o));
    };
    // resume of an unknown user, of a user never suspended: no user file appears.
    expect_2(
        &["resume", &nobody],
        "is not suspended (and unknown to NSS)",
    );
    assert!(!user_file(&nobody).exists());
    expect_2(&["resume", &hal.name], "is not suspended");
    assert!(!user_file(&hal.name).exists());
    // thaw of what is not frozen; of a session frozen only through its user; of a
    // suspended user (resume lifts it).
    expect_2(&["thaw", &hal.name], "is not frozen");
    assert_eq!(std::fs::read_to_string(&freeze_file).unwrap().trim(), "0");
    ctl_ok(&setup, &["freeze", &hal.name]);
    expect_2(
        &["thaw", &hal.name, "--session", &id],
        "is frozen through the user's cgroup",
    );
    ctl_ok(&setup, &["thaw", &hal.name]);
    ctl_ok(&setup, &["suspend", &hal.name, "--reason", "test"]);
    expect_2(&["thaw", &hal.name], "is suspended (test)");
    assert_eq!(std::fs::read_to_string(&freeze_file).unwrap().trim(), "1");
    ctl_ok(&setup, &["resume", &hal.name]);
    // levers on what has no cgroup, or no such session or service.
    expect_2(&["kill", &nobody], "has no cgroup");
    expect_2(&["freeze", &nobody], "has no cgroup");
    expect_2(&["kill", &hal.name, "--session", "999999999"], "not found");
    expect_2(&["freeze", &hal.name, "--service", "nosuch"], "not found");
    expect_2(&["kill", "../etc"], "invalid");
    // remove: root, uid 0 by another name is not tested (no such account here), an invalid
    // name, a user NSS still knows, no --yes off a terminal, nothing to remove.
    expect_2(
        &["remove", "root", "--yes", "--force"],
        "root is never removed",
    );
    expect_2(&["remove", "a/b", "--yes"], "invalid");
    expect_2(&["remove", &hal.name, "--yes"], "still exists (uid");
    expect_2(&["remove", &hal.name, "--force"], "add --yes");
    expect_2(&["remove", &nobody, "--yes"], "nothing of");
    assert!(setup.tree.user(&hal.name).is_dir(), "nothing was removed");
    assert!(!user_file(&nobody).exists());
}

/// `list --json`'s entry of `user`.
fn listed(setup: &TestSetup, user: &str) -> Value {
    let v = ctl_json(setup, &["list", "--json"]);
    v.as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == user)
        .cloned()
        .unwrap_or_else(|| panic!("{user} not listed: {v:#}"))
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn suspension_and_freezing_are_shown_by_list_sessions_show_and_top() {
    require_root();
    let setup = TestSetup::new("", "");
    let ida = TestUser::new("pcsus");
    let jon = TestUser::new("pcsus");
    let kim = TestUser::new("pcsus");
    let _k1 = KillOnDrop(setup.tree.user(&ida.name));
    let _k2 = KillOnDrop(setup.tree.user(&kim.name));
    session_with_sleeps(&setup, &ida, 1);
    session_with_sleeps(&setup, &kim, 1);
    let before = now_epoch();
    ctl_ok(
        &setup,
        &["suspend", &ida.name, "--reason", "unpaid 2026-11"],
    );
    // jon has never logged in: no cgroup, suspended all the same.
    let o = ctl_ok(&setup, &["suspend", &jon.name, "--reason", "fraud"]);
    assert!(o.contains("nothing runs in the tree"), "{o}");
    assert!(!setup.tree.user(&jon.name).exists());
    ctl_ok(&setup, &["freeze", &kim.name]);

    let i = listed(&setup, &ida.name);
    assert_eq!(i["state"], "suspended", "{i}");
    assert_eq!(i["suspended_reason"], "unpaid 2026-11", "{i}");
    let epoch = i["suspended_epoch"].as_u64().unwrap();
    assert!(epoch >= before && epoch <= now_epoch(), "{i}");
    assert_eq!(
        i["suspended_at"].as_str().unwrap(),
        cgroup_core::time::utc_text(epoch * 1000),
        "{i}"
    );
    let j = listed(&setup, &jon.name);
    assert_eq!(j["state"], "suspended", "{j}");
    assert_eq!(j["suspended_reason"], "fraud", "{j}");
    assert!(j["path"].is_null() && j["memory_bytes"].is_null(), "{j}");
    let k = listed(&setup, &kim.name);
    assert_eq!(k["state"], "frozen", "{k}");
    assert!(k["suspended_reason"].is_null(), "{k}");
    let text = ctl_ok(&setup, &["list"]);
    for (u, state) in [(&ida, "suspended"), (&jon, "suspended"), (&kim, "frozen")] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&u.name))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains(state), "{line}");
    }

    // The sessions' openers have exited (closed leaves kept by their sleeps): --all.
    let s = ctl_json(&setup, &["sessions", "--all", "--json"]);
    let state_of = |u: &str| -> Vec<String> {
        s.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["user"] == u)
            .map(|r| r["state"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(state_of(&ida.name), ["suspended"], "{s:#}");
    assert_eq!(state_of(&kim.name), ["frozen"], "{s:#}");
    let text = ctl_ok(&setup, &["sessions", "--all"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&ida.name) && l.contains("suspended")),
        "{text}"
    );

    let show = ctl_json(&setup, &["show", &jon.name, "--json"]);
    assert_eq!(show["state"], "suspended", "{show:#}");
    assert_eq!(show["suspended_reason"], "fraud", "{show:#}");
    let text = ctl_ok(&setup, &["show", &ida.name]);
    assert!(text.contains("state:    suspended"), "{text}");
    assert!(text.contains("SUSPENDED: unpaid 2026-11 (since "), "{text}");

    let top = ctl_ok(
        &setup,
        &["top", "--json", "--interval", "0.2", "--iterations", "1"],
    );
    let rows: Value = serde_json::from_str(top.trim()).unwrap();
    let top_state = |u: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["user"] == u)
            .map(|r| r["state"].clone())
    };
    assert_eq!(top_state(&ida.name), Some("suspended".into()), "{rows}");
    assert_eq!(top_state(&kim.name), Some("frozen".into()), "{rows}");

    // Lifted: active again everywhere, and jon leaves the list (no cgroup, not suspended).
    ctl_ok(&setup, &["resume", &ida.name]);
    ctl_ok(&setup, &["resume", &jon.name]);
    ctl_ok(&setup, &["thaw", &kim.name]);
    assert_eq!(listed(&setup, &ida.name)["state"], "active");
    assert_eq!(listed(&setup, &kim.name)["state"], "active");
    let v = ctl_json(&setup, &["list", "--json"]);
    assert!(
        !v.as_array()
            .unwrap()
            .iter()
            .any(|u| u["user"] == jon.name.as_str()),
        "{v:#}"
    );
    assert_eq!(state_of_now(&setup, &ida.name), ["closed"]);
}

fn state_of_now(setup: &TestSetup, user: &str) -> Vec<String> {
    ctl_json(setup, &["sessions", user, "--all", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap().to_string())
        .collect()
}

fn event(user: &str, n: u64) -> Event {
    Event {
        time_ms: 1_790_000_000_000 + n,
        user: user.to_string(),
        kind: FaultKind::PidsMax,
        delta: 1,
        limit: Some("64".into()),
        usage: Some(64.0),
        processes: Vec::new(),
        killed: Vec::new(),
        from: None,
    }
}

/// A config with this test's tree; its history database (and so its fault events) is in the
/// test's own directory (the test support puts it there).
fn setup_with_history() -> (TestSetup, PathBuf) {
    let setup = TestSetup::new("", "");
    let database = setup.dir.path().join("db/history.db");
    (setup, database)
}

#[test]
fn remove_after_userdel_leaves_nothing_of_the_customer() {
    require_root();
    let (setup, history) = setup_with_history();
    let mut lea = TestUser::new("pcrm");
    let max = TestUser::new("pcrm");
    let user_dir = setup.tree.user(&lea.name);
    let _k1 = KillOnDrop(user_dir.clone());
    let _k2 = KillOnDrop(setup.tree.user(&max.name));
    // sessions.max makes the login take its per-user lock file in /run/pam_cgroup.
    setup.write_user_file(&lea.name, "\"sessions.max\" = 3\n");
    // lea's own layout in its session leaf: a sub-cgroup named in bytes that are not UTF-8,
    // a threaded sub-cgroup with a process, and a process that forks without a pause.
    let (pids, leaf) = session_with_sleeps(&setup, &lea, 3);
    let odd = leaf.join(std::ffi::OsStr::from_bytes(b"odd-\xff\xfe"));
    let threaded = leaf.join("app").join("t");
    for dir in [odd.join("inner"), threaded.clone()] {
        let o = lea.command("mkdir").arg("-p").arg(&dir).output().unwrap();
        assert!(o.status.success(), "{}", describe(&o));
    }
    let o = lea
        .command("sh")
        .args(["-c", "echo threaded > \"$0/cgroup.type\""])
        .arg(&threaded)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    move_as_user(&lea, pids[0], &odd.join("inner"));
    move_as_user(&lea, pids[1], &threaded);
    let busy = leaf.join("busy");
    let o = lea.command("mkdir").arg(&busy).output().unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let mut forker = lea
        .command("sh")
        .args(["-c", "while :; do /bin/true; done"])
        .spawn()
        .unwrap();
    // Started outside the tree: root moves it in (the customer may not move a process from
    // outside its delegated leaf).
    std::fs::write(busy.join("cgroup.procs"), forker.id().to_string()).unwrap();
    let (max_pids, _) = session_with_sleeps(&setup, &max, 1);
    {
        let mut w = Writer::open(&history, 1 << 20).unwrap();
        for n in 0..3 {
            w.add(&event(&lea.name, n)).unwrap();
            w.add(&event(&max.name, n)).unwrap();
        }
    }
    let lock = Path::new("/run/pam_cgroup").join(format!("sessions-{}.lock", lea.name));
    assert!(lock.exists(), "a login made its lock file");
    // Once the file has settled (its ctime SETTLE old), root's reload keeps its last good copy
    // in the state dir.
    let kept = last_good::kept_user_path(&setup.config_path(), &lea.name).unwrap();
    wait_until(
        "reload to keep the settled user file",
        last_good::SETTLE + Duration::from_secs(5),
        || {
            ctl_ok(&setup, &["reload"]);
            kept.exists()
        },
    );

    lea.delete();
    // reload reports the deleted account and still applies max (exit 1).
    let o = ctl(&setup, &["reload"]);
    assert_eq!(exit_code(&o), Some(1), "{}", describe(&o));
    assert!(
        stdout(&o).contains(&format!("{}: UNKNOWN USER", lea.name)),
        "{}",
        describe(&o)
    );

    let v = ctl_json(&setup, &["remove", &lea.name, "--yes", "--json"]);
    assert_eq!(v["cgroup"]["existed"], true, "{v:#}");
    assert!(v["cgroup"]["processes"].as_u64().unwrap() >= 4, "{v:#}");
    assert_eq!(v["user_file"], true, "{v:#}");
    assert_eq!(v["last_good_copy"], true, "{v:#}");
    assert!(!kept.exists(), "{} survived remove", kept.display());
    assert_eq!(v["events_erased"], 3, "{v:#}");
    assert!(v["lock_files"].as_u64().unwrap() >= 1, "{v:#}");
    assert!(!user_dir.exists(), "{} is still there", user_dir.display());
    assert!(!setup
        .users_dir()
        .join(format!("{}.toml", lea.name))
        .exists());
    assert!(!lock.exists());
    for pid in &pids {
        assert!(is_gone(*pid), "{pid} of the removed customer survived");
    }
    assert!(
        forker.wait().unwrap().code().is_none(),
        "the forker was killed"
    );
    // Nothing of lea in the events; max's are all there, and nothing reads as damage.
    let o = ctl(&setup, &["events", "--json"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(o.stderr.is_empty(), "{}", describe(&o));
    let users: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["user"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(users, vec![max.name.clone(); 3], "{}", describe(&o));
    // Nor in list, stats or the metrics; max untouched.
    let list = ctl_ok(&setup, &["list", "--json"]);
    assert!(!list.contains(&lea.name), "{list}");
    let prom = ctl_ok(&setup, &["stats", "--prometheus"]);
    assert!(!prom.contains(&lea.name), "{prom}");
    assert!(prom.contains(&max.name), "{prom}");
    assert!(!is_gone(max_pids[0]), "the neighbour's process stays");
    // A second remove has nothing left to remove.
    let o = ctl(&setup, &["remove", &lea.name, "--yes"]);
    assert_eq!(exit_code(&o), Some(2), "{}", describe(&o));
}

#[test]
fn reload_with_a_deleted_account_applies_everyone_else() {
    require_root();
    let setup = TestSetup::new("", "");
    let mut ned = TestUser::new("pcrl");
    let ola = TestUser::new("pcrl");
    let _k1 = KillOnDrop(setup.tree.user(&ned.name));
    let _k2 = KillOnDrop(setup.tree.user(&ola.name));
    session_with_sleeps(&setup, &ned, 1);
    session_with_sleeps(&setup, &ola, 1);
    ned.delete();
    setup.write_config_with_tree("max_depth = 7\n", "");
    let o = ctl(&setup, &["reload", "--json"]);
    assert_eq!(exit_code(&o), Some(1), "{}", describe(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let of = |u: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["user"] == u)
            .cloned()
            .unwrap()
    };
    assert_eq!(of(&ned.name)["unknown_user"], true, "{v:#}");
    assert_eq!(of(&ola.name)["error"], Value::Null, "{v:#}");
    // ola got the new caps (max_depth + 2 on users/<user>); ned kept its own.
    let depth = |u: &str| {
        std::fs::read_to_string(setup.tree.user(u).join("cgroup.max.depth"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(depth(&ola.name), "9");
    assert_ne!(depth(&ned.name), "9");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("1 of 2 users could not be resolved"), "{err}");
}

#[test]
fn plans_lists_each_plan_its_limits_groups_and_members() {
    require_root();
    let group = pam_cgroup_tests::support::TestGroup::new("pcplg");
    let setup = TestSetup::new(
        &format!(
            "[limits]\n\"pids.max\" = 100\n[profiles.pro]\n\"pids.max\" = 400\n\
             [profiles.lite]\n\"memory.max\" = \"512M\"\n[groups]\n{} = \"pro\"\n",
            group.name
        ),
        "",
    );
    let pat = TestUser::with_groups("pcpl", &[&group]);
    let quinn = TestUser::new("pcpl");
    let rae = TestUser::new("pcpl");
    let _k = KillOnDrop(setup.tree.user(&pat.name));
    session_with_sleeps(&setup, &pat, 1);
    setup.write_user_file(&quinn.name, "profile = \"lite\"\n");
    setup.write_user_file(&rae.name, "\"sessions.max\" = 2\n");
    let v = ctl_json(&setup, &["plans", "--json"]);
    let plan = |name: Value| {
        v["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["plan"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{v:#}"))
    };
    let pro = plan("pro".into());
    assert_eq!(pro["limits"]["pids.max"], "400", "{v:#}");
    assert_eq!(pro["groups"], serde_json::json!([group.name]), "{v:#}");
    assert_eq!(pro["members"], serde_json::json!([pat.name]), "{v:#}");
    assert_eq!(
        plan("lite".into())["members"],
        serde_json::json!([quinn.name])
    );
    let none = plan(Value::Null);
    assert_eq!(none["limits"]["pids.max"], "100", "{v:#}");
    assert_eq!(none["members"], serde_json::json!([rae.name]), "{v:#}");
    let text = ctl_ok(&setup, &["plans"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("pro") && l.contains(&pat.name)),
        "{text}"
    );
}

/// The documented top-level fields of each verb in docs/json.md.
fn documented() -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let doc = include_str!("../../docs/json.md");
    let mut out = std::collections::BTreeMap::new();
    let mut verb = None;
    for line in doc.lines() {
        if let Some(v) = line.strip_prefix("### ") {
            verb = Some(v.trim().to_string());
        } else if let (Some(v), Some(fields)) = (&verb, line.strip_prefix("Fields: ")) {
            let names: BTreeSet<String> = fields
                .split(',')
                .map(|f| f.trim().trim_matches('`').to_string())
                .collect();
            out.insert(v.clone(), names);
        }
    }
    out
}

/// The top-level keys of a document (of each element of an array).
fn keys(v: &Value) -> BTreeSet<String> {
    match v {
        Value::Array(items) => items.iter().flat_map(keys).collect(),
        Value::Object(m) => m.keys().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

/// Every key at every depth breaks no rule of the scheme.
fn check_scheme(verb: &str, v: &Value, path: &str) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| check_scheme(verb, i, path)),
        Value::Object(m) => {
            for (k, inner) in m {
                // Keys of maps named by their content (limit files, plan limits) are data.
                if path.ends_with("limits") && k.contains('.') {
                    continue;
                }
                let bad = k.ends_with("_current")
                    || k.ends_with("_utc")
                    || k == "time_ms"
                    || k == "started"
                    || k == "suspended"
                    || k == "since"
                    || k.chars().any(|c| c.is_ascii_uppercase());
                assert!(!bad, "{verb}: {path}.{k} breaks the scheme of docs/json.md");
                check_scheme(verb, inner, &format!("{path}.{k}"));
            }
        }
        _ => {}
    }
}

#[test]
fn json_field_names_are_the_documented_ones_in_every_verb() {
    require_root();
    let (setup, history) = setup_with_history();
    let sam = TestUser::new("pcjs");
    let mut tia = TestUser::new("pcjs");
    let uma = TestUser::new("pcjs");
    let _k1 = KillOnDrop(setup.tree.user(&sam.name));
    let _k2 = KillOnDrop(setup.tree.user(&tia.name));
    session_with_sleeps(&setup, &sam, 1);
    session_with_sleeps(&setup, &tia, 1);
    let mut web = service_sleeper(&setup, &sam, "web");
    ctl_ok(&setup, &["suspend", &uma.name, "--reason", "r"]);
    {
        let mut w = Writer::open(&history, 1 << 20).unwrap();
        w.add(&event(&sam.name, 1)).unwrap();
    }
    let docs = documented();
    let mut seen = BTreeSet::new();
    let mut run = |verb: &str, args: &[&str], lines: bool| {
        let o = ctl(&setup, args);
        assert!(
            o.status.success() || verb == "reload",
            "{args:?}: {}",
            describe(&o)
        );
        let text = stdout(&o);
        let docs_of = docs
            .get(verb)
            .unwrap_or_else(|| panic!("docs/json.md has no section for {verb}"));
        let values: Vec<Value> = if lines {
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        } else {
            vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))]
        };
        let mut got = BTreeSet::new();
        for v in &values {
            check_scheme(verb, v, verb);
            got.extend(keys(v));
        }
        assert!(!got.is_empty(), "{args:?} printed no fields: {text}");
        let undocumented: Vec<_> = got.difference(docs_of).collect();
        assert!(
            undocumented.is_empty(),
            "{verb} prints {undocumented:?}, not in docs/json.md"
        );
        // Fields printed only when they have something to say are documented as such.
        let optional = [
            ("events", "killed"),
            ("events", "from"),
            ("gc", "carry_error"),
            ("check", "error"),
            ("check", "code"),
            ("check", "file"),
            ("check", "line"),
            ("check", "column"),
            ("check", "key"),
            ("check", "reason"),
        ];
        let missing: Vec<_> = docs_of
            .difference(&got)
            .filter(|f| !optional.contains(&(verb, f.as_str())))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/json.md lists {missing:?} for {verb}, which it did not print"
        );
        seen.insert(verb.to_string());
    };
    run("list", &["list", "--json"], false);
    run("show", &["show", &sam.name, "--json"], false);
    run("sessions", &["sessions", "--all", "--json"], false);
    run(
        "top",
        &["top", "--json", "--interval", "0.2", "--iterations", "1"],
        true,
    );
    run("stats", &["stats", "--json"], false);
    run("report", &["report", "--period", "1d", "--json"], false);
    run("events", &["events", "--json"], true);
    run("freeze", &["freeze", &sam.name, "--json"], false);
    run("thaw", &["thaw", &sam.name, "--json"], false);
    run(
        "kill",
        &["kill", &sam.name, "--service", "web", "--json"],
        false,
    );
    assert!(web.wait().unwrap().code().is_none(), "killed");
    run("plans", &["plans", "--json"], false);
    tia.delete();
    run("reload", &["reload", "--json"], false);
    run("remove", &["remove", &tia.name, "--yes", "--json"], false);
    run("check", &["check", "--json"], false);
    run(
        "gc",
        &["gc", "--dry-run", "--min-age", "0", "--json"],
        false,
    );
    run(
        "suspend",
        &["suspend", &sam.name, "--reason", "r2", "--json"],
        false,
    );
    run("resume", &["resume", &sam.name, "--json"], false);
    run("resume", &["resume", &uma.name, "--json"], false);
    // Every section marked (tested) in docs/json.md was run here.
    let doc = include_str!("../../docs/json.md");
    let mut verb = "";
    for line in doc.lines() {
        if let Some(v) = line.strip_prefix("### ") {
            verb = v.trim();
        } else if line.trim() == "(tested)" {
            assert!(seen.contains(verb), "docs/json.md says {verb} is tested");
        }
    }
}

#[test]
fn remove_takes_a_legacy_cgroup_an_upgrade_left_too() {
    require_root();
    let setup = TestSetup::new("", "");
    let mut vic = TestUser::new("pcleg");
    let own = setup.tree.user(&vic.name);
    let legacy = setup.tree.users().join(&vic.name);
    let _k1 = KillOnDrop(own.clone());
    let _k2 = KillOnDrop(legacy.clone());
    let (pids, _) = session_with_sleeps(&setup, &vic, 1);
    // users/<user> as a version before the keyed names made it, an old session's process in it.
    std::fs::create_dir_all(legacy.join("session-1")).unwrap();
    let mut old = vic.command("sleep").arg("300").spawn().unwrap();
    std::fs::write(
        legacy.join("session-1").join("cgroup.procs"),
        old.id().to_string(),
    )
    .unwrap();
    vic.delete();
    let v = ctl_json(&setup, &["remove", &vic.name, "--yes", "--json"]);
    assert_eq!(v["cgroup"]["processes"], 2, "{v:#}");
    assert!(!own.exists() && !legacy.exists(), "{v:#}");
    assert!(
        old.wait().unwrap().code().is_none(),
        "the legacy session's process was killed"
    );
    assert!(is_gone(pids[0]));
}
