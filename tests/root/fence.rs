//! The single-writer tree (issue 11) beyond the escape attempts: the applied stamp never goes
//! stale, `set`'s lock is root's alone, and 0.1.0 trees (user cgroups owned by the user, the
//! customer's own cgroups and processes in them) are taken back at the next login without a
//! login failing or going unconfined.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use pam_cgroup_tests::support::{
    flock_held, require_root, run_session, wait_until, SessionOptions, TestGroup, TestSetup,
    TestUser,
};

use pam_cgroup_tests::support::cgroup::{populated, user_dir_name};

use crate::cgroupctl::{ctl, ctl_ok, describe, Kill};

const PAM_SUCCESS: i32 = 0;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

fn login(setup: &TestSetup, user: &str) -> String {
    let r = run_session(&setup.pam_dir(), user, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert!(
        r.cgroup_after_open
            .contains(&format!("/users/{}/session-", user_dir_name(user))),
        "{r:?}"
    );
    r.cgroup_after_open
}

#[test]
fn a_reload_never_leaves_a_stale_stamp_for_the_next_login() {
    require_root();
    let setup = TestSetup::new("", "");
    let alice = TestUser::new("pcn");
    let depth = setup.tree.user(&alice.name).join("cgroup.max.depth");
    // The review's sequence: the config at 8, a reload with 50, the config back to 8 without a
    // reload (the documented `--no-apply` way); the next login must apply 8 again.
    setup.write_config_with_tree("max_depth = 8\n", "");
    login(&setup, &alice.name);
    assert_eq!(read(&depth), "10");
    setup.write_config_with_tree("max_depth = 50\n", "");
    ctl_ok(&setup, &["reload"]);
    assert_eq!(read(&depth), "52");
    setup.write_config_with_tree("max_depth = 8\n", "");
    login(&setup, &alice.name);
    assert_eq!(read(&depth), "10", "the login skipped a changed config");
    // The same through `set`: a value applied live, then put back with --no-apply.
    if setup.tree.user(&alice.name).join("pids.max").exists() {
        let pids = setup.tree.user(&alice.name).join("pids.max");
        ctl_ok(&setup, &["set", &alice.name, "pids.max=50"]);
        ctl_ok(&setup, &["set", &alice.name, "pids.max=8", "--no-apply"]);
        login(&setup, &alice.name);
        assert_eq!(read(&pids), "8");
    }
}

#[test]
fn set_locks_a_root_only_file_and_gives_up_within_its_bound() {
    require_root();
    let setup = TestSetup::new("", "");
    let alice = TestUser::new("pcn");
    login(&setup, &alice.name);
    // A customer holding a lock on everything of the config it can open (the users
    // directory, world-readable) does not hold `set` up.
    let users_dir = setup.users_dir();
    std::fs::create_dir_all(&users_dir).unwrap();
    // As /etc/pam_cgroup is: customers can reach and read it.
    for dir in [setup.dir.path(), users_dir.as_path()] {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let mut holder = alice
        .command("flock")
        .args(["--exclusive"])
        .arg(&users_dir)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let mut kill = Kill::default();
    kill.0.push(holder.id());
    wait_until("the customer's lock", Duration::from_secs(10), || {
        flock_held(&users_dir)
    });
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the customer holds its lock"
    );
    let start = Instant::now();
    ctl_ok(&setup, &["set", &alice.name, "pids.max=70"]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // The lock itself is root's 0600: the customer cannot even open it.
    let lock = users_dir.join(".lock");
    let meta = std::fs::metadata(&lock).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
    let opened = alice
        .command("flock")
        .args(["--exclusive", "--nonblock"])
        .arg(&lock)
        .arg("true")
        .output()
        .unwrap();
    assert!(!opened.status.success(), "{}", describe(&opened));
    // Held by root (another `set` stuck): `set` gives up after its bound with a clear error.
    let mut root_holder = Command::new("flock")
        .arg("--exclusive")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    kill.0.push(root_holder.id());
    wait_until("root's other lock", Duration::from_secs(10), || {
        flock_held(&lock)
    });
    let start = Instant::now();
    let o = ctl(&setup, &["set", &alice.name, "pids.max=80"]);
    let waited = start.elapsed();
    assert!(!o.status.success(), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(".lock") && err.contains("held by another `cgroupctl set`"),
        "{err}"
    );
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(30),
        "{waited:?}"
    );
    drop(kill);
    let _ = holder.wait();
    let _ = root_holder.wait();
}

/// Makes `users/<user>` look as 0.1.0 left it: owned by the user with its delegated files.
fn make_legacy(setup: &TestSetup, user: &TestUser) {
    let dir = setup.tree.user(&user.name);
    std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for f in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
        std::os::unix::fs::chown(dir.join(f), Some(user.uid), Some(user.gid)).unwrap();
    }
    std::fs::set_permissions(
        setup.tree.users(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
}

/// Processes of a test, killed and reaped when it ends (also when it fails).
#[derive(Default)]
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A 0.1.0 session: a root-owned leaf holding a process of the user (the customer's shell
/// under 0.1.0, from where it could move its processes anywhere in its user cgroup).
fn legacy_session(setup: &TestSetup, user: &TestUser, procs: &mut Procs) -> std::path::PathBuf {
    let leaf = setup.tree.user(&user.name).join("session-010");
    std::fs::create_dir(&leaf).unwrap();
    let shell = user.command("sleep").args(["120"]).spawn().unwrap();
    std::fs::write(leaf.join("cgroup.procs"), format!("{}\n", shell.id())).unwrap();
    procs.0.push(shell);
    leaf
}

/// As the user, from inside its 0.1.0 session: `mkdir DIR` (unless it is the user cgroup),
/// then a `sleep` of its own moved into it; returns the sleep's pid.
fn customer_cgroup_with_process(
    user: &TestUser,
    legacy_leaf: &Path,
    dir: &Path,
    procs: &mut Procs,
) -> u32 {
    let sleeper = user.command("sleep").args(["120"]).spawn().unwrap();
    let pid = sleeper.id();
    procs.0.push(sleeper);
    std::fs::write(legacy_leaf.join("cgroup.procs"), format!("{pid}\n")).unwrap();
    as_user(
        user,
        &format!(
            "mkdir -p {d} && echo {pid} > {d}/cgroup.procs",
            d = dir.display()
        ),
    );
    pid
}

fn cgroup_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string()
}

fn as_user(user: &TestUser, script: &str) {
    let out = user.command("sh").args(["-c", script]).output().unwrap();
    assert!(out.status.success(), "{script}: {}", describe(&out));
}

fn assert_taken_back(setup: &TestSetup, user: &TestUser) {
    let dir = setup.tree.user(&user.name);
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, user.gid, 0o750)
    );
    assert_eq!(
        std::fs::metadata(dir.join("cgroup.procs")).unwrap().uid(),
        0
    );
    assert_eq!(
        std::fs::metadata(setup.tree.users()).unwrap().mode() & 0o7777,
        0o711
    );
}

#[test]
fn a_0_1_0_tree_is_taken_back_at_the_next_login_and_the_customers_cgroups_stay() {
    require_root();
    let setup = TestSetup::new("", "on_error=open");
    let alice = TestUser::new("pcn");
    login(&setup, &alice.name);
    make_legacy(&setup, &alice);
    let dir = setup.tree.user(&alice.name);
    let mut procs = Procs::default();
    // What 0.1.0 let the customer do: its own cgroup beside the leaves holding a process,
    // and a process straight in the user cgroup.
    let legacy_leaf = legacy_session(&setup, &alice, &mut procs);
    let mine = dir.join("mine");
    let daemon = customer_cgroup_with_process(&alice, &legacy_leaf, &mine, &mut procs);
    let stray = customer_cgroup_with_process(&alice, &legacy_leaf, &dir, &mut procs);

    // The next logins: confined, and the user cgroup is root's again.
    for _ in 0..3 {
        login(&setup, &alice.name);
    }
    assert_taken_back(&setup, &alice);
    // What the customer made stays, and so do its processes.
    assert!(mine.is_dir());
    assert!(
        cgroup_of(daemon).ends_with("/mine"),
        "{}",
        cgroup_of(daemon)
    );
    assert!(cgroup_of(stray).ends_with(&format!("/users/{}", user_dir_name(&alice.name))));
    // The customer can no longer move its processes around in the user cgroup.
    let moved = alice
        .command("sh")
        .args([
            "-c",
            &format!("echo {daemon} > {}/cgroup.procs", dir.display()),
        ])
        .output()
        .unwrap();
    assert!(!moved.status.success(), "{}", describe(&moved));

    // Once what it made empties, gc removes it.
    drop(procs);
    wait_until("what it made to empty", Duration::from_secs(10), || {
        !populated(&mine)
    });
    ctl_ok(&setup, &["gc", "--min-age", "0"]);
    assert!(!mine.exists(), "{:?}", std::fs::read_dir(&dir));
    login(&setup, &alice.name);
}

#[test]
fn a_0_1_0_user_cgroup_made_a_thread_root_still_confines_the_next_login() {
    require_root();
    let setup = TestSetup::new("", "on_error=open");
    let carol = TestUser::new("pcn");
    login(&setup, &carol.name);
    make_legacy(&setup, &carol);
    let dir = setup.tree.user(&carol.name);
    // The review's attack 2 under 0.1.0: a threaded child made the user cgroup a thread
    // root, and every later domain leaf invalid.
    let t = dir.join("t");
    as_user(
        &carol,
        &format!(
            "mkdir {t} && echo threaded > {t}/cgroup.type",
            t = t.display()
        ),
    );
    assert_eq!(read(&dir.join("cgroup.type")), "domain threaded");
    for _ in 0..3 {
        login(&setup, &carol.name);
    }
    assert_taken_back(&setup, &carol);
    assert!(t.is_dir(), "the customer's cgroup stays");
    ctl_ok(&setup, &["gc", "--min-age", "0"]);
    assert!(!t.exists());
    assert_eq!(read(&dir.join("cgroup.type")), "domain");
    login(&setup, &carol.name);
}

#[test]
fn customers_sharing_a_primary_group_cannot_read_each_other() {
    require_root();
    let setup = TestSetup::new("", "");
    let shared = TestGroup::new("pcn");
    let dave = TestUser::with_primary("pcn", &shared);
    let erin = TestUser::with_primary("pcn", &shared);
    let r = run_session(&setup.pam_dir(), &dave.name, &SessionOptions::no_close());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert!(
        r.syslog_text().contains("is not a user-private group"),
        "the log says so: {:?}",
        r.syslog
    );
    let dir = setup.tree.user(&dave.name);
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 0, 0o711)
    );
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            let mode = entry.metadata().unwrap().mode();
            assert_eq!(mode & 0o077, 0, "{:?} readable by others", entry.path());
        }
    }
    // Erin (same primary group) can neither list dave's user cgroup, nor read its files, nor
    // enter his leaf.
    let leaf = setup.tree.session_leaf_of(&r.cgroup_after_open);
    for (what, script) in [
        ("list", format!("ls {}", dir.display())),
        ("read", format!("cat {}/cpu.stat", dir.display())),
        ("leaf", format!("cat {}/cgroup.procs", leaf.display())),
    ] {
        let out = erin.command("sh").args(["-c", &script]).output().unwrap();
        assert!(
            !out.status.success(),
            "erin could {what}: {}",
            describe(&out)
        );
    }
    // Dave still reads his own leaf.
    as_user(&dave, &format!("cat {}/cgroup.procs", leaf.display()));
    // doctor names him.
    let o = ctl(&setup, &["doctor"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("shared-groups") && text.contains(&dave.name),
        "{}",
        describe(&o)
    );
}
