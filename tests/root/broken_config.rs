//! A config whose syntax breaks after it was valid (issue 18): `on_error = "closed"` and the
//! exemptions still hold — from what can be read of the broken file's `[policy]`, else from the
//! last valid policy kept in /var/lib/pam_cgroup. Root and exempt users always get in; every
//! log line is one line.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use pam_cgroup_tests::support::{
    require_root, run_session, SessionOptions, SessionReport, TestSetup, TestUser,
};

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
fn a_broken_policy_header_follows_the_last_valid_policy_kept_by_a_login() {
    require_root();
    let customer = TestUser::new("pcb");
    let admin = TestUser::new("pcb");
    let setup = TestSetup::new(&closed_policy(&admin.name, ""), "");
    // A valid config: the customer is confined, and the module keeps the policy.
    let r = login(&setup, &customer.name);
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert_ne!(r.cgroup_after_open, r.cgroup_before, "confined: {r:?}");
    let kept = kept_policy_file(&setup.config_path());
    let meta = std::fs::symlink_metadata(&kept).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o600), "{kept:?}");
    let dir = std::fs::symlink_metadata(kept.parent().unwrap()).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o7777), (0, 0o700));
    // [policy] itself broken: its keys cannot be trusted to be [policy]'s, nor read at all.
    setup.write_config_with_tree(
        "",
        "[policy\non_error = \"open\"\nexempt_users = [\"root\"]\n",
    );
    assert_still_closed(&setup, &customer.name, &admin.name, "config.toml:");
    // An unreadable on_error line under a good header: the kept value too.
    setup.write_config_with_tree("", "[policy]\non_error = \"clo\n");
    assert_still_closed(&setup, &customer.name, &admin.name, "config.toml:");
}

#[test]
fn a_missing_or_untrusted_config_follows_the_policy_kept_by_cgroupctl_check() {
    require_root();
    let customer = TestUser::new("pcb");
    let admin = TestUser::new("pcb");
    let setup = TestSetup::new(&closed_policy(&admin.name, ""), "");
    let out = Command::new(cgroupctl())
        .arg("--config")
        .arg(setup.config_path())
        .arg("check")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(kept_policy_file(&setup.config_path()).exists());
    // Made group-writable: nothing of the file is trusted, the kept policy is.
    std::fs::set_permissions(setup.config_path(), std::fs::Permissions::from_mode(0o664)).unwrap();
    assert_still_closed(
        &setup,
        &customer.name,
        &admin.name,
        "writable by group or others",
    );
    // Deleted.
    std::fs::remove_file(setup.config_path()).unwrap();
    assert_still_closed(&setup, &customer.name, &admin.name, "No such file");
}

#[test]
fn with_nothing_readable_and_nothing_kept_the_defaults_apply() {
    require_root();
    let customer = TestUser::new("pcb");
    let setup = TestSetup::new("[[[\n", "");
    assert!(!kept_policy_file(&setup.config_path()).exists());
    // The documented "no config" reading: on_error open (unconfined), root exempt.
    let r = login(&setup, &customer.name);
    assert_eq!(r.open_rc, PAM_SUCCESS, "{r:?}");
    assert_eq!(r.cgroup_after_open, r.cgroup_before, "{r:?}");
    assert!(r.syslog_text().contains("on_error=open"), "{:?}", r.syslog);
    assert_eq!(login(&setup, "root").open_rc, PAM_SUCCESS);
}

#[test]
fn a_kept_policy_that_is_not_root_only_is_not_followed() {
    require_root();
    let customer = TestUser::new("pcb");
    let admin = TestUser::new("pcb");
    let setup = TestSetup::new(&closed_policy(&admin.name, ""), "");
    assert_eq!(login(&setup, &customer.name).open_rc, PAM_SUCCESS);
    let kept = kept_policy_file(&setup.config_path());
    // A kept file someone could have written: refused and said so; the defaults apply.
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o666)).unwrap();
    setup.write_config_with_tree("", "[policy\n");
    let r = login(&setup, &customer.name);
    assert!(
        r.syslog_text().contains("last valid policy not used"),
        "{:?}",
        r.syslog
    );
    assert_eq!(r.open_rc, PAM_SUCCESS, "defaults: on_error open: {r:?}");
}

fn kept_policy_file(config: &Path) -> std::path::PathBuf {
    let name = cgroup_core::state_dir::escape_path(config).unwrap();
    Path::new(cgroup_core::state_dir::STATE_DIR).join(format!("last-good-policy@{name}"))
}

fn cgroupctl() -> std::path::PathBuf {
    pam_cgroup_tests::support::driver::driver().with_file_name("cgroupctl")
}
