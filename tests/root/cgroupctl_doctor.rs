//! `cgroupctl doctor` against deliberately broken setups: a fake /proc (its self/mountinfo)
//! and cgroup2 mount in temporary directories, PAM stacks in a temporary pam.d, a logind.conf,
//! and configs that are invalid or writable by others.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use pam_cgroup_tests::support::{require_root, TestSetup, TestTree};

use crate::cgroupctl::{cgroupctl_bin, describe};

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    /// A fake proc dir whose mountinfo lists `cgroup2_at` (if any) and /proc with `proc_opts`,
    /// a fake cgroup2 mount offering only `controllers`, pam.d stacks and a logind.conf.
    fn new(with_cgroup2: bool, proc_opts: &str, controllers: &str) -> Fake {
        let dir = tempfile::Builder::new()
            .prefix("pct-doctor-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("proc/self")).unwrap();
        std::fs::create_dir_all(d.join("cg")).unwrap();
        std::fs::write(d.join("cg/cgroup.controllers"), format!("{controllers}\n")).unwrap();
        let mut mi = format!("22 1 0:5 / /proc rw,nosuid - proc proc {proc_opts}\n");
        if with_cgroup2 {
            mi.push_str(&format!(
                "41 31 0:38 / {} rw - cgroup2 cgroup2 rw\n",
                d.join("cg").display()
            ));
        }
        mi.push_str("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
        std::fs::write(d.join("proc/self/mountinfo"), mi).unwrap();
        std::fs::create_dir(d.join("pam.d")).unwrap();
        std::fs::create_dir(d.join("systemd")).unwrap();
        std::fs::write(d.join("systemd/logind.conf"), "[Login]\nRemoveIPC=yes\n").unwrap();
        Fake { dir }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn stack(&self, service: &str, text: &str) {
        std::fs::write(self.path("pam.d").join(service), text).unwrap();
    }

    /// Runs doctor with --json; returns the exit code and check -> (status, finding).
    fn doctor(&self, config: &Path) -> (Option<i32>, Vec<Value>, String) {
        let o = std::process::Command::new(cgroupctl_bin())
            .arg("--config")
            .arg(config)
            .args(["doctor", "--json", "--pam-dir"])
            .arg(self.path("pam.d"))
            .arg("--proc")
            .arg(self.path("proc"))
            .arg("--logind-conf")
            .arg(self.path("systemd/logind.conf"))
            .output()
            .unwrap();
        let v: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&o)));
        (o.status.code(), v.as_array().unwrap().clone(), describe(&o))
    }
}

fn status_of<'a>(findings: &'a [Value], check: &str) -> &'a str {
    findings
        .iter()
        .find(|f| f["check"] == check)
        .and_then(|f| f["status"].as_str())
        .unwrap_or_else(|| panic!("no finding {check}: {findings:?}"))
}

fn assert_explained(findings: &[Value]) {
    for f in findings {
        if f["status"] != "OK" {
            assert!(f["why"].is_string() && f["fix"].is_string(), "{f}");
        }
    }
}

#[test]
fn doctor_fails_missing_controllers_programs_hidepid_and_bad_pam_stacks() {
    require_root();
    let fake = Fake::new(true, "rw", "hugetlb misc");
    let root = fake.path("cg/pct-root");
    let text = format!(
        "[tree]\nroot = \"{}\"\n[private_ip]\nenabled = true\n",
        root.display()
    );
    let setup = TestSetup::with_raw_config(TestTree::new(), &text, "");
    // sshd: no module at all; su: pam_systemd after us; cron: the documented order;
    // login: via an included common file; sudo: not installed.
    fake.stack(
        "sshd",
        "session required pam_unix.so\n@include common-session-x\n",
    );
    fake.stack("common-session-x", "session optional pam_systemd.so\n");
    fake.stack(
        "su",
        "session required pam_cgroup.so\nsession optional pam_systemd.so\n",
    );
    fake.stack("cron", "-session optional pam_systemd.so\nsession [success=ok default=bad] /lib/x86_64-linux-gnu/security/pam_cgroup.so\n");
    fake.stack(
        "common-ok",
        "session optional pam_systemd.so\nsession required pam_cgroup.so\n",
    );
    // login also has the account part (issue 13), through an included file; cron has not.
    fake.stack(
        "common-account-x",
        "account [success=ok new_authtok_reqd=ok ignore=ignore module_unknown=ignore default=bad] pam_cgroup.so\n",
    );
    fake.stack("login", "@include common-ok\n@include common-account-x\n");
    setup.write_user_file("pcsusp", "[suspend]\nreason = \"unpaid\"\n");

    let (code, f, all) = fake.doctor(&setup.config_path());
    assert_eq!(code, Some(1), "{all}");
    assert_eq!(status_of(&f, "cgroup2"), "OK", "{all}");
    assert_eq!(status_of(&f, "controllers"), "FAIL", "{all}");
    assert_eq!(status_of(&f, "config"), "OK", "{all}");
    assert_eq!(status_of(&f, "config-permissions"), "OK", "{all}");
    assert_eq!(status_of(&f, "private-ip"), "FAIL", "{all}");
    // No [proc] in the config: hidepid "off", the shipped default, is information.
    assert_eq!(status_of(&f, "hidepid"), "INFO", "{all}");
    assert_eq!(status_of(&f, "pam:sshd"), "FAIL", "{all}");
    assert_eq!(status_of(&f, "pam:su"), "FAIL", "{all}");
    assert_eq!(status_of(&f, "pam:cron"), "OK", "{all}");
    assert_eq!(status_of(&f, "pam:login"), "OK", "{all}");
    assert_eq!(status_of(&f, "pam:sudo"), "WARN", "{all}");
    assert_eq!(status_of(&f, "pam-account:login"), "OK", "{all}");
    assert_eq!(status_of(&f, "pam-account:cron"), "WARN", "{all}");
    assert_eq!(status_of(&f, "suspended"), "INFO", "{all}");
    assert!(all.contains("pcsusp (unpaid)"), "{all}");
    assert_eq!(status_of(&f, "logind"), "WARN", "{all}");
    assert_explained(&f);
    // Every WARN says when it matters; fixes name the package's own PAM line.
    for w in f.iter().filter(|x| x["status"] == "WARN") {
        assert!(w["why"].as_str().unwrap().contains("matters"), "{w}");
    }
    let sshd = f.iter().find(|x| x["check"] == "pam:sshd").unwrap();
    assert!(
        sshd["fix"]
            .as_str()
            .unwrap()
            .contains(cgroup_core::doctor::PACKAGE_PAM_LINE),
        "{sshd}"
    );
    let su = f.iter().find(|x| x["check"] == "pam:su").unwrap();
    assert!(
        su["summary"].as_str().unwrap().contains("pam_systemd.so"),
        "{su}"
    );
    let ctl = f.iter().find(|x| x["check"] == "controllers").unwrap();
    assert!(
        ctl["fix"].as_str().unwrap().contains("memory"),
        "v1-bound controllers named: {ctl}"
    );

    // The text form: one OK/WARN/FAIL line per finding, then why and fix.
    let o = std::process::Command::new(cgroupctl_bin())
        .arg("--config")
        .arg(setup.config_path())
        .args(["doctor", "--pam-dir"])
        .arg(fake.path("pam.d"))
        .arg("--proc")
        .arg(fake.path("proc"))
        .arg("--logind-conf")
        .arg(fake.path("systemd/logind.conf"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("FAIL pam:sshd")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("why: ")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("fix: ")),
        "{text}"
    );

    // An `optional` line (or a bracket control that ignores a refusal) lets a refused login in
    // unconfined, whatever on_error says: FAIL, with the default on_error = "open" too.
    for control in ["optional", "[success=ok default=ignore]"] {
        fake.stack(
            "cron",
            &format!("session optional pam_systemd.so\nsession {control} pam_cgroup.so\n"),
        );
        let (code, f, all) = fake.doctor(&setup.config_path());
        assert_eq!(code, Some(1), "{all}");
        assert_eq!(status_of(&f, "pam:cron"), "FAIL", "{control}: {all}");
    }

    // A line before ours that can let a login through without reaching it: in the session
    // stack that login is unconfined (FAIL); in the account stack only the session part is
    // left to refuse a suspended user (WARN). libpam-sss's profile puts `sufficient
    // pam_localuser.so` in common-account, above our (lower-priority) line.
    fake.stack(
        "cron",
        "session optional pam_systemd.so\nsession sufficient pam_localuser.so\nsession required pam_cgroup.so\n",
    );
    fake.stack(
        "common-account-x",
        "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\naccount requisite pam_deny.so\naccount required pam_permit.so\naccount sufficient pam_localuser.so\naccount [default=bad success=ok user_unknown=ignore] pam_sss.so\naccount [success=ok new_authtok_reqd=ok ignore=ignore module_unknown=ignore default=bad] pam_cgroup.so\n",
    );
    let (code, f, all) = fake.doctor(&setup.config_path());
    assert_eq!(code, Some(1), "{all}");
    assert_eq!(status_of(&f, "pam:cron"), "FAIL", "{all}");
    assert_eq!(status_of(&f, "pam-account:login"), "WARN", "{all}");
    let account = f
        .iter()
        .find(|x| x["check"] == "pam-account:login")
        .unwrap();
    assert!(
        account["summary"]
            .as_str()
            .unwrap()
            .contains("`sufficient pam_localuser.so` at common-account-x:4"),
        "{account}"
    );
    assert_explained(&f);
    // Debian's own common-account (no libpam-sss): pam_unix's jump and its
    // `new_authtok_reqd=done` never skip our line.
    fake.stack(
        "common-account-x",
        "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\naccount requisite pam_deny.so\naccount required pam_permit.so\naccount [success=ok new_authtok_reqd=ok ignore=ignore module_unknown=ignore default=bad] pam_cgroup.so\n",
    );
    let (_, f, all) = fake.doctor(&setup.config_path());
    assert_eq!(status_of(&f, "pam-account:login"), "OK", "{all}");
}

#[test]
fn doctor_fails_missing_cgroup2_bad_config_and_writable_config() {
    require_root();
    let fake = Fake::new(false, "rw,hidepid=invisible,gid=4", "");
    let setup = TestSetup::with_raw_config(TestTree::new(), "[limits]\n\"pids.max\" = 0\n", "");
    std::fs::write(fake.path("systemd/logind.conf"), "[Login]\nRemoveIPC=no\n").unwrap();
    let (code, f, all) = fake.doctor(&setup.config_path());
    assert_eq!(code, Some(1), "{all}");
    assert_eq!(status_of(&f, "cgroup2"), "FAIL", "{all}");
    assert_eq!(status_of(&f, "config"), "FAIL", "{all}");
    let config = f.iter().find(|x| x["check"] == "config").unwrap();
    assert!(
        config["summary"].as_str().unwrap().contains("pids.max"),
        "{config}"
    );
    assert_eq!(status_of(&f, "hidepid"), "OK", "{all}");
    assert_eq!(status_of(&f, "logind"), "OK", "{all}");
    assert_explained(&f);

    // The config asks for hidepid and /proc has none: FAIL.
    let fake_off = Fake::new(true, "rw", "");
    setup.write_config("[proc]\nhidepid = \"invisible\"\n");
    let (_, f, all) = fake_off.doctor(&setup.config_path());
    assert_eq!(status_of(&f, "hidepid"), "FAIL", "{all}");

    setup.write_config("[limits]\n\"pids.max\" = 10\n");
    std::fs::set_permissions(setup.config_path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, f, all) = fake.doctor(&setup.config_path());
    assert_eq!(code, Some(1), "{all}");
    assert_eq!(status_of(&f, "config-permissions"), "FAIL", "{all}");

    // A user file others can read (an admin's hand-made 0644): WARN, the file named.
    std::fs::set_permissions(setup.config_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let users = setup.config_path().parent().unwrap().join("users");
    std::fs::create_dir_all(&users).unwrap();
    let by_hand = users.join("pcdreadable.toml");
    std::fs::write(&by_hand, "[limits]\n\"pids.max\" = 10\n").unwrap();
    std::fs::set_permissions(&by_hand, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, f, all) = fake.doctor(&setup.config_path());
    assert_eq!(status_of(&f, "user-files-readable"), "WARN", "{all}");
    assert!(all.contains("pcdreadable.toml (644)"), "{all}");
    std::fs::set_permissions(&by_hand, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, f, all) = fake.doctor(&setup.config_path());
    assert!(
        f.iter().all(|x| x["check"] != "user-files-readable"),
        "{all}"
    );
}
