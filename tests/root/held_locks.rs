//! What a customer controls in its own logins never turns one into an unconfined login: a lock
//! held by its own stopped `su`, and `ulimit -n` set before `su`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pam_cgroup_tests::support::{
    require_root, run_session, SessionOptions, SessionReport, TestSetup, TestUser,
};

const PAM_SUCCESS: i32 = 0;

/// A process that holds a lock file the way `su` holds the module's lock while it opens a
/// session: effective uid 0 (the setuid program), real uid the customer's, so the customer may
/// signal it. Killed on drop, stopped or not.
struct LockHolder(Child);

impl LockHolder {
    fn hold(lock: &str, customer: &TestUser) -> LockHolder {
        // The sh under flock runs as the customer (dash drops the effective uid of a
        // process whose real uid differs): its sign goes where the customer may write.
        let ready = format!(
            "/tmp/{}.held",
            pam_cgroup_tests::support::unique_name("lock")
        );
        let _ = std::fs::remove_file(&ready);
        let child = Command::new("setpriv")
            .arg(format!("--ruid={}", customer.uid))
            .args(["flock", lock, "sh", "-c", "touch \"$0\"; exec sleep 600"])
            .arg(&ready)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let holder = LockHolder(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::path::Path::new(&ready).exists() {
            assert!(Instant::now() < deadline, "the holder never took {lock}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_file(&ready);
        holder
    }

    /// The customer itself stops it (a real unprivileged `kill`).
    fn stop_as(&self, customer: &TestUser) {
        let status = customer
            .command("kill")
            .args(["-STOP", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "the customer may stop its own su");
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        // flock(1) waits for its child; killing flock releases the lock with its descriptor,
        // and the orphaned sleep holds a copy of it: kill the group of both.
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Removes the per-user lock files of `/run/pam_cgroup` a test made.
struct LockFiles(Vec<String>);

impl Drop for LockFiles {
    fn drop(&mut self) {
        for user in &self.0 {
            for kind in ["sessions", "carry"] {
                let _ = std::fs::remove_file(format!("/run/pam_cgroup/{kind}-{user}.lock"));
            }
        }
    }
}

fn assert_not_unconfined(r: &SessionReport, what: &str) {
    // A refused session starts nothing, wherever the caller is left (with very few files the
    // driver may not even read its own cgroup then); an opened one must be in the fence.
    if r.open_rc == PAM_SUCCESS {
        assert!(
            r.cgroup_after_open.contains("/users/") && r.cgroup_after_open != r.cgroup_before,
            "{what}: the session opened outside the fence: {r:?}"
        );
    }
}

fn timed(setup: &TestSetup, user: &TestUser, opts: &SessionOptions) -> (SessionReport, Duration) {
    let started = Instant::now();
    let r = run_session(&setup.pam_dir(), &user.name, opts);
    (r, started.elapsed())
}

#[test]
fn a_stopped_su_holding_the_sessions_lock_gets_the_next_login_refused_soon_and_others_never_wait() {
    require_root();
    let setup = TestSetup::new("[limits]\n\"sessions.max\" = 5\n", "");
    let alice = TestUser::new("plk");
    let bob = TestUser::new("plk");
    let _files = LockFiles(vec![alice.name.clone(), bob.name.clone()]);
    // A first login of each makes its user cgroup and its lock file.
    for u in [&alice, &bob] {
        let r = run_session(&setup.pam_dir(), &u.name, &SessionOptions::default());
        assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    }
    let holder = LockHolder::hold(
        &format!("/run/pam_cgroup/sessions-{}.lock", alice.name),
        &alice,
    );
    holder.stop_as(&alice);

    let (r, took) = timed(&setup, &alice, &SessionOptions::default());
    assert_not_unconfined(&r, "alice's login behind her stopped su");
    assert_ne!(
        r.open_rc, PAM_SUCCESS,
        "refused: it cannot be counted: {r:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "refused within the normal time, not after a long wait: {took:?}"
    );
    assert!(
        r.syslog_text()
            .contains("refused rather than let in uncounted"),
        "the log says why: {r:?}"
    );

    // Bob logs in and out as if nothing happened.
    let (r, took) = timed(&setup, &bob, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert!(r.cgroup_after_open.contains("/users/"), "{r:?}");
    assert_eq!(r.close_rc, Some(PAM_SUCCESS), "{r:?}");
    assert!(took < Duration::from_secs(2), "bob waited {took:?}");

    // The stopped su ends: alice logs in again.
    drop(holder);
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::default());
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert!(r.cgroup_after_open.contains("/users/"), "{r:?}");
}

#[test]
fn ulimit_n_from_3_to_20_before_su_never_opens_a_login_unconfined_or_uncounted() {
    require_root();
    let setup = TestSetup::new("[limits]\n\"sessions.max\" = 5\n", "");
    let alice = TestUser::new("plf");
    let _files = LockFiles(vec![alice.name.clone()]);
    let users_dir = setup.tree.user(&alice.name);

    // `su` after `ulimit -n N`.
    let with_nofile = |n: u64| {
        run_session(
            &setup.pam_dir(),
            &alice.name,
            &SessionOptions {
                nofile: Some(n),
                ..SessionOptions::default()
            },
        )
    };
    // Room under the cap: every login is either refused or confined, and counted.
    for n in 3..=20u64 {
        let r = with_nofile(n);
        assert_not_unconfined(&r, &format!("ulimit -n {n}, room under the cap"));
    }

    // At the cap: five sessions held open, then every `ulimit -n` is refused.
    let release = setup.dir.path().join("release");
    let mut held: Vec<Child> = (0..5)
        .map(|_| {
            pam_cgroup_tests::support::session_command(
                &setup.pam_dir(),
                &alice.name,
                &SessionOptions {
                    hold_until: Some(release.clone()),
                    ..SessionOptions::default()
                },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while open_sessions(&users_dir) < 5 {
        assert!(Instant::now() < deadline, "five sessions never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    for n in 3..=20u64 {
        let r = with_nofile(n);
        assert_not_unconfined(&r, &format!("ulimit -n {n}, at the cap"));
        assert_ne!(
            r.open_rc, PAM_SUCCESS,
            "ulimit -n {n}: a sixth session got in: {r:?}"
        );
    }
    assert_eq!(open_sessions(&users_dir), 5, "nothing uncounted got in");
    std::fs::write(&release, "").unwrap();
    for c in held.iter_mut() {
        let _ = c.wait();
    }
}

/// Session leaves of a user whose opener still runs inside (what sessions.max counts),
/// judged the simple way: leaves with a populated `login/`.
fn open_sessions(user_dir: &std::path::Path) -> usize {
    std::fs::read_dir(user_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("session-"))
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("login/cgroup.events"))
                        .map(|t| t.lines().any(|l| l == "populated 1"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}
