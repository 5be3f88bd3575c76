//! A broken config (an administrator's typo) never changes what customers get: every file
//! that parsed is kept by root as the last good one, and a login, `reload`, the daemon and
//! every verb meet a broken file with its last good copy, whole (limits, plans, policy); the
//! error is logged once per change, `check` and `doctor` FAIL with file:line:col: key, and
//! the daemon raises `pam_cgroup_config_broken`. Only on a host where no good config was
//! ever kept does `on_error` decide — from what can be read of the broken file's `[policy]`:
//! root and exempt users always get in; every log line is one line.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use cgroup_core::config::last_good;
use cgroup_core::config::Config;
use cgroup_core::tree::user_cgroup::UserCgroup;
use cgroup_core::tree::Tree;
use pam_cgroup_tests::support::{
    require_root, run_session, wait_until, SessionOptions, SessionReport, TestGroup, TestSetup,
    TestTree, TestUser,
};

use crate::cgroupctl::{ctl, describe};

const PAM_SUCCESS: i32 = 0;

fn login(setup: &TestSetup, user: &str) -> SessionReport {
    run_session(&setup.pam_dir(), user, &SessionOptions::default())
}

/// `[policy]` with on_error closed and `admin` exempt, then `rest`.
fn closed_policy(admin: &str, rest: &str) -> String {
    format!("[policy]\non_error = \"closed\"\nexempt_users = [\"root\", \"{admin}\"]\n{rest}")
}

/// The documented outcome of a broken config on a "closed" host: the customer is refused and
/// not confined, the exempt admin and root get in untouched, and no log line has a raw
/// control character.
fn assert_still_closed(setup: &TestSetup, customer: &str, admin: &str, needle: &str) {
    let r = login(setup, customer);
    assert_ne!(r.open_rc, PAM_SUCCESS, "customer let in: {r:?}");
    assert_eq!(r.cgroup_after_open, r.cgroup_before, "{r:?}");
    let text = r.syslog_text();
    assert!(text.contains(needle), "no {needle:?} in {:?}", r.syslog);
    assert!(text.contains("on_error=closed"), "{:?}", r.syslog);
    for line in &r.syslog {
        assert!(
            !line.chars().any(|c| c.is_control()),
            "raw control character in {line:?}"
        );
    }
    for user in [admin, "root"] {
        let r = login(setup, user);
        assert_eq!(r.open_rc, PAM_SUCCESS, "{user} refused: {r:?}");
        assert_eq!(r.cgroup_after_open, r.cgroup_before, "{user} untouched");
        assert!(
            !r.syslog_text().contains("cannot be confined"),
            "{user} is exempt, not a customer without config: {:?}",
            r.syslog
        );
    }
}

#[test]
fn a_broken_line_after_a_valid_policy_keeps_the_host_closed() {
    require_root();
    let customer = TestUser::new("pcb");
    let admin = TestUser::new("pcb");
    let setup = TestSetup::new(&closed_policy(&admin.name, "[limits]\n[[broken\n"), "");
    assert_still_closed(&setup, &customer.name, &admin.name, "config.toml:");
}

#[test]
fn a_broken_line_inside_policy_loses_only_that_key() {
    require_root();
    let customer = TestUser::new("pcb");
    let admin = TestUser::new("pcb");
    let body = format!(
        "[policy]\nexempt_users = [\n  \"root\",\n  \"{}\",\n]\nmin_uid = = 1000\non_error = \"closed\"\n[limits]\n\"pids.max\" = 100\n",
        admin.name
    );
    let setup = TestSetup::new(&body, "");
    assert_still_closed(&setup, &customer.name, &admin.name, "config.toml:");
}

#[test]
fn with_nothing_readable_and_nothing_kept_the_defaults_apply() {
    require_root();
    let customer = TestUser::new("pcb");
    let setup = TestSetup::new("[[[\n", "");
    assert!(!kept_config(&setup).exists());
    // The documented "no config" reading: on_error open (unconfined), root exempt.
    let r = login(&setup, &customer.name);
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert_eq!(r.cgroup_after_open, r.cgroup_before, "{r:?}");
    assert!(r.syslog_text().contains("on_error=open"), "{:?}", r.syslog);
    assert!(
        r.syslog_text().contains("no good config was ever kept"),
        "{:?}",
        r.syslog
    );
    assert_eq!(login(&setup, "root").open_rc, PAM_SUCCESS);
    // With no good config ever seen, the verbs have nothing to work on: the file's error.
    let o = ctl(&setup, &["list"]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("config.toml:3:"),
        "{}",
        describe(&o)
    );
}

// ---- the last good config ------------------------------------------------------------------

/// The kept copy of the test's config.
fn kept_config(setup: &TestSetup) -> PathBuf {
    last_good::kept_config_path(&setup.config_path()).unwrap()
}

/// `cgroupctl check`: the administrator's word; keeps a good file at once.
fn check_ok(setup: &TestSetup) {
    let o = ctl(setup, &["check"]);
    assert!(o.status.success(), "{}", describe(&o));
}

/// The fingerprint a login writes on `users/<user>` for the config `text` (the one the module
/// computes from the limits it applies: `user_apply::desired_fingerprint`).
fn fingerprint_for(setup: &TestSetup, text: &str, user: &str) -> String {
    let config = Config::parse(&setup.config_path(), text).unwrap();
    let info = cgroup_core::nss::lookup_user(user).unwrap();
    let groups = cgroup_core::nss::group_names(&info).unwrap();
    let file = config.load_user_file_strict(user).unwrap();
    let limits = config.effective_limits(&groups, file.as_ref());
    cgroup_core::user_apply::desired_fingerprint(&config, &info, info.group_access(), &limits)
}

/// What the last login applied to `users/<user>`: its stamp.
fn applied(setup: &TestSetup, user: &str) -> String {
    let tree = Tree::locate_root(Some(&setup.tree.root)).unwrap();
    UserCgroup::open(&tree, user)
        .unwrap()
        .unwrap()
        .stamp()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// A login of `user` that must land in its own fence with the limits of `good` (the config
/// text or, for a user file test, the config whose user files are as they were).
fn assert_confined_as(setup: &TestSetup, user: &str, want: &str, what: &str) -> SessionReport {
    let r = login(setup, user);
    assert_eq!(r.open_rc, PAM_SUCCESS, "{what}: {r:?}");
    let fence = format!(
        "/{}/",
        setup
            .tree
            .user(user)
            .strip_prefix(&setup.tree.mount_point)
            .unwrap()
            .display()
    );
    assert!(
        r.cgroup_after_open.starts_with(&fence),
        "{what}: not in {fence}: {r:?}"
    );
    let stamp = applied(setup, user);
    assert!(
        stamp.starts_with(want),
        "{what}: the login applied {stamp:?}, not the last good limits {want:?}"
    );
    r
}

/// One line on stderr says the last good config is in use.
fn assert_verb_answers(setup: &TestSetup, args: &[&str], what: &str) {
    let o = ctl(setup, args);
    assert!(o.status.success(), "{what}: {args:?}: {}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: {args:?}: one line: {err}");
    assert!(
        lines[0].contains("using the last good config"),
        "{what}: {args:?}: {err}"
    );
}

#[test]
fn typos_in_config_toml_keep_the_last_good_config_whole() {
    require_root();
    let plan = TestGroup::new("pcp");
    let alice = TestUser::with_groups("pcb", &[&plan]);
    let admin = TestUser::new("pcb");
    let good_body = format!(
        "[policy]\non_error = \"open\"\nexempt_users = [\"root\", \"{admin}\"]\n\
         [limits]\n\"pids.max\" = 100\n\"memory.max\" = \"1G\"\n\
         [profiles.pro]\n\"pids.max\" = 300\n\
         [groups]\n{plan} = \"pro\"\n",
        admin = admin.name,
        plan = plan.name
    );
    let setup = TestSetup::new(&good_body, "");
    let good = std::fs::read_to_string(setup.config_path()).unwrap();
    check_ok(&setup);
    // Kept root-only, and a customer cannot read it.
    let kept = kept_config(&setup);
    let meta = std::fs::symlink_metadata(&kept).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o600), "{kept:?}");
    let dir = std::fs::symlink_metadata(kept.parent().unwrap()).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o7777), (0, 0o700));
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), good);
    let peek = alice.command("cat").arg(&kept).output().unwrap();
    assert!(!peek.status.success(), "a customer read the kept config");

    let want = fingerprint_for(&setup, &good, &alice.name);
    assert_confined_as(&setup, &alice.name, &want, "the good config");
    // The typos, each one change of the good file (the pids.max line is its 7th: [tree]
    // takes two lines, then safety_net = false below [policy]).
    let typos: Vec<(&str, String)> = vec![
        (
            "a bad value",
            good.replace("\"pids.max\" = 100", "\"pids.max\" = \"512x\""),
        ),
        (
            "an unknown key",
            good.replace("exempt_users", "exempt_user"),
        ),
        ("broken TOML", good.replace("[limits]", "[limits")),
        (
            "a wrong type",
            good.replace("on_error = \"open\"", "on_error = 1"),
        ),
        ("an unknown section", good.replace("[limits]", "[limitz]")),
        (
            "a plan that does not exist",
            good.replace(
                &format!("{} = \"pro\"", plan.name),
                &format!("{} = \"por\"", plan.name),
            ),
        ),
        (
            "memory.max = 0",
            good.replace("\"memory.max\" = \"1G\"", "\"memory.max\" = 0"),
        ),
    ];
    for (what, text) in &typos {
        assert_ne!(text, &good, "{what}: the typo changed nothing");
        std::fs::write(setup.config_path(), text).unwrap();
        let error = Config::parse(&setup.config_path(), text).unwrap_err();
        assert!(
            error.line.is_some() && error.column.is_some() && error.key.is_some(),
            "{what}: {error:?}"
        );
        let position = error.to_string();
        // The next login: confined, with the last good limits (plan pro's pids.max).
        let first = assert_confined_as(&setup, &alice.name, &want, what);
        assert!(
            first.syslog.iter().any(|l| l.starts_with("<83>")
                && l.contains(&position)
                && l.contains("using the last good config")),
            "{what}: the error with its place, once: {:?}",
            first.syslog
        );
        // Logged once per change, not at every login.
        let second = assert_confined_as(&setup, &alice.name, &want, what);
        assert!(
            !second.syslog_text().contains(&position),
            "{what}: logged again: {:?}",
            second.syslog
        );
        // The exempt admin of the last good policy stays exempt, whatever the file says.
        let r = login(&setup, &admin.name);
        assert_eq!(r.open_rc, PAM_SUCCESS, "{what}: {r:?}");
        assert_eq!(
            r.cgroup_after_open, r.cgroup_before,
            "{what}: admin confined"
        );
        // The admin still sees and works.
        assert_verb_answers(&setup, &["list"], what);
        assert_verb_answers(&setup, &["stats"], what);
        assert_verb_answers(&setup, &["sessions"], what);
        assert_verb_answers(&setup, &["show", &alice.name], what);
        // check and doctor FAIL, with the place.
        let o = ctl(&setup, &["check"]);
        assert_eq!(o.status.code(), Some(3), "{what}: {}", describe(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.lines()
                .any(|l| l.starts_with("FAIL") && l.contains(&position)),
            "{what}: {}",
            describe(&o)
        );
        let o = ctl(&setup, &["doctor", "--json"]);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", describe(&o));
        let findings: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let config = findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == "config")
            .unwrap();
        assert_eq!(config["status"], "FAIL", "{what}: {config}");
        assert_eq!(config["summary"], position.as_str(), "{what}: {config}");
        // reload applies the last good config whole, and says the file was not taken.
        let tree = Tree::locate_root(Some(&setup.tree.root)).unwrap();
        UserCgroup::open(&tree, &alice.name)
            .unwrap()
            .unwrap()
            .clear_stamp()
            .unwrap();
        let o = ctl(&setup, &["reload"]);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", describe(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("using the last good config"),
            "{what}: {}",
            describe(&o)
        );
        assert!(
            applied(&setup, &alice.name).starts_with(&want),
            "{what}: reload"
        );
        // The kept copy is still the good file.
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), good, "{what}");
    }
    // Fixed: a new good config is kept and applied.
    let newer = good.replace("\"pids.max\" = 300", "\"pids.max\" = 301");
    std::fs::write(setup.config_path(), &newer).unwrap();
    check_ok(&setup);
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), newer);
    let want = fingerprint_for(&setup, &newer, &alice.name);
    assert_confined_as(&setup, &alice.name, &want, "the fixed config");
}

#[test]
fn a_login_keeps_only_a_file_that_has_settled() {
    require_root();
    let alice = TestUser::new("pcb");
    let setup = TestSetup::new("[limits]\n\"pids.max\" = 100\n", "");
    let good = std::fs::read_to_string(setup.config_path()).unwrap();
    check_ok(&setup);
    let want = fingerprint_for(&setup, &good, &alice.name);
    // An editor that truncates the file and writes it again leaves a short, valid file for a
    // moment (here: the [tree] section only, no limits). A customer who logs in right then
    // gets that moment's config, but it does not become the last good one.
    let partial = format!("[tree]\nroot = \"{}\"\n", setup.tree.root.display());
    std::fs::write(setup.config_path(), &partial).unwrap();
    let moment = fingerprint_for(&setup, &partial, &alice.name);
    assert_ne!(moment, want);
    assert_confined_as(&setup, &alice.name, &moment, "the half-written file");
    // The write ends with a typo: the last good config is still the full one.
    std::fs::write(setup.config_path(), format!("{partial}[limits\n")).unwrap();
    assert_confined_as(
        &setup,
        &alice.name,
        &want,
        "a typo after the half-written file",
    );
    // The same short file left alone past the settling time is what the admin meant: kept.
    std::fs::write(setup.config_path(), &partial).unwrap();
    wait_until("the short file to settle", last_good::SETTLE * 10, || {
        let (secs, nanos) = last_good::config_changed_at(&setup.config_path()).unwrap();
        let changed = std::time::UNIX_EPOCH + std::time::Duration::new(secs as u64, nanos as u32);
        changed.elapsed().is_ok_and(|age| age >= last_good::SETTLE)
    });
    assert_confined_as(&setup, &alice.name, &moment, "the settled short file");
    std::fs::write(setup.config_path(), format!("{partial}[limits\n")).unwrap();
    assert_confined_as(
        &setup,
        &alice.name,
        &moment,
        "a typo after the settled file",
    );
}

#[test]
fn a_typo_in_a_user_file_keeps_its_last_good_copy() {
    require_root();
    let alice = TestUser::new("pcb");
    let carol = TestUser::new("pcb");
    let setup = TestSetup::new(
        "[limits]\n\"pids.max\" = 100\n[profiles.pro]\n\"pids.max\" = 300\n",
        "",
    );
    let config = std::fs::read_to_string(setup.config_path()).unwrap();
    let alice_good = "profile = \"pro\"\n\"memory.max\" = \"2G\"\n";
    setup.write_user_file(&alice.name, alice_good);
    let carol_good = "[suspend]\nreason = \"unpaid invoice\"\nsince = \"2026-01-01T00:00:00Z\"\n";
    setup.write_user_file(&carol.name, carol_good);
    check_ok(&setup);
    let kept = last_good::kept_user_path(&setup.config_path(), &alice.name).unwrap();
    let meta = std::fs::symlink_metadata(&kept).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o600), "{kept:?}");
    let want = fingerprint_for(&setup, &config, &alice.name);
    assert_confined_as(&setup, &alice.name, &want, "the good user file");
    assert_ne!(
        login(&setup, &carol.name).open_rc,
        PAM_SUCCESS,
        "carol is suspended"
    );

    let alice_file = setup.users_dir().join(format!("{}.toml", alice.name));
    for (what, text) in [
        ("a bad value", alice_good.replace("\"2G\"", "\"2Gx\"")),
        ("an unknown key", alice_good.replace("profile", "profil")),
        ("broken TOML", format!("{alice_good}[[x\n")),
        (
            "a plan that does not exist",
            alice_good.replace("pro", "por"),
        ),
    ] {
        std::fs::write(&alice_file, &text).unwrap();
        let r = assert_confined_as(&setup, &alice.name, &want, what);
        assert!(
            r.syslog.iter().any(|l| l.starts_with("<83>")
                && l.contains(&format!("{}.toml:", alice.name))
                && l.contains("using the last good user file")),
            "{what}: {:?}",
            r.syslog
        );
        let o = ctl(&setup, &["check"]);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", describe(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("FAIL")
                    && l.contains("user-files")
                    && l.contains(&format!("{}.toml:", alice.name))),
            "{what}: {}",
            describe(&o)
        );
    }
    // Made writable by others: refused, the copy stands in.
    std::fs::write(&alice_file, alice_good).unwrap();
    std::fs::set_permissions(&alice_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_confined_as(&setup, &alice.name, &want, "a group-writable user file");
    std::fs::set_permissions(&alice_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A typo in a suspended customer's file does not lift the suspension.
    let carol_file = setup.users_dir().join(format!("{}.toml", carol.name));
    std::fs::write(
        &carol_file,
        carol_good.replace("since = \"", "since = 1 # \""),
    )
    .unwrap();
    let r = login(&setup, &carol.name);
    assert_ne!(
        r.open_rc, PAM_SUCCESS,
        "the suspension was lifted by a typo: {r:?}"
    );
    assert_eq!(r.cgroup_after_open, r.cgroup_before);
    // A file removed on purpose is gone for good: its copy is forgotten, the plan defaults
    // apply, and a broken file written later has no copy to fall back on.
    std::fs::remove_file(&alice_file).unwrap();
    let defaults = fingerprint_for(&setup, &config, &alice.name);
    assert_ne!(defaults, want);
    assert_confined_as(&setup, &alice.name, &defaults, "no user file");
    assert!(!kept.exists(), "the copy of a removed file is kept");
}

#[test]
fn a_kept_config_that_is_not_root_only_is_not_followed() {
    require_root();
    let customer = TestUser::new("pcb");
    let admin = TestUser::new("pcb");
    let setup = TestSetup::new(&closed_policy(&admin.name, ""), "");
    check_ok(&setup);
    let kept = kept_config(&setup);
    // A kept file someone could have written: refused and said so; the broken file's own
    // readable [policy] (none here: the header is broken) and the defaults apply.
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o644)).unwrap();
    setup.write_config_with_tree("", "[policy\n");
    let r = login(&setup, &customer.name);
    assert!(
        r.syslog_text().contains("last good config not used"),
        "{:?}",
        r.syslog
    );
    assert_eq!(r.open_rc, PAM_SUCCESS, "defaults: on_error open: {r:?}");
    assert_eq!(r.cgroup_after_open, r.cgroup_before, "{r:?}");
}

#[test]
fn a_deleted_or_untrusted_config_is_met_with_the_last_good_one() {
    require_root();
    let customer = TestUser::new("pcb");
    let admin = TestUser::new("pcb");
    let setup = TestSetup::new(
        &closed_policy(&admin.name, "[limits]\n\"pids.max\" = 77\n"),
        "",
    );
    let good = std::fs::read_to_string(setup.config_path()).unwrap();
    check_ok(&setup);
    let want = fingerprint_for(&setup, &good, &customer.name);
    // Made group-writable: nothing of the file is trusted; the last good config is.
    std::fs::set_permissions(setup.config_path(), std::fs::Permissions::from_mode(0o664)).unwrap();
    let r = assert_confined_as(&setup, &customer.name, &want, "a group-writable config");
    assert!(
        r.syslog_text().contains("writable by group or others"),
        "{:?}",
        r.syslog
    );
    // Deleted.
    std::fs::remove_file(setup.config_path()).unwrap();
    let r = assert_confined_as(&setup, &customer.name, &want, "a deleted config");
    assert!(r.syslog_text().contains("No such file"), "{:?}", r.syslog);
    let r = login(&setup, &admin.name);
    assert_eq!(r.open_rc, PAM_SUCCESS);
    assert_eq!(
        r.cgroup_after_open, r.cgroup_before,
        "the admin stays exempt"
    );
}

#[test]
fn the_daemon_raises_config_broken_and_reloads_the_last_good_config() {
    use crate::cgroupctl_daemon::{scrape_unix, Daemon};
    use std::time::Duration;
    require_root();
    let alice = TestUser::new("pcb");
    let setup = TestSetup::new("[limits]\n\"pids.max\" = 100\n", "");
    let good = std::fs::read_to_string(setup.config_path()).unwrap();
    setup.write_user_file(&alice.name, "\"pids.max\" = 50\n");
    check_ok(&setup);
    let socket = setup.dir.path().join("metrics.sock");
    let socket_arg = socket.display().to_string();
    let daemon = Daemon::start_with(&setup, &["--scan-interval", "1", "--socket", &socket_arg]);
    wait_until("the metrics socket", Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let config = setup.config_path().display().to_string();
    let user_file = setup
        .users_dir()
        .join(format!("{}.toml", alice.name))
        .display()
        .to_string();
    let series = |file: &str, v: u8| format!("pam_cgroup_config_broken{{file=\"{file}\"}} {v}\n");
    let scrape = || scrape_unix(&socket).1;
    wait_until("config_broken 0", Duration::from_secs(10), || {
        scrape().contains(&series(&config, 0))
    });
    assert!(
        !scrape().contains(&user_file),
        "a good user file has no series"
    );
    // A typo: raised within a pass or two, logged once however many passes see it.
    std::fs::write(setup.config_path(), good.replace("100", "\"100x\"")).unwrap();
    let took = wait_until("config_broken 1", Duration::from_secs(10), || {
        scrape().contains(&series(&config, 1))
    });
    eprintln!("config_broken raised {took:?} after the typo");
    // Two more passes see it: one raises a broken user file's series, the next drops it.
    std::fs::write(&user_file, "\"memory.max\" = \"1x\"\n").unwrap();
    wait_until(
        "the broken user file's series",
        Duration::from_secs(10),
        || scrape().contains(&series(&user_file, 1)),
    );
    std::fs::write(&user_file, "\"pids.max\" = 50\n").unwrap();
    wait_until(
        "the user file's series to go",
        Duration::from_secs(10),
        || !scrape().contains(&user_file),
    );
    let log = daemon.log();
    assert_eq!(
        log.matches("limits.pids.max").count(),
        1,
        "logged once per change: {log}"
    );
    assert!(log.contains("use its last good copy"), "{log}");
    // SIGHUP: the last good config applied, said so.
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until("the reload's line", Duration::from_secs(10), || {
        daemon.log().contains("reload: ") && daemon.log().contains("using the last good config")
    });
    // A broken user file has its own series.
    std::fs::write(&user_file, "\"pids.max\" = \"50x\"\n").unwrap();
    wait_until("the user file's series", Duration::from_secs(10), || {
        scrape().contains(&series(&user_file, 1))
    });
    // Fixed: back to 0, and the user file's series is gone.
    std::fs::write(setup.config_path(), &good).unwrap();
    std::fs::write(&user_file, "\"pids.max\" = 50\n").unwrap();
    wait_until("config_broken 0 again", Duration::from_secs(10), || {
        let body = scrape();
        body.contains(&series(&config, 0)) && !body.contains(&user_file)
    });
    assert!(daemon.log().contains("parses again"), "{}", daemon.log());
}

/// A tree root mistyped, or moved without `cgroupctl init`: the file parses but names a tree
/// nobody set up. Logins stay in the tree that was set up, with the last good limits (with
/// `on_error = "open"` they would otherwise go unconfined), `check` FAILs at the `root` line
/// and the file is not kept; `init --move-root` is what makes it the config.
#[test]
fn a_mistyped_tree_root_keeps_logins_in_the_tree_that_was_set_up() {
    require_root();
    let customer = TestUser::new("pcb");
    let setup = TestSetup::new(
        "[policy]\non_error = \"open\"\n[limits]\n\"pids.max\" = 100\n",
        "",
    );
    check_ok(&setup);
    let good = std::fs::read_to_string(setup.config_path()).unwrap();
    let want = fingerprint_for(&setup, &good, &customer.name);
    assert_confined_as(&setup, &customer.name, &want, "the good config");

    // The new root: named, never made (dropped last: removed whatever happens).
    let moved = TestTree::new();
    let root_line = format!("root = \"{}\"", setup.tree.root.display());
    assert!(good.contains(&root_line), "{good}");
    let typo = good.replace(&root_line, &format!("root = \"{}\"", moved.root.display()));
    std::fs::write(setup.config_path(), &typo).unwrap();

    let r = assert_confined_as(&setup, &customer.name, &want, "a mistyped root");
    assert!(!moved.root.exists(), "a login made the mistyped root");
    let text = r.syslog_text();
    assert!(
        text.contains("does not exist") && text.contains("using the last good config"),
        "{:?}",
        r.syslog
    );
    let o = ctl(&setup, &["check"]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("config.toml:2:")
            && out.contains("tree.root")
            && out.contains("cgroupctl init"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(kept_config(&setup)).unwrap(),
        good,
        "the mistyped file was kept"
    );

    // init as the unit runs it at boot: the tree logins use, the typo named on stderr.
    let o = ctl(&setup, &["init"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(!moved.root.exists(), "init made the mistyped root");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--move-root"),
        "{}",
        describe(&o)
    );
    // The administrator meant it: init --move-root sets the new root up and keeps the file.
    let o = ctl(&setup, &["init", "--move-root"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(std::fs::read_to_string(kept_config(&setup)).unwrap(), typo);
    let r = login(&setup, &customer.name);
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    let moved_rel = moved
        .root
        .strip_prefix(&moved.mount_point)
        .unwrap()
        .display()
        .to_string();
    assert!(
        r.cgroup_after_open
            .starts_with(&format!("/{moved_rel}/users/")),
        "{r:?}"
    );
}
