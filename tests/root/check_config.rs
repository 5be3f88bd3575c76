//! `cgroupctl check` runs every config check `doctor` runs: each mistake an administrator
//! made in the review that `check` once passed is answered here by `check` itself.

use serde_json::Value;

use pam_cgroup_tests::support::{require_root, TestSetup};

use crate::cgroupctl::{ctl, describe};

/// `check --json` of `text` as the whole config: (exit code, report).
fn check(setup: &TestSetup, text: &str) -> (Option<i32>, Value) {
    setup.write_config(text);
    let o = ctl(setup, &["check", "--json"]);
    let report = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("check --json: {e}: {}", describe(&o)));
    (o.status.code(), report)
}

/// The status and summary of the finding `name` in a check report.
fn finding(report: &Value, name: &str) -> (String, String) {
    let f = report["findings"]
        .as_array()
        .and_then(|all| all.iter().find(|f| f["check"] == name))
        .unwrap_or_else(|| panic!("no {name} finding: {report:#}"));
    (
        f["status"].as_str().unwrap_or_default().to_string(),
        f["summary"].as_str().unwrap_or_default().to_string(),
    )
}

/// The CPUs online, counted as doctor counts them (sysconf): the test's own affinity or
/// cpuset may be smaller, which would put its "above the host" value below what doctor sees.
fn online_cpus() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u64::try_from(n).unwrap_or(1).max(1)
}

#[test]
fn check_answers_each_config_mistake_doctor_finds() {
    require_root();
    let setup = TestSetup::new("", "");
    let tree = format!("[tree]\nroot = \"{}\"\n", setup.tree.root.display());

    // A tree outside any cgroup2 mount: FAIL, exit 1 (problems found).
    let outside = tempfile::tempdir().unwrap();
    let (code, r) = check(
        &setup,
        &format!("[tree]\nroot = \"{}\"\n", outside.path().display()),
    );
    assert_eq!(finding(&r, "tree-root").0, "FAIL", "{r:#}");
    assert_eq!(r["valid"], false, "{r:#}");
    assert_eq!(code, Some(1), "{r:#}");

    // A plan group NSS does not know: a WARN that names it.
    let (_, r) = check(
        &setup,
        &format!("{tree}[profiles.pro]\n\"pids.max\" = 400\n[groups]\npcnosuchgroup = \"pro\"\n"),
    );
    let (status, summary) = finding(&r, "plan-groups");
    assert_eq!(status, "WARN", "{r:#}");
    assert!(summary.contains("pcnosuchgroup"), "{summary}");

    // memory.max = 0 (and memory.high = 0) are refused like pids.max = 0: the file is broken,
    // exit 3, and the position is given.
    for key in ["memory.max", "memory.high", "pids.max"] {
        let (code, r) = check(&setup, &format!("{tree}[limits]\n\"{key}\" = 0\n"));
        assert_eq!(code, Some(3), "{key} = 0: {r:#}");
        assert_eq!(finding(&r, "config").0, "FAIL", "{key} = 0: {r:#}");
        assert_eq!(r["line"], 4, "{key} = 0: {r:#}");
        assert_eq!(r["key"], format!("limits.{key}"), "{key} = 0: {r:#}");
    }

    // memory.high at or above memory.max (in a plan): a WARN naming the plan.
    let (_, r) = check(
        &setup,
        &format!("{tree}[profiles.big]\n\"memory.max\" = \"1G\"\n\"memory.high\" = \"2G\"\n"),
    );
    let (status, summary) = finding(&r, "memory-high");
    assert_eq!(status, "WARN", "{r:#}");
    assert!(summary.contains("big"), "{summary}");

    // cpu.max above what this host has: a WARN with the host's CPUs.
    let percent = (online_cpus() + 1) * 100;
    let (_, r) = check(
        &setup,
        &format!("{tree}[limits]\n\"cpu.max\" = \"{percent}%\"\n"),
    );
    let (status, summary) = finding(&r, "cpu-max");
    assert_eq!(status, "WARN", "{r:#}");
    assert!(summary.contains(&format!("{percent}%")), "{summary}");

    // And a clean file passes: every one of these findings OK, exit 0.
    let (code, r) = check(&setup, &format!("{tree}[limits]\n\"pids.max\" = 100\n"));
    assert_eq!(code, Some(0), "{r:#}");
    for name in ["tree-root", "memory-high", "cpu-max"] {
        assert_eq!(finding(&r, name).0, "OK", "{name}: {r:#}");
    }
}
