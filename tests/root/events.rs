//! Fault events (issue 14) on a host without controllers: the daemon runs in a private mount
//! namespace where the test's users/ is a plain directory (bind-mounted over the real
//! cgroupfs one), so the test injects memory.events / pids.events counters and the daemon
//! records them, with a snapshot of a real process, in the history database; `cgroupctl
//! events` reads them back. And the history's bound: filled past its size, the oldest events
//! go. And the upgrade: an old version's event ring is imported once, then removed.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cgroup_core::events::legacy_ring::{encode, file_paths, Stored};
use cgroup_core::events::{Event, FaultKind, ProcessInfo};
use cgroup_core::history::events::Writer;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use pam_cgroup_tests::support::{require_root, unique_name, TestSetup, TestUser};

use crate::cgroupctl::cgroupctl_bin;

/// A daemon whose users/ is `fake_users` (a plain directory the test writes counters into).
pub struct FakeTreeDaemon {
    pub child: Child,
    pub log: PathBuf,
}

impl FakeTreeDaemon {
    pub fn start(setup: &TestSetup, fake_users: &Path, extra: &[&str], log: PathBuf) -> Self {
        // The real users/ must exist for the bind mount; TestTree removes it on drop.
        std::fs::create_dir_all(setup.tree.users()).unwrap();
        let script = format!(
            "mount --bind \"$1\" \"$2\" && exec \"$3\" --config \"$4\" daemon --scan-interval 600 {}",
            extra.join(" ")
        );
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
                "sh",
            ])
            .arg(fake_users)
            .arg(setup.tree.users())
            .arg(cgroupctl_bin())
            .arg(setup.config_path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        FakeTreeDaemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < limit,
                "no {needle:?} in the daemon's log after {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }

    pub fn stop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < Duration::from_secs(10), "{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeTreeDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cgroup of `user` in a fake tree (named as the daemon names it), with a session leaf
/// holding `pids`.
pub fn fake_user(users: &Path, user: &str, pids: &[u32]) -> PathBuf {
    let dir = users.join(pam_cgroup_tests::support::cgroup::user_dir_name(user));
    let leaf = dir.join("session-1");
    std::fs::create_dir_all(&leaf).unwrap();
    let files = [
        (
            "memory.events",
            "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
        ),
        ("memory.max", "268435456\n"),
        ("memory.high", "max\n"),
        ("memory.current", "268000000\n"),
        ("pids.events", "max 0\n"),
        // Present: this kernel counts pids.events hierarchically, read it as it is.
        ("pids.events.local", "max 0\n"),
        ("pids.max", "64\n"),
        ("pids.current", "64\n"),
        ("cgroup.procs", ""),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let procs: String = pids.iter().map(|p| format!("{p}\n")).collect();
    std::fs::write(leaf.join("cgroup.procs"), procs).unwrap();
    dir
}

/// A user of the fake tree whose pids.events counter the test moves to see the daemon's fault
/// passes go by, so that "nothing was reported" is checked after a pass that would have
/// reported it, not after a guess at how long a pass takes. Its name sorts after every test
/// user's: users are sampled, and their events logged, in name order, so once the marker's
/// event is in the log, every event of that pass is too.
pub struct PassMarker {
    dir: PathBuf,
    user: String,
    count: u64,
}

impl PassMarker {
    /// Made before the daemon starts, so that its first pass takes the marker's baseline
    /// together with the other users'.
    pub fn new(users: &Path) -> PassMarker {
        let user = unique_name("zzpass");
        let dir = fake_user(users, &user, &[]);
        PassMarker {
            dir,
            user,
            count: 0,
        }
    }

    /// Returns once a fault pass has compared every user with an earlier sample (the
    /// baseline, or the pass before) and logged what it found. The counter moves until the
    /// daemon reports it: a move seen by the baseline pass only becomes the baseline.
    pub fn wait_for_a_pass(&mut self, daemon: &FakeTreeDaemon) {
        let needle = format!("fault user={} kind=pids_max", self.user);
        let seen = |daemon: &FakeTreeDaemon| daemon.log().matches(&needle).count();
        let before = seen(daemon);
        let start = Instant::now();
        while seen(daemon) == before {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no fault pass reported the marker in 20 s:\n{}",
                daemon.log()
            );
            self.count += 1;
            std::fs::write(
                self.dir.join("pids.events"),
                format!("max {}\n", self.count),
            )
            .unwrap();
            // Passes are a second apart; a move held back by repeat_after is reported once
            // it has passed.
            let moved = Instant::now();
            while seen(daemon) == before && moved.elapsed() < Duration::from_millis(2500) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A real process with a hostile comm (an OSC title sequence and a BEL): what a customer can
/// name its process.
/// A child killed and reaped on drop.
pub struct Sleeper(pub Child);

impl Sleeper {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn hostile_sleeper() -> Sleeper {
    // Only a process itself may set its comm (prctl PR_SET_NAME = 15).
    let script = "import ctypes, sys, time\n\
        ctypes.CDLL(None).prctl(15, b'\\x1b]0;pwn\\x07\\x1b[2J', 0, 0, 0)\n\
        sys.stdout.write('ok\\n'); sys.stdout.flush(); time.sleep(300)\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script, "sleep", "300"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let child = Sleeper(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line, "ok\n");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap(),
        "\x1b]0;pwn\x07\x1b[2J\n"
    );
    child
}

pub fn events_config(history: &Path) -> String {
    format!(
        "[events]\nhistory_dir = \"{}\"\nhistory_size = \"64K\"\nrepeat_after = 1\n",
        history.display()
    )
}

/// The history database of a test's setup (where the test support puts it).
pub fn database_of(setup: &TestSetup) -> PathBuf {
    setup.dir.path().join("db/history.db")
}

pub fn cgroupctl(setup: &TestSetup, args: &[&str]) -> Output {
    Command::new(cgroupctl_bin())
        .arg("--config")
        .arg(setup.config_path())
        .args(args)
        .output()
        .unwrap()
}

pub fn json_events(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn daemon_records_injected_faults_and_events_lists_them_escaped() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let history = work.path().join("state/events");
    let setup = TestSetup::new(&events_config(&history), "");
    let users = work.path().join("users");
    std::fs::create_dir(&users).unwrap();
    let user = unique_name("pce");
    let sleeper = hostile_sleeper();
    let pid = sleeper.pid();
    let dir = fake_user(&users, &user, &[pid]);

    let mut marker = PassMarker::new(&users);
    let quiet = format!("fault user={user} ");

    let mut daemon = FakeTreeDaemon::start(&setup, &users, &[], work.path().join("d1.log"));
    daemon.wait_log("watching", Duration::from_secs(20));
    // The first pass is the baseline: a pass after it finds nothing of the user's.
    marker.wait_for_a_pass(&daemon);
    assert!(!daemon.log().contains(&quiet), "{}", daemon.log());

    std::fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
    )
    .unwrap();
    std::fs::write(dir.join("pids.events"), "max 240\n").unwrap();
    let took = daemon.wait_log(
        &format!("fault user={user} kind=oom_kill"),
        Duration::from_secs(10),
    );
    eprintln!("oom_kill event logged {took:?} after the counter moved");
    daemon.wait_log(
        &format!("fault user={user} kind=pids_max"),
        Duration::from_secs(10),
    );
    daemon.wait_log("recording fault events in", Duration::from_secs(1));
    // The journal line is one line, the comm quoted and escaped.
    let log = daemon.log();
    assert!(!log.contains('\x1b') && !log.contains('\x07'), "{log:?}");

    let events = json_events(&cgroupctl(&setup, &["events", "--json", "--user", &user]));
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for k in ["memory_max", "oom", "oom_kill", "pids_max"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let oom = events.iter().find(|e| e["kind"] == "oom_kill").unwrap();
    assert_eq!(oom["delta"], 1);
    assert_eq!(oom["limit"], "268435456");
    assert_eq!(oom["processes"][0]["pid"], pid);
    assert_eq!(oom["processes"][0]["comm"], "\x1b]0;pwn\x07\x1b[2J");
    assert_eq!(oom["processes"][0]["cgroup"], "session-1");
    assert!(oom["processes"][0]["cmdline"]
        .as_str()
        .unwrap()
        .contains("sleep 300"));
    let pids = events.iter().find(|e| e["kind"] == "pids_max").unwrap();
    assert_eq!(
        (pids["delta"].as_u64(), pids["usage"].as_f64()),
        (Some(240), Some(64.0))
    );

    // --kind filters; text output (with the snapshot) never carries the raw sequences.
    let only = json_events(&cgroupctl(
        &setup,
        &["events", "--json", "--kind", "pids_max"],
    ));
    assert!(only.iter().all(|e| e["kind"] == "pids_max") && !only.is_empty());
    let text = cgroupctl(&setup, &["events", "--snapshot", "--user", &user]);
    assert!(text.status.success(), "{text:?}");
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "{stdout:?}"
    );
    assert!(stdout.contains("\\e]0;pwn\\a\\e[2J"), "{stdout}");
    assert!(stdout.contains("oom_kill"), "{stdout}");
    let since_future = json_events(&cgroupctl(
        &setup,
        &["events", "--json", "--since", "@9999999999"],
    ));
    assert!(since_future.is_empty());

    // Root-only, on disk and in the CLI.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let database = database_of(&setup);
    assert_eq!(mode(database.parent().unwrap()), 0o700);
    assert_eq!(mode(&database), 0o600);
    assert!(!history.exists(), "no ring files any more");
    let customer = TestUser::new("pce");
    let out = customer
        .command(cgroupctl_bin().to_str().unwrap())
        .arg("--config")
        .arg(setup.config_path())
        .args(["events", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    // --json: the refusal as JSON on stdout, nothing of the history.
    let refusal: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(refusal["code"], 4, "{refusal}");
    let text = refusal["error"].as_str().unwrap();
    assert!(
        text.starts_with("cgroupctl events: must be run as root (you are uid ")
            && text.contains("root only"),
        "{refusal}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("root only"),
        "{out:?}"
    );

    // A restart: the history is still there and nothing is reported twice.
    daemon.stop();
    let before = events.len();
    let daemon2 = FakeTreeDaemon::start(&setup, &users, &[], work.path().join("d2.log"));
    daemon2.wait_log("watching", Duration::from_secs(20));
    marker.wait_for_a_pass(&daemon2);
    let after = json_events(&cgroupctl(&setup, &["events", "--json", "--user", &user]));
    assert_eq!(after.len(), before, "{after:?}");
    assert!(!daemon2.log().contains(&quiet), "{}", daemon2.log());
    drop(sleeper);
}

fn event(n: u64, user: &str) -> Event {
    Event {
        time_ms: 1_700_000_000_000 + n,
        user: user.to_string(),
        kind: FaultKind::PidsMax,
        delta: n,
        limit: Some("64".into()),
        usage: Some(64.0),
        processes: vec![ProcessInfo {
            pid: 1,
            comm: "forker".into(),
            cmdline: "forker --bomb".repeat(20),
            uid: Some(1000),
            rss_bytes: 4096,
            cpu_usec: 1,
            cpu_percent: None,
            cgroup: "session-1".into(),
        }],
        killed: Vec::new(),
        from: None,
    }
}

#[test]
fn history_is_bounded_oldest_first() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&events_config(&work.path().join("events")), "");
    let database = database_of(&setup);
    let bound = 64 * 1024;
    let mut writer = Writer::open(&database, bound).unwrap();
    let total = 2000;
    for n in 1..=total {
        writer.add(&event(n, "alice")).unwrap();
    }
    drop(writer);
    let listed = json_events(&cgroupctl(&setup, &["events", "--json"]));
    let deltas: Vec<u64> = listed
        .iter()
        .map(|e| e["delta"].as_u64().unwrap())
        .collect();
    // The bound is on the events as stored (their JSON), and what goes is no more than it
    // takes to keep it.
    let stored = |n: u64| serde_json::to_string(&event(n, "alice")).unwrap().len() as u64;
    let bytes: u64 = deltas.iter().map(|n| stored(*n)).sum();
    assert!(bytes <= bound, "{bytes} bytes of events kept");
    assert!(
        bytes + stored(total) > bound,
        "{bytes} bytes: more went than needed"
    );
    assert_eq!(*deltas.last().unwrap(), total, "the newest is kept");
    assert!(deltas[0] > 1, "the oldest went");
    assert!(deltas.windows(2).all(|w| w[1] == w[0] + 1), "{deltas:?}");
}

/// A ring file as an older daemon wrote it (root's, 0600).
fn write_ring_file(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// The upgrade: an old version's ring (N events, one of them damaged) in `[events]
/// history_dir` is imported by the daemon at its start; `events` shows the N-1 others, the
/// ring is gone, and a second start imports nothing twice. The database stays root's: a
/// customer can neither read nor write it, and its `me` answer holds its own events only.
#[test]
fn an_old_event_ring_is_imported_once_at_the_daemons_start() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let ring = work.path().join("state/events");
    let setup = TestSetup::new(&events_config(&ring), "");
    let customer = TestUser::new("pcei");
    let other = unique_name("pceo");
    std::fs::create_dir_all(ring.parent().unwrap()).unwrap();
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&ring)
        .unwrap();
    let n = 9;
    let records: Vec<Vec<u8>> = (1..=n)
        .map(|i| {
            let user = if i % 3 == 0 {
                other.as_str()
            } else {
                customer.name.as_str()
            };
            encode(&Stored {
                seq: i,
                event: event(i, user),
            })
        })
        .collect();
    let mut damaged = records[4].clone();
    damaged[30] ^= 1;
    let [f0, f1] = file_paths(&ring);
    write_ring_file(&f0, &[records[0..4].concat(), damaged].concat());
    write_ring_file(&f1, &records[5..].concat());
    write_ring_file(&ring.join("lock"), b"");

    let users = work.path().join("users");
    std::fs::create_dir(&users).unwrap();
    let mut marker = PassMarker::new(&users);
    let mut daemon = FakeTreeDaemon::start(&setup, &users, &[], work.path().join("d1.log"));
    daemon.wait_log(
        "imported 8 fault events from the old ring",
        Duration::from_secs(20),
    );
    assert!(
        daemon.log().contains("1 damaged skipped"),
        "{}",
        daemon.log()
    );
    assert!(!ring.exists(), "the ring is removed once imported");
    let wanted: Vec<u64> = (1..=n).filter(|i| *i != 5).collect();
    let of_tests = |setup: &TestSetup| -> Vec<u64> {
        json_events(&cgroupctl(setup, &["events", "--json"]))
            .iter()
            // The marker's events are the test's clock, not part of what it checks.
            .filter(|e| !e["user"].as_str().unwrap().starts_with("zzpass"))
            .map(|e| e["delta"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(of_tests(&setup), wanted);
    // The customer's own, by --user, the same as before the upgrade.
    let mine = json_events(&cgroupctl(
        &setup,
        &["events", "--json", "--user", &customer.name],
    ));
    assert_eq!(mine.len(), wanted.iter().filter(|i| *i % 3 != 0).count());

    // A second start: nothing to import, nothing twice.
    marker.wait_for_a_pass(&daemon);
    daemon.stop();
    let mut daemon2 = FakeTreeDaemon::start(&setup, &users, &[], work.path().join("d2.log"));
    daemon2.wait_log("watching", Duration::from_secs(20));
    marker.wait_for_a_pass(&daemon2);
    assert!(!daemon2.log().contains("imported"), "{}", daemon2.log());
    assert_eq!(of_tests(&setup), wanted);
    daemon2.stop();

    // A customer (a real unprivileged process) can neither read nor write the database.
    let database = database_of(&setup);
    for (how, script) in [
        ("read", "open(sys.argv[1], 'rb').read(1)"),
        ("write", "open(sys.argv[1], 'r+b').write(b'x')"),
    ] {
        let out = customer
            .command("/usr/bin/python3")
            .args(["-c", &format!("import sys\n{script}")])
            .arg(&database)
            .output()
            .unwrap();
        assert!(!out.status.success(), "a customer could {how} it: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("PermissionError"),
            "{out:?}"
        );
    }
    // (`cgroupctl events` refuses it: the test above.) What the daemon's `me` answer reads
    // for it (by its name and uid) is its own imported events only; the socket itself is
    // tests/root/me.rs.
    let own =
        cgroup_core::history::events::of_customer(&database, &customer.name, customer.uid, 50)
            .unwrap();
    assert_eq!(own.len(), mine.len());
    assert!(own.iter().all(|e| e.user == customer.name));
}

/// The usage sampler's hourly rollup holds the database's write lock for seconds at 10,000
/// users. Meanwhile the fault pass goes on each second, and the events it finds wait for the
/// lock instead of being lost to the database once the wait passed its busy timeout (10 s).
#[test]
fn events_found_while_another_writer_holds_the_database_are_kept_and_the_pass_goes_on() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let history = work.path().join("state/events");
    let setup = TestSetup::new(&events_config(&history), "");
    let users = work.path().join("users");
    std::fs::create_dir(&users).unwrap();
    let first = unique_name("pcbusy");
    let second = unique_name("pcbusz");
    let first_dir = fake_user(&users, &first, &[]);
    let second_dir = fake_user(&users, &second, &[]);
    let mut marker = PassMarker::new(&users);
    let daemon = FakeTreeDaemon::start(&setup, &users, &[], work.path().join("d.log"));
    daemon.wait_log("watching", Duration::from_secs(20));
    // The marker's event opens the database.
    marker.wait_for_a_pass(&daemon);
    daemon.wait_log("recording fault events in", Duration::from_secs(5));

    // Another writer takes the database for 11 s: longer than a write used to wait.
    let database = database_of(&setup);
    let hold = "import sqlite3, sys, time\n\
        c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
        c.execute('BEGIN IMMEDIATE')\n\
        print('locked', flush=True)\n\
        time.sleep(11)\n\
        c.execute('COMMIT')\n";
    let mut holder = Command::new("/usr/bin/python3")
        .args(["-c", hold])
        .arg(&database)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "locked\n");
    let held = Instant::now();

    std::fs::write(first_dir.join("pids.events"), "max 7\n").unwrap();
    daemon.wait_log(
        &format!("fault user={first} kind=pids_max"),
        Duration::from_secs(5),
    );
    daemon.wait_log("events wait", Duration::from_secs(5));
    // The pass after it is not stuck behind the lock: the next move is seen within seconds.
    std::fs::write(second_dir.join("pids.events"), "max 9\n").unwrap();
    daemon.wait_log(
        &format!("fault user={second} kind=pids_max"),
        Duration::from_secs(5),
    );
    assert!(
        held.elapsed() < Duration::from_secs(10),
        "both seen while the lock was held ({:?})",
        held.elapsed()
    );
    assert!(holder.wait().unwrap().success());

    // Once the lock is gone, both are in the database, once each.
    let start = Instant::now();
    loop {
        let listed = json_events(&cgroupctl(&setup, &["events", "--json"]));
        let count = |user: &str| listed.iter().filter(|e| e["user"] == user).count();
        if count(&first) == 1 && count(&second) == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "events after the lock went: {listed:?}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !daemon.log().contains("events go to the journal only"),
        "{}",
        daemon.log()
    );
}
