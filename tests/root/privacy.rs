//! What a customer learns of its neighbours from the tree: `users/` stays traversable (a
//! customer's tools open their own cgroup by the path in /proc/self/cgroup), but a user
//! cgroup is named `<user>.<tag>` under a key only root reads, so another customer can name
//! nothing in it: `stat users/<name>` answers ENOENT whether that user has a cgroup or not,
//! and so does any tag it guesses.

use std::path::Path;
use std::process::Command;

use pam_cgroup_tests::support::driver::driver;

use pam_cgroup_tests::support::{require_root, run_session, SessionOptions, TestSetup, TestUser};

use crate::cgroupctl::ctl_ok;

/// `stat PATH` as `who`, a real unprivileged process: its stderr when it fails, `None` when
/// it succeeds.
fn stat_as(who: &TestUser, path: &Path) -> Option<String> {
    let out = who.command("stat").arg(path).output().unwrap();
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_nothing_to_see(
    bob: &TestUser,
    bob_leaf: &Path,
    setup: &TestSetup,
    alice: &str,
    when: &str,
) {
    let users = setup.tree.users();
    for guess in [
        alice.to_string(),
        format!("{alice}.0000000000000000"),
        format!("{alice}.{}", "f".repeat(16)),
    ] {
        let path = users.join(&guess);
        let err = stat_as(bob, &path);
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("No such file or directory")),
            "{when}: bob's stat of {} answered {err:?}, not ENOENT",
            path.display()
        );
    }
    let list = bob.command("ls").arg(&users).output().unwrap();
    assert!(!list.status.success(), "{when}: bob lists users/");
    // Watching users/ for new names (an inotify loop would see every first login) needs read
    // access to the directory, which customers lack. Run from bob's own session leaf.
    let out = Command::new(driver().with_file_name("escape-probe"))
        .arg("--cgroup")
        .arg(bob_leaf)
        .args(["--uid", &bob.uid.to_string(), "--gid", &bob.gid.to_string()])
        .arg(format!("race:{}=0", users.display()))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!("\"errno\":{}", libc::EACCES)),
        "{when}: bob's inotify watch on users/ answered {report} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The tag is keyed: the key is root's alone (no customer computes a neighbour's name).
    let key = Path::new(cgroup_core::paths::STATE_DIR).join(cgroup_core::paths::TREE_KEY_FILE);
    assert!(key.is_file(), "{when}: no tree key at {}", key.display());
    let read = bob.command("cat").arg(&key).output().unwrap();
    assert!(
        !read.status.success() && read.stdout.is_empty(),
        "{when}: bob read the tree key {}",
        key.display()
    );
}

#[test]
fn a_customer_cannot_tell_whether_a_neighbour_has_a_cgroup_and_its_own_path_works() {
    require_root();
    let setup = TestSetup::new("", "");
    let alice = TestUser::new("pgp");
    let bob = TestUser::new("pgp");
    // Bob's own login makes the tree; alice has no cgroup yet.
    let r = run_session(&setup.pam_dir(), &bob.name, &SessionOptions::no_close());
    assert_eq!(r.open_rc, 0, "{r:?}");
    let bob_leaf = setup.tree.session_leaf_of(&r.cgroup_after_open);
    assert_nothing_to_see(&bob, &bob_leaf, &setup, &alice.name, "before alice's login");

    // Alice logs in and stays: her cgroup exists, with a live leaf.
    let script = r#"cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
stat -c %F "$1$cg" >/dev/null && grep -qx "$$" "$1$cg/cgroup.procs" && echo "own:$cg""#;
    let r = run_session(
        &setup.pam_dir(),
        &alice.name,
        &SessionOptions {
            as_user: true,
            no_close: true,
            command: vec![
                "sh".into(),
                "-c".into(),
                script.into(),
                "sh".into(),
                setup.tree.mount_point.display().to_string(),
            ],
            ..SessionOptions::default()
        },
    );
    assert_eq!(r.open_rc, 0, "{r:?}");
    let alice_dir = setup.tree.user(&alice.name);
    assert!(alice_dir.is_dir(), "{r:?}");
    assert_nothing_to_see(&bob, &bob_leaf, &setup, &alice.name, "with alice logged in");

    // Alice's tools: her own cgroup, by the path the kernel shows her, through users/.
    let own = r
        .child_stdout
        .lines()
        .find_map(|l| l.strip_prefix("own:"))
        .unwrap_or_else(|| panic!("alice could not use her own cgroup path: {r:?}"));
    let dir_name = alice_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        own.contains(&format!("/users/{dir_name}/session-")),
        "alice's /proc/self/cgroup shows {own}, not her keyed cgroup {dir_name}"
    );
    assert!(
        stat_as(&alice, &alice_dir).is_none(),
        "alice stats her own cgroup"
    );
}

/// A tree of a version before the keyed names: `users/<user>` with a live session. New logins
/// go to `users/<user>.<tag>`; the levers reach both, `path --all` names both, and once the
/// legacy cgroup empties gc removes it (never the user's own).
#[test]
fn a_legacy_user_cgroup_keeps_its_session_is_reached_by_the_levers_and_goes_once_empty() {
    require_root();
    let setup = TestSetup::new("", "");
    let alice = TestUser::new("pgl");
    // The user's own cgroup (and the tree) from a first login.
    let r = run_session(&setup.pam_dir(), &alice.name, &SessionOptions::no_close());
    assert_eq!(r.open_rc, 0, "{r:?}");
    let own = setup.tree.user(&alice.name);
    // What the older version left: users/<user>, root's, with a session leaf holding a
    // process of the user.
    let legacy = setup.tree.legacy_user(&alice.name);
    let leaf = legacy.join("session-1");
    std::fs::create_dir_all(&leaf).unwrap();
    let mut old = alice.command("sleep").arg("120").spawn().unwrap();
    std::fs::write(leaf.join("cgroup.procs"), format!("{}\n", old.id())).unwrap();

    let paths = ctl_ok(&setup, &["path", "--all", &alice.name]);
    assert_eq!(
        paths.lines().collect::<Vec<_>>(),
        vec![own.to_str().unwrap(), legacy.to_str().unwrap()]
    );
    ctl_ok(&setup, &["freeze", &alice.name]);
    let frozen = |dir: &Path| {
        std::fs::read_to_string(dir.join("cgroup.events"))
            .unwrap()
            .contains("frozen 1")
    };
    assert!(frozen(&legacy) && frozen(&own), "freeze reaches both");
    ctl_ok(&setup, &["thaw", &alice.name]);
    assert!(!frozen(&legacy), "thaw reaches the legacy cgroup");

    ctl_ok(&setup, &["gc", "--min-age", "0"]);
    assert!(leaf.is_dir(), "a live legacy session stays");
    ctl_ok(&setup, &["kill", &alice.name]);
    let _ = old.wait();
    ctl_ok(&setup, &["gc", "--min-age", "0"]);
    assert!(!legacy.exists(), "the emptied legacy cgroup is removed");
    assert!(own.is_dir(), "the user's own cgroup stays");
}
