//! Bad input answered as an administrator (or a script) expects: usage errors exit 2 like
//! clap's own, a non-root caller is told the verb needs root, errors come as JSON on stdout
//! when --json is given, `show` tells an unknown name from root, limits are shown in the
//! units the admin wrote while JSON keeps the kernel's text, and durations take units.

use std::process::Output;

use serde_json::Value;

use pam_cgroup_tests::support::{require_root, TestSetup, TestUser};

use crate::cgroupctl::{cgroupctl_bin, ctl, ctl_json, ctl_ok, describe, empty_session, stdout};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout as the JSON error object, with its code equal to the exit status.
fn json_error(o: &Output) -> Value {
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON on stdout ({e}): {}", describe(o)));
    assert_eq!(
        v["code"].as_i64(),
        o.status.code().map(i64::from),
        "{}",
        describe(o)
    );
    assert!(v["error"].is_string(), "{v}");
    v
}

#[test]
fn usage_errors_exit_2_and_come_as_json_when_asked() {
    require_root();
    let setup = TestSetup::new("", "");
    let user = TestUser::new("pue");

    // events --since yesterday: not a time cgroupctl reads.
    let o = ctl(&setup, &["events", "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        stderr(&o).contains("--since \"yesterday\""),
        "{}",
        describe(&o)
    );
    assert!(o.stdout.is_empty(), "{}", describe(&o));
    let o = ctl(&setup, &["events", "--since", "yesterday", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(json_error(&o)["error"]
        .as_str()
        .unwrap()
        .contains("yesterday"));

    // set USER with nothing to set; nothing is written.
    let o = ctl(&setup, &["set", &user.name]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(stderr(&o).contains("nothing to set"), "{}", describe(&o));
    let o = ctl(&setup, &["set", &user.name, "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    json_error(&o);
    let user_file = setup
        .config_path()
        .parent()
        .unwrap()
        .join("users")
        .join(format!("{}.toml", user.name));
    assert!(!user_file.exists(), "{}", user_file.display());
    // suspend with a reason it cannot keep: a usage error too, and nothing is written.
    let o = ctl(&setup, &["suspend", &user.name, "--reason", " "]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        stderr(&o).contains("--reason: must not be empty"),
        "{}",
        describe(&o)
    );
    assert!(!user_file.exists(), "{}", user_file.display());

    // A duration cgroupctl cannot read is clap's usage error; with units it is taken.
    let o = ctl(&setup, &["gc", "--min-age", "yesterday"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(stderr(&o).contains("a duration like"), "{}", describe(&o));
    let o = ctl(&setup, &["gc", "--min-age", "2h", "--json"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(stdout(&o).trim_start().starts_with('['), "{}", describe(&o));
    // clap's own usage errors, as JSON when --json is on the line.
    let o = ctl(&setup, &["list", "--no-such-option", "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        json_error(&o)["error"]
            .as_str()
            .unwrap()
            .contains("--no-such-option"),
        "{}",
        describe(&o)
    );
    // --help is no error: no JSON.
    let o = ctl(&setup, &["list", "--help", "--json"]);
    assert!(
        o.status.success() && !stdout(&o).starts_with('{'),
        "{}",
        describe(&o)
    );
}

#[test]
fn root_only_verbs_say_so_to_anyone_else() {
    require_root();
    let setup = TestSetup::new("", "");
    let customer = TestUser::new("pur");
    let run = |args: &[&str]| {
        customer
            .command(cgroupctl_bin().to_str().unwrap())
            .arg("--config")
            .arg(setup.config_path())
            .args(args)
            .output()
            .unwrap()
    };
    for verb in ["list", "sessions", "stats", "gc", "reload", "doctor"] {
        let o = run(&[verb]);
        let expected = format!(
            "cgroupctl {verb}: must be run as root (you are uid {})",
            customer.uid
        );
        assert_eq!(o.status.code(), Some(4), "{verb}: {}", describe(&o));
        assert!(
            stderr(&o).starts_with(&expected),
            "{verb}: {}",
            describe(&o)
        );
        assert!(!stderr(&o).contains("os error"), "{verb}: {}", describe(&o));
    }
    let o = run(&["list", "--json"]);
    assert!(
        json_error(&o)["error"]
            .as_str()
            .unwrap()
            .starts_with("cgroupctl list: must be run as root"),
        "{}",
        describe(&o)
    );
    // Verbs meant for anyone still run.
    let o = run(&["completions", "bash"]);
    assert!(o.status.success(), "{}", describe(&o));
}

#[test]
fn show_tells_root_from_an_unknown_name_and_prints_human_units() {
    require_root();
    let setup = TestSetup::new(
        "[limits]\n\"memory.max\" = \"4G\"\n\"cpu.max\" = \"200%\"\n\"pids.max\" = 300\n",
        "",
    );
    let user = TestUser::new("pus");
    empty_session(&setup, &user.name);

    let root = ctl(&setup, &["show", "root"]);
    let unknown = ctl(&setup, &["show", "nosuchuser-pus"]);
    assert!(!root.status.success() && !unknown.status.success());
    assert!(stderr(&root).contains("uid 0"), "{}", describe(&root));
    assert!(
        stderr(&unknown).contains("no such user"),
        "{}",
        describe(&unknown)
    );
    assert_ne!(stderr(&root), stderr(&unknown));
    let o = ctl(&setup, &["show", "nosuchuser-pus", "--json"]);
    assert!(json_error(&o)["error"]
        .as_str()
        .unwrap()
        .contains("no such user"));

    // Human units in text, the kernel's text in JSON.
    let text = ctl_ok(&setup, &["show", &user.name]);
    let row = |key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no {key} row: {text}"))
            .to_string()
    };
    assert!(row("memory.max").contains(" 4G "), "{text}");
    assert!(row("cpu.max").contains(" 200% "), "{text}");
    assert!(
        !text.contains("4294967296") && !text.contains("200000 100000"),
        "{text}"
    );
    let json = ctl_json(&setup, &["show", &user.name, "--json"]);
    let limits = json["limits"].as_array().unwrap();
    let configured = |key: &str| {
        limits
            .iter()
            .find(|l| l["key"] == key)
            .map(|l| l["configured"].clone())
            .unwrap()
    };
    assert_eq!(configured("memory.max"), "4294967296");
    assert_eq!(configured("cpu.max"), "200000 100000");

    let check = ctl_ok(&setup, &["check", "--user", &user.name]);
    assert!(
        check.contains(" 4G ") && check.contains(" 200% "),
        "{check}"
    );
    assert!(!check.contains("4294967296"), "{check}");
    let check = ctl_json(&setup, &["check", "--user", &user.name, "--json"]);
    let rows = check["user"]["limits"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|l| l["key"] == "memory.max" && l["value"] == "4294967296"),
        "{check}"
    );
}

#[test]
fn check_json_on_a_broken_file_prints_its_report() {
    require_root();
    let setup = TestSetup::new("[limits]\n\"pids.max\" = 100\n", "");
    setup.write_config("[limits]\n\"pids.max\" = \"512x\"\n");
    let o = ctl(&setup, &["check", "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&o)));
    assert_eq!(report["valid"], false, "{report}");
    assert_eq!(report["code"], 3, "{report}");
    assert_eq!(report["line"], 2, "{report}");
    assert!(
        report["key"].as_str().unwrap_or("").contains("pids.max"),
        "{report}"
    );
    assert!(
        report["error"].as_str().unwrap().contains("512x"),
        "{report}"
    );
    assert!(stderr(&o).contains("pids.max"), "{}", describe(&o));
}
