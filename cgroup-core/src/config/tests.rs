use std::path::Path;

use super::*;
use crate::limits::LimitKey;

const FULL: &str = r#"
[tree]
root = "/sys/fs/cgroup/unified/pam_cgroup"
max_descendants = 100
max_depth = 3
spare_leaves = true

[policy]
on_error = "closed"
exempt_users = ["root", "backup"]
exempt_groups = ["admins"]
min_uid = 1000

[limits]
"memory.max" = "1G"
"pids.max" = 512
"cpu.max" = "100%"

[profiles.pro]
"memory.max" = "4G"
"cpu.max" = "200%"

[profiles.gold]
"memory.max" = "8G"

[groups]
plan-pro = "pro"
plan-gold = "gold"

[private_ip]
enabled = true
min_gid = 2000
ports = "8000-8299"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/pam_cgroup/config.toml"), text)
}

fn value(c: &EffectiveLimits, key: LimitKey) -> (&str, String) {
    let r = &c.limits[&key];
    (r.limit.lines[0].as_str(), r.source.to_string())
}

#[test]
fn full_example_parses() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.policy.on_error, OnError::Closed);
    assert_eq!(c.tree.max_descendants, 100);
    assert!(c.tree.spare_leaves);
    assert_eq!(c.limits[&LimitKey::MemoryMax].lines, vec!["1073741824"]);
    assert_eq!(
        c.profiles["pro"][&LimitKey::CpuMax].lines,
        vec!["200000 100000"]
    );
    assert_eq!(c.groups[0], ("plan-pro".to_string(), "pro".to_string()));
    assert_eq!(c.private_ip.ports, 8000..=8299);
    assert!(c.private_ip.enabled);
}

#[test]
fn empty_file_gives_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.policy, Policy::default());
    assert!(c.limits.is_empty());
    assert_eq!(c.tree.max_depth, DEFAULT_MAX_DEPTH);
    assert!(!c.tree.spare_leaves);
    assert!(!c.private_ip.enabled);
}

#[test]
fn precedence_default_profile_user() {
    let c = parse(FULL).unwrap();
    // No plan group, no user file: defaults.
    let e = c.effective_limits(&[], None);
    assert_eq!(
        value(&e, LimitKey::MemoryMax),
        ("1073741824", "default".into())
    );
    // Plan group: profile beats defaults, defaults fill the rest.
    let e = c.effective_limits(&["users".into(), "plan-pro".into()], None);
    assert_eq!(e.profile.as_deref(), Some("pro"));
    assert_eq!(
        value(&e, LimitKey::MemoryMax),
        ("4294967296", "profile pro (group plan-pro)".into())
    );
    assert_eq!(value(&e, LimitKey::PidsMax), ("512", "default".into()));
    // User file: its keys beat the profile; its profile beats the group's.
    let uf = UserFile::parse(
        Path::new("/etc/pam_cgroup/users/alice.toml"),
        "profile = \"gold\"\n\"pids.max\" = 64\n",
        &c,
    )
    .unwrap();
    let e = c.effective_limits(&["plan-pro".into()], Some(&uf));
    assert_eq!(e.profile.as_deref(), Some("gold"));
    assert_eq!(
        value(&e, LimitKey::MemoryMax),
        ("8589934592", "profile gold (user file)".into())
    );
    assert_eq!(value(&e, LimitKey::PidsMax), ("64", "user file".into()));
    assert_eq!(
        value(&e, LimitKey::CpuMax),
        ("100000 100000", "default".into())
    );
}

#[test]
fn two_plan_groups_first_line_of_groups_wins() {
    let c = parse(FULL).unwrap();
    // NSS order must not matter: plan-pro is listed first in [groups].
    for groups in [
        vec!["plan-gold".to_string(), "plan-pro".to_string()],
        vec!["plan-pro".to_string(), "plan-gold".to_string()],
    ] {
        assert_eq!(
            c.effective_limits(&groups, None).profile.as_deref(),
            Some("pro")
        );
    }
}

fn err(text: &str) -> ConfigError {
    parse(text).unwrap_err()
}

#[test]
fn unknown_keys_are_refused_with_place() {
    let e = err("[policy]\nonerror = \"open\"\n");
    assert_eq!(e.line, Some(2));
    assert!(e.reason.contains("onerror"), "{e}");
    let e = err("[limitz]\n");
    assert!(e.reason.contains("limitz"), "{e}");
    let e = err("[tree]\nroot = \"/sys/fs/cgroup/x\"\nfoo = 1\n");
    assert_eq!(e.line, Some(3));
}

#[test]
fn bad_limit_names_file_line_column_key() {
    let e = err("[limits]\n\"memory.max\" = \"1G\"\n\"pids.max\" = 0\n");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.column, Some(14));
    assert_eq!(e.key.as_deref(), Some("limits.pids.max"));
    let shown = e.to_string();
    assert!(
        shown.starts_with("/etc/pam_cgroup/config.toml:3:14: limits.pids.max: "),
        "{shown}"
    );
    let e = err("[profiles.pro]\n\"cpu.max\" = \"fast\"\n");
    assert_eq!(e.key.as_deref(), Some("profiles.pro.cpu.max"));
    let e = err("[limits]\n\"memory.maximum\" = \"1G\"\n");
    assert_eq!(e.key.as_deref(), Some("limits.memory.maximum"));
    assert!(e.reason.contains("unknown limit key"), "{e}");
}

#[test]
fn wrong_types_and_values() {
    for (text, key) in [
        ("[policy]\non_error = \"maybe\"\n", "policy.on_error"),
        ("[policy]\nmin_uid = -1\n", "policy.min_uid"),
        ("[policy]\nmin_uid = \"1000\"\n", "policy.min_uid"),
        ("[tree]\nroot = \"relative\"\n", "tree.root"),
        ("[tree]\nroot = \"/a/../b\"\n", "tree.root"),
        ("[tree]\nmax_depth = 0\n", "tree.max_depth"),
        ("[tree]\nspare_leaves = \"yes\"\n", "tree.spare_leaves"),
        ("[private_ip]\nports = \"9000-8000\"\n", "private_ip.ports"),
        ("[private_ip]\nports = \"x\"\n", "private_ip.ports"),
        ("[private_ip]\nmin_gid = 16777216\n", "private_ip.min_gid"),
        ("[limits]\n\"memory.max\" = true\n", "limits.memory.max"),
        ("[groups]\nplan = \"nope\"\n", "groups.plan"),
    ] {
        let e = err(text);
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert_eq!(e.line, Some(2), "{text}: {e}");
    }
}

#[test]
fn syntax_error_has_a_line() {
    let e = err("[limits]\n\"memory.max\" = \n");
    assert_eq!(e.line, Some(2), "{e}");
    let e = err("[limits\n");
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn user_file_errors() {
    let c = parse(FULL).unwrap();
    let p = Path::new("/etc/pam_cgroup/users/alice.toml");
    let e = UserFile::parse(p, "profile = \"platinum\"\n", &c).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("profile"));
    assert_eq!(e.file, p);
    let e = UserFile::parse(p, "\"memory.max\" = \"lots\"\n", &c).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("memory.max"));
    assert_eq!(e.line, Some(1));
    let e = UserFile::parse(p, "color = \"blue\"\n", &c).unwrap_err();
    assert!(e.reason.contains("unknown limit key"), "{e}");
}

#[test]
fn fallback_policy_reads_what_it_can() {
    // Broken limits, valid policy: the admin's exemptions and on_error still hold.
    let text = "[policy]\non_error = \"closed\"\nexempt_users = [\"ops\"]\nmin_uid = 500\n[limits]\n\"pids.max\" = 0\n";
    assert!(parse(text).is_err());
    let p = Policy::fallback(Some(text), None);
    assert_eq!(p.on_error, OnError::Closed);
    assert!(p.exempt_users.contains(&"ops".to_string()));
    assert!(p.exempt_users.contains(&"root".to_string()));
    // Never lower than the default floor.
    assert_eq!(p.min_uid, 1000);
    // Nothing readable and no kept policy: the defaults.
    assert_eq!(Policy::fallback(Some("[[["), None), Policy::default());
    assert_eq!(Policy::fallback(None, None), Policy::default());
}

#[test]
fn fallback_policy_from_a_broken_file_and_the_last_valid_one() {
    let kept = parse("[policy]\non_error = \"closed\"\nexempt_users = [\"ops\"]\nmin_uid = 500\n")
        .unwrap()
        .policy;
    // Nothing readable: the last valid policy, whole (it was validated).
    assert_eq!(Policy::fallback(Some("[[["), Some(&kept)), kept);
    assert_eq!(Policy::fallback(None, Some(&kept)), kept);
    // A broken [policy] header: its keys are not trusted, the kept policy decides.
    let p = Policy::fallback(Some("[policy\non_error = \"open\"\n"), Some(&kept));
    assert_eq!(p.on_error, OnError::Closed);
    // What the broken file still says beats the kept copy, key by key.
    let p = Policy::fallback(
        Some("[policy]\non_error = \"open\"\nexempt_users = [\"dba\"\n[[x\n"),
        Some(&kept),
    );
    assert_eq!(p.on_error, OnError::Open);
    assert_eq!(
        p.exempt_users, kept.exempt_users,
        "unreadable key: kept value"
    );
    // A broken line after a valid [policy], no kept copy.
    let p = Policy::fallback(
        Some("[policy]\non_error = \"closed\"\nexempt_users = [\"dba\"]\n[limits]\n[[broken\n"),
        None,
    );
    assert_eq!(p.on_error, OnError::Closed);
    assert_eq!(p.exempt_users, vec!["root".to_string(), "dba".to_string()]);
}

#[test]
fn port_ranges() {
    assert_eq!(parse_port_range("8080"), Ok(8080..=8080));
    assert_eq!(parse_port_range("1-65535"), Ok(1..=65535));
    assert!(parse_port_range("0-10").is_err());
    assert!(parse_port_range("70000").is_err());
}

#[test]
fn secure_read_refuses_writable_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    std::fs::write(&f, "").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let running_as_root = nix::unistd::geteuid().is_root();
    let e = read_secure(&f, Follow::Symlinks, false).unwrap_err();
    if running_as_root {
        assert!(e.reason.contains("writable by group or others"), "{e}");
    } else {
        assert!(e.reason.contains("not root"), "{e}");
    }
    // A missing optional file is fine; a symlinked user file is not.
    assert_eq!(
        read_secure(&dir.path().join("none.toml"), Follow::NoSymlinks, true).unwrap(),
        None
    );
    let link = dir.path().join("l.toml");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
    let e = read_secure(&link, Follow::NoSymlinks, true).unwrap_err();
    assert!(e.reason.contains("symbolic link"), "{e}");
}

#[test]
fn no_service_is_exempt_by_default_and_the_user_manager_is_fenced() {
    use crate::config::UserManager;
    let c = parse("").unwrap();
    assert!(c.policy.exempt_services.is_empty());
    assert_eq!(c.policy.user_manager, UserManager::Fence);
    let c =
        parse("[policy]\nexempt_services = [\"lightdm\"]\nuser_manager = \"refuse\"\n").unwrap();
    assert_eq!(c.policy.exempt_services, vec!["lightdm".to_string()]);
    assert_eq!(c.policy.user_manager, UserManager::Refuse);
    let e = parse("[policy]\nuser_manager = \"outside\"\n").unwrap_err();
    assert!(e.to_string().contains("policy.user_manager"), "{e}");
    // A broken file adds what it names to the exempt services, and never lets the user
    // managers out: user_manager is not read from it.
    let p = Policy::fallback(
        Some("[policy]\nexempt_services = [\"x\"]\nuser_manager = \"unconfined\"\n[limits]\nbad = 1\n"),
        None,
    );
    assert_eq!(p.exempt_services, vec!["x".to_string()]);
    assert_eq!(p.user_manager, UserManager::Fence);
}

#[test]
fn sessions_max_follows_the_precedence_of_limits() {
    let text = r#"
[limits]
"sessions.max" = 10
[profiles.pro]
"sessions.max" = 20
[profiles.free]
"memory.max" = "1G"
[groups]
plan-pro = "pro"
plan-free = "free"
[sessions]
uncounted_services = ["cron"]
"#;
    let c = parse(text).unwrap();
    assert!(!c.limits.is_empty() || c.sessions_max.is_some());
    let source = |r: Option<(u32, LimitSource)>| r.map(|(n, s)| (n, s.to_string()));
    assert_eq!(
        source(c.sessions_max_for(&[], None)),
        Some((10, "default".into()))
    );
    assert_eq!(
        source(c.sessions_max_for(&["plan-free".into()], None)),
        Some((10, "default".into())),
        "a profile without the key keeps the default"
    );
    assert_eq!(
        source(c.sessions_max_for(&["plan-pro".into()], None)),
        Some((20, "profile pro (group plan-pro)".into()))
    );
    let user = UserFile::parse(Path::new("/u.toml"), "\"sessions.max\" = 2\n", &c).unwrap();
    assert_eq!(
        source(c.sessions_max_for(&["plan-pro".into()], Some(&user))),
        Some((2, "user file".into()))
    );
    let lifted = UserFile::parse(Path::new("/u.toml"), "\"sessions.max\" = \"max\"\n", &c).unwrap();
    assert_eq!(
        c.sessions_max_for(&[], Some(&lifted)),
        None,
        "max lifts the cap"
    );
    assert!(c.sessions.counts("sshd"));
    assert!(!c.sessions.counts("cron"));
    let d = parse("").unwrap();
    assert!(!d.sessions.counts("cron") && !d.sessions.counts("atd") && d.sessions.counts("su"));
    let e = err("[limits]\n\"sessions.max\" = 0\n");
    assert!(e.to_string().contains("limits.sessions.max"), "{e}");
    assert!(e.to_string().contains("suspend"), "{e}");
    assert!(err("[sessions]\nnope = 1\n").to_string().contains("nope"));
}

#[test]
fn suspend_table_of_a_user_file() {
    let c = parse("").unwrap();
    let f = UserFile::parse(
        Path::new("/u.toml"),
        "\"pids.max\" = 5\n[suspend]\nreason = \"unpaid\"\nsince = \"2026-12-01T12:00:00Z\"\n",
        &c,
    )
    .unwrap();
    assert_eq!(
        f.suspend,
        Some(Suspension {
            reason: "unpaid".into(),
            since: Some("2026-12-01T12:00:00Z".into())
        })
    );
    for bad in [
        "suspend = \"x\"\n",
        "[suspend]\nsince = \"x\"\n",
        "[suspend]\nreason = \"\"\n",
        "[suspend]\nreason = \"a\\nb\"\n",
        "[suspend]\nreason = \"x\"\nextra = 1\n",
    ] {
        let e = UserFile::parse(Path::new("/u.toml"), bad, &c).unwrap_err();
        assert!(e.to_string().contains("suspend"), "{bad}: {e}");
    }
}

#[test]
fn events_section_defaults_and_errors_have_a_line() {
    let c = parse("").unwrap();
    assert_eq!(c.events, EventsConfig::default());
    let c = parse(
        "[events]\nhistory_dir = \"/tmp/ev\"\nhistory_size = \"1M\"\ncpu_throttled_percent = 80\nrepeat_after = 5\n",
    )
    .unwrap();
    assert_eq!(c.events.history_dir, std::path::PathBuf::from("/tmp/ev"));
    assert_eq!(c.events.history_size, 1 << 20);
    assert_eq!(c.events.cpu_throttled_percent, 80);
    assert_eq!(c.events.repeat_after_secs, 5);
    for (text, key) in [
        ("[events]\n\nhistory_size = \"1K\"\n", "events.history_size"),
        (
            "[events]\n\nhistory_dir = \"rel/x\"\n",
            "events.history_dir",
        ),
        (
            "[events]\n\nhistory_dir = \"/a/../b\"\n",
            "events.history_dir",
        ),
        (
            "[events]\n\nio_pressure_percent = 101\n",
            "events.io_pressure_percent",
        ),
        ("[events]\n\ntop_processes = 0\n", "events.top_processes"),
    ] {
        let e = err(text);
        assert_eq!(e.line, Some(3), "{text}: {e}");
        assert!(e.to_string().contains(key), "{text}: {e}");
    }
    assert_eq!(err("[events]\nbogus = 1\n").line, Some(2));
}

#[test]
fn uids_above_max_uid_are_never_confined() {
    use crate::nss::UserInfo;
    use crate::policy::exemption;
    let c = parse("").unwrap();
    assert_eq!(c.policy.max_uid, 60000);
    let user = |uid| UserInfo {
        name: "x".into(),
        uid,
        gid: uid,
    };
    assert!(exemption(&c.policy, &user(65534), None).is_some(), "nobody");
    assert!(
        exemption(&c.policy, &user(61184), None).is_some(),
        "a dynamic user"
    );
    assert!(exemption(&c.policy, &user(60000), None).is_none());
    let c = parse("[policy]\nmax_uid = 70000\n").unwrap();
    assert_eq!(c.policy.max_uid, 70000);
    let e = parse("[policy]\nmin_uid = 5000\nmax_uid = 4000\n").unwrap_err();
    assert!(e.to_string().contains("policy.max_uid"), "{e}");
    // A broken file never raises the ceiling.
    let p = Policy::fallback(Some("[policy]\nmax_uid = 70000\n[limits]\nbad = 1\n"), None);
    assert_eq!(p.max_uid, 60000);
}
