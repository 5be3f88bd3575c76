//! `cgroupctl` driven as an administrator would: the built binary, against sessions opened
//! through real libpam, on the real cgroup2 mount. Stats fields whose controller this machine
//! lacks must be absent (null / omitted), never 0.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use pam_cgroup_tests::support::cgroup::populated;
use pam_cgroup_tests::support::{
    require_root, run_session, wait_for_value, wait_until, SessionOptions, TestGroup, TestSetup,
    TestUser,
};

/// The built cgroupctl, beside the test binary's directory (target/<profile>/cgroupctl).
pub fn cgroupctl_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("cgroupctl");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p cgroupctl` first",
        bin.display()
    );
    bin
}

/// Runs `cgroupctl --config <setup's config> ARGS`.
pub fn ctl(setup: &TestSetup, args: &[&str]) -> Output {
    Command::new(cgroupctl_bin())
        .arg("--config")
        .arg(setup.config_path())
        .args(args)
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs and expects success.
pub fn ctl_ok(setup: &TestSetup, args: &[&str]) -> String {
    let o = ctl(setup, args);
    assert!(o.status.success(), "cgroupctl {args:?}: {}", describe(&o));
    stdout(&o)
}

pub fn ctl_json(setup: &TestSetup, args: &[&str]) -> Value {
    let text = ctl_ok(setup, args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("cgroupctl {args:?}: bad JSON {e}: {text}"))
}

/// Is a controller offered at the top of the cgroup2 mount (not on this machine)?
pub fn controller_available(mount_point: &Path, name: &str) -> bool {
    std::fs::read_to_string(mount_point.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| c == name)
}

/// Parses Prometheus text with the Python prometheus_client parser (the reference one);
/// returns [[family, type, [[sample, labels, value]...]]...].
pub fn parse_prometheus(text: &str) -> Value {
    const SCRIPT: &str = r#"
import json, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("prometheus_client is not installed: pip install prometheus_client")
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append([f.name, f.type, [[s.name, s.labels, str(s.value)] for s in f.samples]])
print(json.dumps(out))
"#;
    let out = output_with_stdin(
        Command::new("python3").args(["-c", SCRIPT]),
        text,
        "python3",
    );
    assert!(
        out.status.success(),
        "the Prometheus parser refused the text: {}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `cmd` with `text` on its standard input; its output (`needs`: what to install when it
/// cannot be started).
pub fn output_with_stdin(cmd: &mut Command, text: &str, needs: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(needs);
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Kills the listed processes on drop (background processes tests leave in leaves).
#[derive(Default)]
pub struct Kill(pub Vec<u32>);

impl Drop for Kill {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Opens a session that leaves a background `sleep` in its leaf (like a nohup'd daemon);
/// returns the sleep's pid and the leaf's path.
pub fn session_with_background(
    setup: &TestSetup,
    user: &TestUser,
    kill: &mut Kill,
) -> (u32, PathBuf) {
    let (pids, leaf) = session_with_sleeps(setup, user, 1);
    kill.0.extend(&pids);
    (pids[0], leaf)
}

/// Opens a session that leaves `n` background `sleep`s (as the user) in its leaf's `login/`;
/// returns their pids and the session leaf.
pub fn session_with_sleeps(setup: &TestSetup, user: &TestUser, n: usize) -> (Vec<u32>, PathBuf) {
    // setpriv rather than the driver's --as-user: that one calls setgroups after setuid
    // (EPERM), so the child would never start.
    let one = format!(
        "setpriv --reuid={} --regid={} --init-groups sleep 120 >/dev/null 2>&1 </dev/null & echo $!",
        user.uid, user.gid
    );
    let r = run_session(
        &setup.pam_dir(),
        &user.name,
        &SessionOptions {
            no_close: true,
            command: vec!["sh".into(), "-c".into(), vec![one; n].join("; ")],
            ..SessionOptions::default()
        },
    );
    assert_eq!(r.open_rc, 0, "{r:?}");
    let pids: Vec<u32> = r
        .child_stdout
        .split_whitespace()
        .map(|p| p.parse().unwrap_or_else(|_| panic!("{r:?}")))
        .collect();
    assert_eq!(pids.len(), n, "{r:?}");
    // setpriv execs sleep in place: wait until each pid runs as the user.
    let uid = user.uid.to_string();
    for pid in &pids {
        for _ in 0..200 {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    (pids, setup.tree.session_leaf_of(&r.cgroup_after_open))
}

/// Opens a session and leaves its leaf behind, empty (the driver exits inside it).
pub fn empty_session(setup: &TestSetup, user: &str) -> PathBuf {
    let r = run_session(&setup.pam_dir(), user, &SessionOptions::no_close());
    assert_eq!(r.open_rc, 0, "{r:?}");
    setup.tree.session_leaf_of(&r.cgroup_after_open)
}

pub fn cgroup_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string()
}

#[test]
fn list_show_stats_report_live_sessions_and_absent_fields() {
    require_root();
    let setup = TestSetup::new("[limits]\n\"pids.max\" = 100\n", "");
    let user = TestUser::new("pcl");
    let mut kill = Kill::default();
    let (sleep_pid, busy_leaf) = session_with_background(&setup, &user, &mut kill);
    let empty_leaf = empty_session(&setup, &user.name);
    let mount = setup.tree.mount_point.clone();

    let list = ctl_json(&setup, &["list", "--json"]);
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"] == user.name.as_str())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(row["sessions"], 2, "{row}");
    assert_eq!(row["uid"], user.uid, "{row}");
    if controller_available(&mount, "memory") {
        assert!(row["memory_bytes"].is_u64(), "{row}");
    } else {
        assert!(row["memory_bytes"].is_null(), "absent must be null: {row}");
        assert!(row["memory_max"].is_null(), "{row}");
    }
    if !controller_available(&mount, "pids") {
        assert!(row["pids"].is_null(), "{row}");
    }
    let text = ctl_ok(&setup, &["list"]);
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("USER") && header.contains("SESSIONS"),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with(&user.name)), "{text}");

    let show = ctl_json(&setup, &["show", &user.name, "--json"]);
    let leaves = show["leaves"].as_array().unwrap();
    assert_eq!(leaves.len(), 2, "{show}");
    let busy_name = busy_leaf.file_name().unwrap().to_str().unwrap();
    let busy = leaves
        .iter()
        // The session's processes start in its login/ (the leaf's own cgroup, root's).
        .find(|l| l["path"] == format!("{busy_name}/login").as_str())
        .unwrap_or_else(|| panic!("{show}"));
    assert_eq!(busy["kind"], "session");
    let procs = busy["processes"].as_array().unwrap();
    assert!(
        procs
            .iter()
            .any(|p| p["pid"] == sleep_pid && p["uid"] == user.uid),
        "{show}"
    );
    let empty_name = empty_leaf.file_name().unwrap().to_str().unwrap();
    assert!(
        leaves
            .iter()
            .any(|l| l["path"] == format!("{empty_name}/login").as_str()
                && l["processes"].as_array().unwrap().is_empty()),
        "{show}"
    );
    let limits = show["limits"].as_array().unwrap();
    assert!(
        limits
            .iter()
            .any(|l| l["key"] == "pids.max" && l["source"] == "default"),
        "{show}"
    );
    let show_text = ctl_ok(&setup, &["show", &user.name]);
    assert!(show_text.contains(&sleep_pid.to_string()), "{show_text}");

    let stats = ctl_json(&setup, &["stats", "--json", "--user", &user.name]);
    let s = &stats[0];
    assert_eq!(s["user"], user.name.as_str());
    assert!(
        s["cpu"]["usage_usec"].is_u64(),
        "cpu.stat usage exists in every cgroup: {s}"
    );
    if !controller_available(&mount, "memory") {
        assert!(s["memory_events"].is_null(), "{s}");
        assert!(s["memory_peak_bytes"].is_null(), "{s}");
    }
    if !controller_available(&mount, "cpu") {
        assert!(s["cpu"]["throttled_usec"].is_null(), "{s}");
    }
    if !controller_available(&mount, "pids") {
        assert!(s["pids_events_max"].is_null(), "{s}");
    }
    if !controller_available(&mount, "io") {
        assert!(s["io"].is_null(), "{s}");
    }

    let prom = ctl_ok(&setup, &["stats", "--prometheus"]);
    let families = parse_prometheus(&prom);
    let names: Vec<&str> = families
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f[0].as_str().unwrap())
        .collect();
    assert!(prom.contains("# HELP pam_cgroup_sessions "), "{prom}");
    assert!(
        prom.contains("# TYPE pam_cgroup_cpu_usage_seconds_total counter"),
        "{prom}"
    );
    let sessions = families
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[0] == "pam_cgroup_sessions")
        .unwrap_or_else(|| panic!("{names:?}"));
    assert!(
        sessions[2]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s[1]["user"] == user.name.as_str()
                && s[2].as_str().and_then(|v| v.parse::<f64>().ok()) == Some(2.0)),
        "{sessions}"
    );
    if controller_available(&mount, "memory") {
        assert!(
            names.contains(&"pam_cgroup_memory_events"),
            "fault counters: {names:?}"
        );
    } else {
        assert!(
            !prom.contains("pam_cgroup_memory_current_bytes"),
            "absent must be omitted: {prom}"
        );
        assert!(!prom.contains("pam_cgroup_memory_events_total"), "{prom}");
    }
    drop(kill);
}

#[test]
fn set_writes_the_user_file_atomically_and_applies_live() {
    require_root();
    let setup = TestSetup::new(
        "[limits]\n\"pids.max\" = 100\n[profiles.pro]\n\"pids.max\" = 400\n",
        "",
    );
    let user = TestUser::new("pcs");
    setup.write_user_file(
        &user.name,
        "# customer 42, plan agreed 2024-05\n\"pids.max\" = 50 # burst\n",
    );
    empty_session(&setup, &user.name);
    let mount = setup.tree.mount_point.clone();
    let file = setup.users_dir().join(format!("{}.toml", user.name));

    let out = ctl_ok(&setup, &["set", &user.name, "memory.max=2G", "pids.max=70"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("# customer 42, plan agreed 2024-05"),
        "{text}"
    );
    assert!(text.contains("\"pids.max\" = 70 # burst"), "{text}");
    assert!(text.contains("\"memory.max\" = \"2G\""), "{text}");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o600));
    let stray: Vec<_> = std::fs::read_dir(setup.users_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != ".lock")
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
    // The lock `set` takes is root's alone: no customer can open it, let alone hold it.
    let lock = std::fs::metadata(setup.users_dir().join(".lock")).unwrap();
    assert_eq!((lock.uid(), lock.mode() & 0o7777), (0, 0o600));
    let user_dir = setup.tree.user(&user.name);
    if controller_available(&mount, "memory") {
        assert_eq!(
            std::fs::read_to_string(user_dir.join("memory.max"))
                .unwrap()
                .trim(),
            "2147483648"
        );
    } else {
        assert!(
            out.contains("memory.max = 2147483648 not applied: controller memory is not available"),
            "{out}"
        );
    }
    if controller_available(&mount, "pids") {
        assert_eq!(
            std::fs::read_to_string(user_dir.join("pids.max"))
                .unwrap()
                .trim(),
            "70"
        );
    }
    // The module reads the file as written (check resolves it the same way).
    let check = ctl_json(&setup, &["check", "--user", &user.name, "--json"]);
    assert!(
        check["user"]["limits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["key"] == "pids.max" && l["value"] == "70"),
        "{check}"
    );

    // Refusals leave the file alone: bad value (usage, 2), unknown profile (config, 3).
    let before = std::fs::read_to_string(&file).unwrap();
    let bad = ctl(&setup, &["set", &user.name, "memory.max=1X"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).lines().count(),
        1,
        "{}",
        describe(&bad)
    );
    let bad = ctl(&setup, &["set", "--profile", "nosuch", &user.name]);
    assert_eq!(bad.status.code(), Some(3), "{}", describe(&bad));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // A plan, then the key removed: the plan's value applies.
    ctl_ok(
        &setup,
        &["set", "--profile", "pro", &user.name, "pids.max="],
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("profile = \"pro\"") && !text.contains("pids.max"),
        "{text}"
    );
    assert!(text.contains("# customer 42"), "{text}");
    let json = ctl_json(&setup, &["set", &user.name, "cpu.max=150%", "--json"]);
    assert_eq!(json["applied"]["profile"], "pro", "{json}");
}

#[test]
fn reload_applies_the_config_to_live_cgroups_and_says_what_changed() {
    require_root();
    let body = |depth: u32| {
        format!("max_depth = {depth}\n[limits]\n\"pids.max\" = 100\n\"memory.max\" = \"1G\"\n")
    };
    // TestSetup puts [tree] root first: max_depth belongs to that table. The user cgroup's
    // depth cap is the leaves' plus the two levels root makes (<service>/<leaf>).
    let setup = TestSetup::new(&body(4), "");
    let user = TestUser::new("pcr");
    empty_session(&setup, &user.name);
    let user_dir = setup.tree.user(&user.name);
    let read = |f: &str| {
        std::fs::read_to_string(user_dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("cgroup.max.depth"), "6");
    assert_eq!(read("cgroup.max.descendants"), "max");

    let text = std::fs::read_to_string(setup.config_path()).unwrap();
    setup.write_config(&text.replace("max_depth = 4", "max_depth = 3"));
    let out = ctl_ok(&setup, &["reload"]);
    assert_eq!(
        read("cgroup.max.depth"),
        "5",
        "live cgroup not changed: {out}"
    );
    assert!(
        out.contains(&format!("{}: cgroup.max.depth 6 -> 5", user.name)),
        "{out}"
    );
    if !controller_available(&setup.tree.mount_point, "memory") {
        assert!(
            out.contains("memory.max = 1073741824 not applied: controller memory is not available"),
            "{out}"
        );
    }
    let json = ctl_json(&setup, &["reload", "--json"]);
    let mine = json
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["user"] == user.name.as_str())
        .unwrap();
    let files = mine["report"]["files"].as_array().unwrap();
    let caps = files
        .iter()
        .find(|f| f["file"] == "cgroup.max.depth")
        .unwrap();
    assert_eq!(caps["status"], "unchanged", "{mine}");
    let again = ctl_ok(&setup, &["reload"]);
    assert!(
        !again.contains("->"),
        "a second reload changes nothing: {again}"
    );
}

#[test]
fn reload_applies_every_resolvable_user_and_reports_the_others_with_exit_1() {
    require_root();
    // A cap, not a limit: this machine's cgroup2 has no controllers (see the test above).
    let setup = TestSetup::new("max_depth = 4\n", "");
    let kept = TestUser::new("prk");
    let gone = TestUser::new("prg");
    let gone_name = gone.name.clone();
    empty_session(&setup, &kept.name);
    empty_session(&setup, &gone_name);
    // The account disappears from NSS while its cgroup lives on (a directory customer
    // SSSD cannot resolve during an outage looks the same to reload).
    drop(gone);
    let text = std::fs::read_to_string(setup.config_path()).unwrap();
    setup.write_config(&text.replace("max_depth = 4", "max_depth = 3"));
    let o = ctl(&setup, &["reload"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "{gone_name}: UNKNOWN USER, not applied (a deleted account: `cgroupctl remove \
             {gone_name}` ends it): user {gone_name:?} not found"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("{}: cgroup.max.depth 6 -> 5", kept.name)),
        "the resolvable user was not applied: {out}"
    );
    let read = |u: &str| {
        std::fs::read_to_string(setup.tree.user(u).join("cgroup.max.depth"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read(&kept.name), "5");
    assert_eq!(read(&gone_name), "6");
    let o = ctl(&setup, &["reload", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let json: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let entry = json
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["user"] == gone_name.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["unresolved"], true, "{entry}");
}

#[test]
fn run_starts_commands_as_the_user_in_a_service_leaf() {
    require_root();
    let setup = TestSetup::new("", "");
    let extra = TestGroup::new("pcg");
    let user = TestUser::with_groups("pcu", &[&extra]);
    let o = Command::new(cgroupctl_bin())
        .arg("--config")
        .arg(setup.config_path())
        .args(["run", "--user", &user.name, "--service", "web", "--"])
        .args([
            "sh",
            "-c",
            "cat /proc/self/cgroup; id -u; id -g; id -G; env",
        ])
        .env("PCT_SECRET", "leak")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let out = stdout(&o);
    let cg = out.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    let leaf = setup.tree.path_of(cg);
    assert_eq!(
        leaf.parent().unwrap(),
        setup.tree.user(&user.name).join("web"),
        "{out}"
    );
    assert!(
        leaf.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("run-"),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("0::")).unwrap();
    assert_eq!(lines[at + 1], user.uid.to_string());
    assert_eq!(lines[at + 2], user.gid.to_string());
    let groups: Vec<u32> = lines[at + 3]
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    assert!(
        groups.contains(&extra.gid) && groups.contains(&user.gid),
        "{out}"
    );
    assert!(
        !out.contains("PCT_SECRET"),
        "environment not cleaned: {out}"
    );
    assert!(
        out.contains(&format!("USER={}", user.name)) && out.contains("HOME=/nonexistent"),
        "{out}"
    );
    // The finished run's leaf (and the then empty service dir) are gone.
    assert!(
        !leaf.exists() && !leaf.parent().unwrap().exists(),
        "{}",
        leaf.display()
    );

    let code = ctl(
        &setup,
        &["run", "--user", &user.name, "--", "sh", "-c", "exit 7"],
    );
    assert_eq!(code.status.code(), Some(7), "{}", describe(&code));
    let bad = ctl(
        &setup,
        &[
            "run",
            "--user",
            &user.name,
            "--service",
            "../x",
            "--",
            "true",
        ],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    let bad = ctl(&setup, &["run", "--user", "root", "--", "true"]);
    assert!(!bad.status.success(), "root is exempt: {}", describe(&bad));
}

#[test]
fn classify_moves_a_process_of_the_user_and_refuses_others() {
    require_root();
    let setup = TestSetup::new("", "");
    let user = TestUser::new("pcc");
    let mut child = Command::new("sleep")
        .arg("120")
        .uid(user.uid)
        .gid(user.gid)
        .spawn()
        .unwrap();
    let mut kill = Kill(vec![child.id()]);
    let pid = child.id().to_string();
    let json = ctl_json(
        &setup,
        &[
            "classify",
            &pid,
            "--user",
            &user.name,
            "--service",
            "bg",
            "--json",
        ],
    );
    let want = setup
        .tree
        .user(&user.name)
        .join("bg")
        .join(format!("pid-{pid}"));
    assert_eq!(json["cgroup"], want.display().to_string());
    assert_eq!(setup.tree.path_of(&cgroup_of(child.id())), want);

    // A root process is not handed to a customer.
    let mut root_child = Command::new("sleep").arg("120").spawn().unwrap();
    kill.0.push(root_child.id());
    let before = cgroup_of(root_child.id());
    let o = ctl(
        &setup,
        &[
            "classify",
            &root_child.id().to_string(),
            "--user",
            &user.name,
        ],
    );
    assert!(!o.status.success(), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refusing"),
        "{}",
        describe(&o)
    );
    assert_eq!(cgroup_of(root_child.id()), before);
    drop(kill);
    let _ = child.wait();
    let _ = root_child.wait();
}

#[test]
fn gc_removes_exactly_the_empty_leaves_pam_cgroup_made() {
    require_root();
    let setup = TestSetup::new("", "");
    let user = TestUser::new("pcgc");
    let mut kill = Kill::default();
    let (_, busy) = session_with_background(&setup, &user, &mut kill);
    let empty = empty_session(&setup, &user.name);
    let user_dir = setup.tree.user(&user.name);
    // Cgroups the user made itself in its delegated leaves: in a live leaf never ours to
    // remove; in a dead one trimmed with it.
    let mine = busy.join("mine");
    let leftover = empty.join("left").join("over");
    for dir in [&mine, &leftover] {
        let made = user
            .command("mkdir")
            .args(["-p"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(made.success(), "mkdir {} as the user", dir.display());
    }
    // A service leaf whose process has exited.
    let short = Command::new("sleep")
        .arg("0.2")
        .uid(user.uid)
        .gid(user.gid)
        .spawn()
        .unwrap();
    let mut short = short;
    ctl_ok(
        &setup,
        &[
            "classify",
            &short.id().to_string(),
            "--user",
            &user.name,
            "--service",
            "svc",
        ],
    );
    let svc_leaf = user_dir.join("svc").join(format!("pid-{}", short.id()));
    short.wait().unwrap();
    assert!(svc_leaf.exists());

    let dry = ctl_json(&setup, &["gc", "--dry-run", "--min-age", "0", "--json"]);
    let mut would: Vec<String> = dry
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    would.sort();
    let mut want = vec![
        empty.display().to_string(),
        svc_leaf.display().to_string(),
        user_dir.join("svc").display().to_string(),
    ];
    want.sort();
    assert_eq!(would, want);
    assert!(
        empty.exists() && svc_leaf.exists(),
        "a dry run removes nothing"
    );

    // Leaves younger than the minimum age are kept (a login may be entering its leaf).
    let out = ctl_ok(&setup, &["gc", "--min-age", "3600"]);
    assert!(empty.exists() && svc_leaf.exists(), "{out}");

    let out = ctl_ok(&setup, &["gc", "--min-age", "0"]);
    for p in &want {
        assert!(!Path::new(p).exists(), "{p} not removed: {out}");
    }
    assert!(
        out.contains(&format!("removed {}", empty.display())),
        "{out}"
    );
    assert!(busy.exists() && mine.exists() && user_dir.exists(), "{out}");
    assert!(!leftover.exists(), "{out}");
    assert!(out.contains("empty leaves removed"), "{out}");
    drop(kill);
}

#[test]
fn help_is_complete_and_usage_errors_exit_2() {
    for verb in [
        "list", "show", "set", "reload", "run", "classify", "stats", "gc", "doctor", "daemon",
    ] {
        let o = Command::new(cgroupctl_bin())
            .args([verb, "--help"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{verb} --help: {}", describe(&o));
        assert!(stdout(&o).contains("Usage: cgroupctl"), "{verb}");
    }
    let o = Command::new(cgroupctl_bin())
        .args(["daemon", "--listen", "0.0.0.0:9464"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}

#[test]
fn show_and_list_print_customer_names_and_commands_escaped() {
    require_root();
    let setup = TestSetup::new("", "");
    let user = TestUser::new("pce");
    let leaf = empty_session(&setup, &user.name);
    let evil = "x\x1b[2J\x1b]0;owned\x07";
    // The customer names a cgroup of the part of the tree delegated to it (the session leaf,
    // or users/<user> itself in the 0.1.0 layout)...
    let own_dir = [leaf.clone(), leaf.parent().unwrap().to_path_buf()]
        .into_iter()
        .find(|d| std::fs::metadata(d).unwrap().uid() == user.uid)
        .expect("a directory delegated to the user");
    let weird = own_dir.join(evil);
    let mk = Command::new("mkdir")
        .arg(&weird)
        .uid(user.uid)
        .gid(user.gid)
        .output()
        .unwrap();
    assert!(mk.status.success(), "{}", describe(&mk));
    // ...and runs a process there whose command line carries escapes too.
    let mut child = Command::new("bash")
        .args([
            "-c",
            "exec -a \"$0\" sleep 60",
            "y\x1b[31mred\x1b]0;title\x07",
        ])
        .uid(user.uid)
        .gid(user.gid)
        .spawn()
        .unwrap();
    let kill = Kill(vec![child.id()]);
    let cmdline = format!("/proc/{}/cmdline", child.id());
    wait_until("the escaped command line", Duration::from_secs(10), || {
        std::fs::read(&cmdline).is_ok_and(|c| c.starts_with(b"y\x1b[31mred"))
    });
    std::fs::write(weird.join("cgroup.procs"), format!("{}\n", child.id())).unwrap();
    for args in [
        vec!["show", user.name.as_str()],
        vec!["list"],
        vec!["stats"],
    ] {
        let o = ctl(&setup, &args);
        assert!(o.status.success(), "{args:?}: {}", describe(&o));
        let raw = o.stdout.clone();
        assert!(
            !raw.iter().any(|b| *b == 0x1b || *b == 0x07),
            "{args:?} printed raw escapes: {:?}",
            String::from_utf8_lossy(&raw)
        );
        if args[0] == "show" {
            let text = stdout(&o);
            assert!(text.contains("x\\e[2J\\e]0;owned\\a"), "{text}");
            assert!(text.contains("y\\e[31mred\\e]0;title\\a"), "{text}");
        }
    }
    drop(kill);
    let _ = child.wait();
    wait_until(
        "the customer's cgroup to empty",
        Duration::from_secs(10),
        || !populated(&weird),
    );
    let _ = std::fs::remove_dir(&weird);
}

/// Sets /proc/sys/dev/tty/legacy_tiocsti to 1 (kernels >= 6.2 may ship it off, and then no
/// TIOCSTI attempt could succeed and the test could not fail), restoring it on drop.
struct LegacyTiocsti(Option<String>);

impl LegacyTiocsti {
    const PATH: &'static str = "/proc/sys/dev/tty/legacy_tiocsti";
    fn enable() -> LegacyTiocsti {
        let old = std::fs::read_to_string(Self::PATH).ok();
        if old.is_some() {
            std::fs::write(Self::PATH, "1\n").unwrap();
        }
        LegacyTiocsti(old)
    }
}

impl Drop for LegacyTiocsti {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(Self::PATH, old);
        }
    }
}

/// What the command run by `cgroupctl run` tries: push a line into its terminal with TIOCSTI,
/// take the terminal over (TIOCSCTTY with steal), and leave a child behind that reads the
/// terminal later and writes what it got to `stolen`.
const TTY_ATTACK: &str = r#"
import fcntl, os, signal, sys, termios, time
stolen = sys.argv[1]
for c in b"echo INJECTED\n":
    try:
        fcntl.ioctl(0, termios.TIOCSTI, bytes([c]))
    except OSError as e:
        print("TIOCSTI:", e.errno); break
try:
    fcntl.ioctl(0, termios.TIOCSCTTY, 1)
except OSError as e:
    print("TIOCSCTTY:", e.errno)
child = os.fork()
if child == 0:
    signal.alarm(8)
    time.sleep(1)
    open(stolen + ".reading", "w").close()
    got = b""
    for fd in (0, 1, 2):
        try:
            got += os.read(fd, 100)
        except OSError:
            pass
    with open(stolen, "wb") as f:
        f.write(got)
    os._exit(0)
with open(stolen + ".pid", "w") as f:
    f.write(str(child))
print("attack done")
"#;

#[test]
fn run_never_gives_the_callers_terminal_to_the_command() {
    use std::io::Write;
    require_root();
    let _tiocsti = LegacyTiocsti::enable();
    let setup = TestSetup::new("", "");
    let user = TestUser::new("pct");
    let dir = tempfile::Builder::new()
        .prefix("pct-tty-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let attack = dir.path().join("attack.py");
    std::fs::write(&attack, TTY_ATTACK).unwrap();
    std::fs::set_permissions(&attack, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stolen = dir.path().join("stolen");
    // The caller: an admin shell that runs the command, then reads its own next input line
    // (saying when it has its terminal back).
    let caller_reads = dir.path().join("caller-reads");
    let caller = format!(
        "{} --config {} run --user {} -- /usr/bin/python3 {} {}; touch {}; read -t 6 line; echo \"CALLER-READ:[$line]\"",
        cgroupctl_bin().display(),
        setup.config_path().display(),
        user.name,
        attack.display(),
        stolen.display(),
        caller_reads.display()
    );
    // script(1) runs the caller through $SHELL, and under CI that may be dash, whose `read`
    // has no -t: name bash so the caller is the same shell everywhere.
    let mut script = Command::new("script")
        .args(["-qec", &caller, "/dev/null"])
        .env("SHELL", "/bin/bash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = script.stdin.take().unwrap();
    // What the admin types once `run` has given the caller its terminal back and the
    // command's child reads whatever terminal it has (or is gone: ended with the command).
    let child: u32 = wait_for_value("the command's child", Duration::from_secs(30), || {
        std::fs::read_to_string(dir.path().join("stolen.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    let reading = dir.path().join("stolen.reading");
    wait_until(
        "the command's child to read",
        Duration::from_secs(30),
        || reading.exists() || crate::levers::is_gone(child),
    );
    wait_until("run to return", Duration::from_secs(30), || {
        caller_reads.exists()
    });
    eprintln!(
        "the command's child {}",
        if reading.exists() {
            "reads"
        } else {
            "ended with the command"
        }
    );
    // (A broken pipe means the caller already finished: the assertions below say why.)
    let _ = stdin.write_all(b"typed-by-admin\n");
    let out = script.wait_with_output().unwrap();
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("attack done"), "the command ran: {text}");
    assert!(
        text.contains("CALLER-READ:[typed-by-admin]"),
        "the caller's terminal got input from the command: {text}"
    );
    // It ends once its reads end (or its alarm rings): then what it got is written.
    wait_until(
        "the command's child to end",
        Duration::from_secs(20),
        || crate::levers::is_gone(child),
    );
    let got = std::fs::read(&stolen).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&got).contains("typed-by-admin"),
        "the command's child read the admin's keystrokes: {got:?}"
    );
}

/// Gives the next fork the PID `pid` (ns_last_pid), retrying while other forks race us.
fn spawn_with_pid(pid: u32) -> Option<std::process::Child> {
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1)).unwrap();
        let child = Command::new("sleep").arg("120").spawn().unwrap();
        if child.id() == pid {
            return Some(child);
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

#[test]
fn classify_never_moves_a_recycled_pid_of_another_uid() {
    require_root();
    let setup = TestSetup::new("", "");
    let user = TestUser::new("pcr");
    let mut target = Command::new("sleep")
        .arg("120")
        .uid(user.uid)
        .gid(user.gid)
        .spawn()
        .unwrap();
    let pid = target.id();
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("paused");
    let classify = Command::new(cgroupctl_bin())
        .arg("--config")
        .arg(setup.config_path())
        .args(["classify", &pid.to_string(), "--user", &user.name])
        .env("CGROUPCTL_TEST_PAUSE_BEFORE_MOVE", &flag)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if flag.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(flag.exists(), "classify reached the move");
    // The user's process exits and its PID goes to a root process.
    target.kill().unwrap();
    target.wait().unwrap();
    let mut recycled = spawn_with_pid(pid).expect("could not recycle the PID");
    let kill = Kill(vec![recycled.id()]);
    let before = cgroup_of(pid);
    std::fs::remove_file(&flag).unwrap();
    let o = classify.wait_with_output().unwrap();
    assert!(!o.status.success(), "{}", describe(&o));
    // Caught by the check right before the write ("exited before it could be moved"), or
    // by the one after it ("... PID reuse", and moved back).
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("exited"),
        "{}",
        describe(&o)
    );
    assert_eq!(
        cgroup_of(pid),
        before,
        "the root process stays where it was"
    );
    drop(kill);
    let _ = recycled.wait();
}

/// A dead session leaf is removed by two rmdirs when the customer left nothing in it (root's
/// `login/`, then the leaf), and by the walk otherwise. The customer owns the leaf but cannot
/// swap root's `login/` for a cgroup of its own (cgroup2 refuses the rename) nor make
/// anything inside it (root's, 0755): the first rmdir only ever meets root's `login/`.
#[test]
fn gc_removes_a_dead_leaf_by_its_login_first_and_walks_what_the_customer_made() {
    require_root();
    let setup = TestSetup::new("", "");
    let user = TestUser::new("pcgcl");
    let plain = empty_session(&setup, &user.name);
    let dead = empty_session(&setup, &user.name);
    assert!(plain.join("login").is_dir() && dead.join("login").is_dir());
    for (script, what) in [
        (
            format!("mv {d}/login {d}/renamed", d = dead.display()),
            "rename login/",
        ),
        (
            format!("mkdir {d}/login/inner", d = dead.display()),
            "mkdir in login/",
        ),
    ] {
        let refused = user.command("sh").args(["-c", &script]).output().unwrap();
        assert!(!refused.status.success(), "{what}: {}", describe(&refused));
    }
    let made = user
        .command("mkdir")
        .args(["-p"])
        .arg(dead.join("mine/inner"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", describe(&made));
    let out = ctl_ok(&setup, &["gc", "--min-age", "0"]);
    for leaf in [&plain, &dead] {
        assert!(!leaf.exists(), "{} is still there: {out}", leaf.display());
        assert!(
            out.contains(&format!("removed {}", leaf.display())),
            "{out}"
        );
    }
}

#[test]
fn gc_removes_a_dead_leaf_whose_sub_cgroups_have_names_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    require_root();
    let setup = TestSetup::new("", "");
    let user = TestUser::new("pcgcb");
    let dead = empty_session(&setup, &user.name);
    // What the customer left in its leaf: a cgroup whose name is not UTF-8, with a child
    // that is not either, and an ordinary one.
    let odd = dead.join(std::ffi::OsStr::from_bytes(b"odd-\xff"));
    for dir in [
        odd.join(std::ffi::OsStr::from_bytes(b"\xc3")),
        dead.join("plain"),
    ] {
        let made = user.command("mkdir").arg("-p").arg(&dir).output().unwrap();
        assert!(
            made.status.success(),
            "mkdir {}: {}",
            dir.display(),
            describe(&made)
        );
    }
    let out = ctl_ok(&setup, &["gc", "--min-age", "0"]);
    assert!(!dead.exists(), "the dead leaf is still there: {out}");
    assert!(
        out.contains(&format!("removed {}", dead.display())),
        "{out}"
    );
}
