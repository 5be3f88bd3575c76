//! `[tree] spare_leaves`: the daemon keeps one session leaf made ahead per user, a login
//! claims it. What must hold: the spare is root's and closed until a login claims it (its
//! customer can neither enter it nor make anything in it), no view counts it as a session, gc
//! keeps it (and gives it back once spares are turned off), a login takes it with the caps of
//! the config in force, and two logins racing for one spare each get a leaf of their own.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use pam_cgroup_tests::support::cgroup::populated;
use pam_cgroup_tests::support::{
    inotify_watches, require_root, run_session, wait_for_value, wait_until, SessionOptions,
    SessionReport, TestSetup, TestUser,
};

use crate::cgroupctl::{ctl_json, ctl_ok, session_with_background, Kill};
use crate::cgroupctl_daemon::Daemon;

const SPARE_XATTR: &str = "trusted.pam_cgroup.spare";
/// On the user cgroup: the name of the spare the daemon made last, where a login looks first.
const SPARE_NAME_XATTR: &str = "trusted.pam_cgroup.spare-name";

fn is_spare(leaf: &Path) -> bool {
    xattr_of(leaf, SPARE_XATTR).is_some()
}

/// A `trusted.` attribute of a cgroup (root reads them).
fn xattr_of(path: &Path, name: &str) -> Option<String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os,sys\ntry: print(os.getxattr(sys.argv[1], sys.argv[2]).decode())\nexcept OSError: sys.exit(1)",
        ])
        .arg(path)
        .arg(name)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Sets a `trusted.` attribute of a cgroup, as root.
fn set_xattr_of(path: &Path, name: &str, value: &str) {
    let status = std::process::Command::new("python3")
        .args([
            "-c",
            "import os,sys\nos.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())",
        ])
        .arg(path)
        .arg(name)
        .arg(value)
        .status()
        .unwrap();
    assert!(status.success(), "setxattr {name} on {}", path.display());
}

fn name_of(leaf: &Path) -> String {
    leaf.file_name().unwrap().to_str().unwrap().to_string()
}

/// The user's spare leaf once the daemon made one.
fn wait_for_spare(setup: &TestSetup, user: &str, other_than: Option<&Path>) -> PathBuf {
    wait_for_value("a spare leaf", Duration::from_secs(20), || {
        setup
            .tree
            .session_leaves(user)
            .into_iter()
            .find(|l| Some(l.as_path()) != other_than && is_spare(l))
    })
}

/// The daemon, once it watches the tree: a login before that is one it never sees.
fn watching_daemon(setup: &TestSetup) -> Daemon {
    let daemon = Daemon::start(setup, &[]);
    wait_until("the daemon's watches", Duration::from_secs(20), || {
        inotify_watches(daemon.pid()) > 0
    });
    daemon
}

/// A user of a tree with spare_leaves and a watching daemon, one session of its own running
/// (the daemon's cue), and the spare the daemon then made it.
struct WithSpare {
    // Fields drop in this order: the daemon (which makes spares) and the first session go
    // before the test tree is removed, or the daemon's next spare would outlive it.
    _daemon: Daemon,
    _kill: Kill,
    setup: TestSetup,
    user: TestUser,
    first_leaf: PathBuf,
    spare: PathBuf,
}

fn user_with_spare(tree_keys: &str, prefix: &str) -> WithSpare {
    let setup = TestSetup::new(&format!("spare_leaves = true\n{tree_keys}"), "");
    let user = TestUser::new(prefix);
    let mut kill = Kill::default();
    let daemon = watching_daemon(&setup);
    let (_pid, first_leaf) = session_with_background(&setup, &user, &mut kill);
    let spare = wait_for_spare(&setup, &user.name, Some(&first_leaf));
    WithSpare {
        setup,
        user,
        first_leaf,
        spare,
        _daemon: daemon,
        _kill: kill,
    }
}

/// A login of `user` in a thread, holding its session open until `release` exists.
fn held_login(setup: &TestSetup, user: &str, release: &Path) -> JoinHandle<SessionReport> {
    let (pam_dir, name, release) = (setup.pam_dir(), user.to_string(), release.to_path_buf());
    std::thread::spawn(move || {
        run_session(
            &pam_dir,
            &name,
            &SessionOptions {
                hold_until: Some(release),
                ..SessionOptions::default()
            },
        )
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn a_daemon_started_after_the_logins_makes_their_users_spares() {
    require_root();
    // A restart (an upgrade) of the daemon while a user's session is open: that user gets its
    // spare from the new daemon's first walk, not only at its next login or logout.
    let setup = TestSetup::new("spare_leaves = true\n", "");
    let user = TestUser::new("psr");
    let mut kill = Kill::default();
    let (_pid, first_leaf) = session_with_background(&setup, &user, &mut kill);
    // Dropped first (locals drop last to first): the daemon, then the session, then the tree.
    let _daemon = watching_daemon(&setup);
    let spare = wait_for_spare(&setup, &user.name, Some(&first_leaf));
    assert!(
        !populated(&spare),
        "the spare is empty until a login claims it"
    );
    assert!(populated(&first_leaf), "the open session is where it was");
}

#[test]
fn a_login_takes_the_leaf_made_ahead_which_its_customer_could_not_touch() {
    require_root();
    // A first login makes its own leaf; the daemon sees it and makes the user a spare.
    // Bound whole: its daemon and first session live as long as the test.
    let w = user_with_spare("max_descendants = 16\n", "psp");
    let (setup, user, spare) = (&w.setup, &w.user, w.spare.clone());

    // As a login would make it, still root's and closed.
    let meta = std::fs::metadata(&spare).unwrap();
    assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (0, 0o700));
    assert_eq!(read(&spare.join("cgroup.max.descendants")), "16");
    assert_eq!(read(&spare.join("cgroup.max.depth")), "4");
    assert!(spare.join("login").is_dir());
    assert!(!populated(&spare));
    // Named on the user cgroup, where the next login looks first.
    let user_dir = spare.parent().unwrap();
    assert_eq!(xattr_of(user_dir, SPARE_NAME_XATTR), Some(name_of(&spare)));

    // Its customer, who can list users/<user>/, tries to enter it and to build in it, and to
    // point the next login's claim elsewhere (its own leaf, a path out of its cgroup).
    let attack = format!(
        "ls {s} 2>/dev/null && echo listed; \
         echo $$ > {s}/login/cgroup.procs 2>/dev/null && echo entered-login; \
         echo $$ > {s}/cgroup.procs 2>/dev/null && echo entered; \
         mkdir {s}/mine 2>/dev/null && echo made; \
         mkdir {s}/login/mine 2>/dev/null && echo made-in-login; \
         python3 -c 'import os,sys; os.setxattr(sys.argv[1], \"{n}\", b\"session-s../../..\")' {u} \
           2>/dev/null && echo renamed; \
         echo done",
        s = spare.display(),
        u = user_dir.display(),
        n = SPARE_NAME_XATTR,
    );
    let out = user.command("sh").args(["-c", &attack]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "done",
        "the customer reached its spare: {out:?}"
    );
    assert!(!populated(&spare));
    assert!(is_spare(&spare));
    assert_eq!(xattr_of(user_dir, SPARE_NAME_XATTR), Some(name_of(&spare)));

    // No view takes it for a session; gc keeps it.
    let sessions = ctl_json(setup, &["sessions", &user.name, "--all", "--json"]);
    let spare_id = spare
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("session-")
        .to_string();
    assert!(
        !sessions.to_string().contains(&spare_id),
        "the spare is listed as a session: {sessions}"
    );
    ctl_ok(setup, &["gc", "--min-age", "0"]);
    assert!(spare.is_dir(), "gc removed the spare");

    // The next login claims it: its process enters the spare's login/, the leaf is handed
    // over with the session's mark, and the daemon makes the next spare.
    let release = setup.dir.path().join("release");
    let login = held_login(setup, &user.name, &release);
    wait_for_value("the login in the spare", Duration::from_secs(20), || {
        populated(&spare).then_some(())
    });
    assert!(!is_spare(&spare));
    assert!(xattr_of(&spare, "trusted.pam_cgroup.session").is_some());
    assert_eq!(std::fs::metadata(&spare).unwrap().uid(), user.uid);
    let next = wait_for_spare(setup, &user.name, Some(&spare));
    assert_ne!(next, spare);
    std::fs::write(&release, "").unwrap();
    let r = login.join().unwrap();
    assert_eq!((r.open_rc, r.close_rc), (0, Some(0)), "{r:?}");
    assert_eq!(
        setup.tree.session_leaf_of(&r.cgroup_after_open),
        spare,
        "{r:?}"
    );
    assert!(r.cgroup_after_open.ends_with("/login"), "{r:?}");
}

#[test]
fn a_spare_made_before_the_caps_were_lowered_is_claimed_with_the_new_caps() {
    require_root();
    // Bound whole: its daemon and first session live as long as the test.
    let w = user_with_spare("", "psc");
    let (setup, user, spare) = (&w.setup, &w.user, w.spare.clone());
    assert_eq!(read(&spare.join("cgroup.max.descendants")), "64");

    // The admin lowers the caps; the module reads the config at each login.
    setup.write_config_with_tree(
        "spare_leaves = true\nmax_descendants = 3\nmax_depth = 2\n",
        "",
    );
    let r = run_session(&setup.pam_dir(), &user.name, &SessionOptions::no_close());
    assert_eq!(r.open_rc, 0, "{r:?}");
    assert_eq!(
        setup.tree.session_leaf_of(&r.cgroup_after_open),
        spare,
        "{r:?}"
    );
    assert_eq!(read(&spare.join("cgroup.max.descendants")), "3");
    assert_eq!(read(&spare.join("cgroup.max.depth")), "2");

    // The admin turns spares off: gc gives back the one the daemon made meanwhile.
    let next = wait_for_spare(setup, &user.name, Some(&spare));
    setup.write_config_with_tree("max_descendants = 3\nmax_depth = 2\n", "");
    ctl_ok(setup, &["gc", "--min-age", "0"]);
    assert!(!next.exists(), "gc kept a spare with spare_leaves off");
}

#[test]
fn two_logins_racing_for_one_spare_each_get_a_leaf_of_their_own() {
    require_root();
    // Bound whole: its daemon and first session live as long as the test.
    let w = user_with_spare("", "psr");
    let (setup, user, first_leaf) = (&w.setup, &w.user, &w.first_leaf);

    let release = setup.dir.path().join("release");
    let logins: Vec<_> = (0..4)
        .map(|_| held_login(setup, &user.name, &release))
        .collect();
    // Every login holds its session open until all of them are in.
    wait_for_value("four open sessions", Duration::from_secs(20), || {
        let open = setup
            .tree
            .session_leaves(&user.name)
            .into_iter()
            .filter(|l| populated(l) && *l != *first_leaf)
            .count();
        (open == 4).then_some(())
    });
    std::fs::write(&release, "").unwrap();
    let mut leaves: Vec<PathBuf> = logins
        .into_iter()
        .map(|t| {
            let r = t.join().unwrap();
            assert_eq!((r.open_rc, r.close_rc), (0, Some(0)), "{r:?}");
            setup.tree.session_leaf_of(&r.cgroup_after_open)
        })
        .collect();
    leaves.sort();
    leaves.dedup();
    assert_eq!(leaves.len(), 4, "two logins shared a leaf: {leaves:?}");
}

#[test]
fn a_stale_or_forged_spare_name_still_finds_the_spare() {
    require_root();
    // Bound whole: its daemon and first session live as long as the test.
    let w = user_with_spare("", "psn");
    let (setup, user, spare) = (&w.setup, &w.user, w.spare.clone());
    let user_dir = spare.parent().unwrap().to_path_buf();
    // A name that is no leaf (the spare it named claimed and reaped), one that is a session
    // that is no spare, and one that is not a spare's name at all: each login lists the user
    // cgroup and claims the spare there.
    let first = name_of(&w.first_leaf);
    let mut spare = spare;
    for stale in ["session-s00000000", first.as_str(), "session-s../../.."] {
        set_xattr_of(&user_dir, SPARE_NAME_XATTR, stale);
        let r = run_session(&setup.pam_dir(), &user.name, &SessionOptions::no_close());
        assert_eq!(r.open_rc, 0, "hint {stale:?}: {r:?}");
        assert_eq!(
            setup.tree.session_leaf_of(&r.cgroup_after_open),
            spare,
            "hint {stale:?}: {r:?}"
        );
        assert!(populated(&w.first_leaf), "the first session was left alone");
        spare = wait_for_spare(setup, &user.name, Some(&spare));
    }
}
