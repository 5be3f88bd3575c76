//! The daemon's safety net on the real kernel: a root program that setuid()s to a confined
//! user lands in that user's fence (and the move is an event); one that only seteuid()s,
//! one that stays root and one that switches to an exempt user stay where they are; a process
//! already in its fence stays in its leaf, one in another customer's fence goes to its own;
//! a process switched while the daemon was down is reported by doctor and moved by the
//! daemon's first sweep; a child forked before the move, and a hopper (fork, parent exits,
//! again and again), are drained out of the cgroup they were in.
//!
//! "Stays put" without fixed sleeps: the daemon handles the kernel's events in order in one
//! thread, so once a later switch to the confined user has been moved, every earlier event
//! has been handled.
//!
//! Each daemon acts for the test's own uids only (--safety-net-uid): daemons of other tests
//! on this host must keep their users' processes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use pam_cgroup_tests::support::{require_root, wait_for_value, wait_until, TestSetup, TestUser};

use crate::cgroupctl::{cgroup_of, cgroupctl_bin, ctl, ctl_ok, describe};

/// How long a move may take before a test fails (the bench measures the real window).
const MOVE_LIMIT: Duration = Duration::from_secs(10);
/// How long draining a cgroup of a confined user's processes may take: a bound for a loaded
/// host (the whole suite on 2 CPUs), not a measure (a drain takes milliseconds here).
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// How long the sweeps (every second in the hopper tests: --safety-net-sweep 1) may take to
/// find a hopper and drain it. One sweep may miss it on a loaded host (each generation lives
/// ~0.2 ms, and the daemon may not run in time to read it); the next one tries again, as a
/// host's next sweep would 30 s later.
const SWEEP_CATCH_LIMIT: Duration = Duration::from_secs(20);

fn probe_bin() -> PathBuf {
    cgroupctl_bin().with_file_name("setuid-probe")
}

/// `cgroupctl daemon` with the safety net acting for `uids`; killed on drop.
struct NetDaemon {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl NetDaemon {
    fn start(setup: &TestSetup, uids: &[u32]) -> NetDaemon {
        Self::start_sweeping_every(setup, uids, None)
    }

    /// With sweeps every `sweep_secs` instead of 30 s (--safety-net-sweep).
    fn start_sweeping_every(setup: &TestSetup, uids: &[u32], sweep_secs: Option<u32>) -> NetDaemon {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("daemon.log");
        let mut cmd = Command::new(cgroupctl_bin());
        cmd.arg("--config")
            .arg(setup.config_path())
            .args(["daemon", "--scan-interval", "600"]);
        if let Some(secs) = sweep_secs {
            cmd.args(["--safety-net-sweep", &secs.to_string()]);
        }
        for uid in uids {
            cmd.args(["--safety-net-uid", &uid.to_string()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let daemon = NetDaemon {
            child,
            log,
            _dir: dir,
        };
        // Its first sweep done too: a sweep judges by the policy it started with, and a test
        // that edits the policy next must not race it.
        wait_until("the safety net to listen and sweep", MOVE_LIMIT, || {
            let log = daemon.log();
            log.contains("safety net: listening to the kernel's process events")
                && log.contains("safety net sweep: ")
        });
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NetDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A root program that switches (or only seteuid()s) when told; ends on drop.
struct Probe {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Probe {
    fn switch(uid: u32, gid: u32) -> Probe {
        Self::spawn(&["switch", &uid.to_string(), &gid.to_string()])
    }

    /// Switches like `switch`, its name (comm) set to `name` before the switch (as the root
    /// daemon that ran a customer's file) or after it (by the customer's own process).
    fn switch_named(uid: u32, gid: u32, name: &[u8], after: bool) -> Probe {
        let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
        let when = if after { "after" } else { "before" };
        Self::spawn(&["switch", &uid.to_string(), &gid.to_string(), &hex, when])
    }

    fn seteuid(uid: u32) -> Probe {
        Self::spawn(&["seteuid", &uid.to_string()])
    }

    /// A child of the probe switches, forks a hopper that runs for `secs`, and stays as long;
    /// the probe stays root.
    fn hop(uid: u32, gid: u32, secs: u32) -> Probe {
        Self::spawn(&["hop", &uid.to_string(), &gid.to_string(), &secs.to_string()])
    }

    /// Like `hop`, but the child that switched exits at once: only the hopper is left, no
    /// process of it lives long enough to be read after a listing of /proc.
    fn hop_alone(uid: u32, gid: u32, secs: u32) -> Probe {
        Self::spawn(&[
            "hop",
            &uid.to_string(),
            &gid.to_string(),
            &secs.to_string(),
            "alone",
        ])
    }

    /// Switches, then its main thread exits while another waits for stdin to close: a
    /// zombie leader whose process runs on.
    fn leader_exits(uid: u32, gid: u32) -> Probe {
        Self::spawn(&["leader-exits", &uid.to_string(), &gid.to_string()])
    }

    /// Switches, forks a child that waits for the probe's stdin to close, and stays.
    fn background(uid: u32, gid: u32) -> Probe {
        Self::spawn(&["background", &uid.to_string(), &gid.to_string()])
    }

    fn setreuid(uid: u32) -> Probe {
        Self::spawn(&["setreuid", &uid.to_string()])
    }

    fn spawn(args: &[&str]) -> Probe {
        let mut child = Command::new(probe_bin())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        Probe { child, stdin }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Switches now; returns once the switch is done.
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        BufReader::new(self.child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "switched");
    }

    fn cgroup(&self) -> String {
        cgroup_of(self.pid())
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn in_fence(setup: &TestSetup, cgroup: &str, user: &str) -> bool {
    setup
        .tree
        .path_of(cgroup)
        .starts_with(setup.tree.user(user))
}

/// Waits until `probe` is in `user`'s fence; returns how long that took.
fn wait_fenced(setup: &TestSetup, probe: &Probe, user: &str) -> Duration {
    wait_until(
        &format!("process {} to enter {user}'s fence", probe.pid()),
        MOVE_LIMIT,
        || in_fence(setup, &probe.cgroup(), user),
    )
}

/// The real uid of a live process (`None` once it is gone or a zombie).
fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
    };
    if matches!(field("State:"), Some("Z" | "X")) {
        return None;
    }
    field("Uid:")?.parse().ok()
}

/// The live processes of `uid` found by a listing of /proc, with their cgroups. Each is read
/// after the whole listing: a hopper's generation is gone by then, as in the daemon's sweep.
fn processes_of(uid: u32) -> Vec<(u32, String)> {
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    pids.into_iter()
        .filter(|pid| uid_of(*pid) == Some(uid))
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            let cgroup = text.lines().find_map(|l| l.strip_prefix("0::"))?;
            Some((pid, cgroup.to_string()))
        })
        .collect()
}

/// CPU time used in the cgroup `dir` and below, in µs (cpu.stat is there without the cpu
/// controller); `None` while the cgroup does not exist.
fn cpu_usec(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join("cpu.stat"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU time used in `user`'s fence over 200 ms, in µs (0 while there is no fence).
fn cpu_in_fence_over_200ms(setup: &TestSetup, user: &TestUser) -> u64 {
    let fence = setup.tree.user(&user.name);
    let before = cpu_usec(&fence);
    std::thread::sleep(Duration::from_millis(200));
    match (before, cpu_usec(&fence)) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => 0,
    }
}

/// CPU time in 200 ms that shows the hopper runs in the fence. Nothing else of the user runs
/// there (the switched process sleeps), so any is the hopper's; it is small because a
/// spinning process may get only a small share of 2 CPUs while the whole suite runs. Outside
/// the fence, as before the drain and the walk, it is 0.
const HOPPER_CPU_USEC: u64 = 2_000;

/// Fails unless a process spinning on a CPU runs in `user`'s fence: a hopper's generations
/// live ~0.2 ms each, too short to be found by a pid and read, but they add up to CPU time.
fn assert_hopper_runs_in_fence(setup: &TestSetup, user: &TestUser) {
    let used = cpu_in_fence_over_200ms(setup, user);
    assert!(
        used >= HOPPER_CPU_USEC,
        "the hopper does not run in {}'s fence: {used} µs of CPU there in 200 ms",
        user.name
    );
}

/// The live processes of `uid` in the cgroup `cgroup` itself.
fn in_cgroup(setup: &TestSetup, cgroup: &str, uid: u32) -> Vec<u32> {
    let procs = std::fs::read_to_string(setup.tree.path_of(cgroup).join("cgroup.procs"))
        .unwrap_or_default();
    procs
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .filter(|pid| uid_of(*pid) == Some(uid))
        .collect()
}

/// Waits until at least `at_least` processes of `user` found by /proc's listing are there,
/// all in its fence, and none in `source`; returns how long that took. Fails with where they
/// are.
fn wait_all_fenced(
    setup: &TestSetup,
    user: &TestUser,
    source: &str,
    at_least: usize,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let listed = processes_of(user.uid);
        let outside: Vec<_> = listed
            .iter()
            .filter(|(_, cgroup)| !in_fence(setup, cgroup, &user.name))
            .collect();
        let left = in_cgroup(setup, source, user.uid);
        if listed.len() >= at_least && outside.is_empty() && left.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "after {limit:?}: processes of {} outside the fence: {outside:?}; in {source}: \
             {left:?}; all: {listed:?}",
            user.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Held by each test that runs a hopper: two spinning at once on a small host starve each
/// other's CPU time, by which `assert_hopper_runs_in_fence` tells where one runs.
static ONE_HOPPER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_hopper_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed holding it leaves nothing behind to protect.
    ONE_HOPPER_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `cgroupctl doctor --json`: its fence finding.
fn doctor_fence(setup: &TestSetup) -> serde_json::Value {
    let out = ctl(setup, &["doctor", "--json"]);
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let fence = findings
        .into_iter()
        .find(|f| f["check"] == "fence")
        .unwrap_or_else(|| panic!("no fence finding: {}", describe(&out)));
    fence
}

/// Ends a hopper on drop, before its user is deleted: no pkill can be sure to hit a process
/// that forks and exits every 0.2 ms, but a cgroup's cgroup.kill reaches every process in
/// it, forks under way included. In its fence (the test passed) it is killed there; else it
/// is waited out (its own deadline, `until`).
struct HopperEnds<'a> {
    fence: PathBuf,
    user: &'a TestUser,
    until: Instant,
}

impl<'a> HopperEnds<'a> {
    fn new(setup: &TestSetup, user: &'a TestUser, hop_secs: u32) -> Self {
        HopperEnds {
            fence: setup.tree.user(&user.name),
            user,
            // The hopper's clock starts at the switch, a little after this.
            until: Instant::now()
                + Duration::from_secs(hop_secs.into())
                + Duration::from_millis(500),
        }
    }
}

impl Drop for HopperEnds<'_> {
    fn drop(&mut self) {
        let _ = std::fs::write(self.fence.join("cgroup.kill"), "1");
        while Instant::now() < self.until && !processes_of(self.user.uid).is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits until the hopper of `user` runs in its fence; fails with the daemon's account of its
/// sweeps and drains and where the user's processes were seen.
fn wait_hopper_in_fence(
    setup: &TestSetup,
    user: &TestUser,
    daemon: &NetDaemon,
    what: &str,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if cpu_in_fence_over_200ms(setup, user) >= HOPPER_CPU_USEC {
            return started.elapsed();
        }
        if started.elapsed() >= limit {
            let log = daemon.log();
            let told: Vec<&str> = log.lines().filter(|l| l.contains("safety net")).collect();
            panic!(
                "timed out after {limit:?} waiting for {what}; {}'s processes found by /proc: \
                 {:?}; the daemon said:\n{}",
                user.name,
                processes_of(user.uid),
                told.join("\n")
            );
        }
    }
}

/// The fenced events go to a database next to `history` (written out here: the broken
/// configs below are written without the test support's additions).
fn config(history: &Path, policy: &str) -> String {
    format!(
        "[policy]\nsafety_net = true\n{policy}[events]\nhistory_dir = \"{}\"\nhistory_size = \"64K\"\n\
         [history]\nenabled = false\ndatabase = \"{}\"\n",
        history.display(),
        history.with_extension("db.d").join("history.db").display()
    )
}

#[test]
fn setuid_to_a_confined_user_lands_in_its_fence_and_is_an_event() {
    require_root();
    let alice = TestUser::new("psn");
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(&work.path().join("history"), ""), "");
    let daemon = NetDaemon::start(&setup, &[alice.uid]);

    let mut probe = Probe::switch(alice.uid, alice.gid);
    let before = probe.cgroup();
    assert!(!in_fence(&setup, &before, &alice.name));
    probe.go();
    let took = wait_fenced(&setup, &probe, &alice.name);
    eprintln!("moved within {took:?}");
    // A leaf of its own under a service named after its parent (the test binary).
    let leaf = setup.tree.path_of(&probe.cgroup());
    assert_eq!(
        leaf.file_name().unwrap().to_string_lossy(),
        format!("pid-{}", probe.pid())
    );
    assert_eq!(
        leaf.parent().unwrap().parent().unwrap(),
        setup.tree.user(&alice.name)
    );
    // Handed to the customer (after the move: a leaf handed over first could be made to
    // refuse it), as a login's leaf is.
    use std::os::unix::fs::MetadataExt;
    for file in ["", "cgroup.procs", "cgroup.subtree_control"] {
        let owner = std::fs::metadata(leaf.join(file)).unwrap().uid();
        assert_eq!(owner, alice.uid, "{}", leaf.join(file).display());
    }

    // The move is an event of kind fenced, with where the process was.
    let mut events: Vec<serde_json::Value> = Vec::new();
    wait_until("the fenced event in the history", MOVE_LIMIT, || {
        let out = ctl(&setup, &["events", "--json", "--kind", "fenced"]);
        // One JSON object a line; nothing (and a failure) until the history exists.
        events = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        !events.is_empty()
    });
    let e = &events[0];
    assert_eq!(e["user"], alice.name.as_str(), "{e}");
    assert_eq!(e["kind"], "fenced", "{e}");
    assert_eq!(e["from"], before.as_str(), "{e}");
    assert_eq!(e["processes"][0]["pid"], probe.pid(), "{e}");
    assert!(
        daemon
            .log()
            .contains(&format!("moved process {} ", probe.pid())),
        "{}",
        daemon.log()
    );
}

#[test]
fn seteuid_or_setreuid_only_root_and_exempt_users_stay_put() {
    require_root();
    let alice = TestUser::new("psn");
    let exempt = TestUser::new("psx");
    let work = tempfile::tempdir().unwrap();
    let policy = format!("exempt_users = [\"root\", \"{}\"]\n", exempt.name);
    let setup = TestSetup::new(&config(&work.path().join("history"), &policy), "");
    // The net may act for all three uids: what keeps them put must be the policy.
    let _daemon = NetDaemon::start(&setup, &[0, alice.uid, exempt.uid]);

    let mut only_euid = Probe::seteuid(alice.uid);
    // sshd's privileged monitor after pam_keyinit: real uid the customer's, effective and
    // saved root. Moved, it would sit in the customer's fence (frozen with it when suspended).
    let mut only_ruid = Probe::setreuid(alice.uid);
    let mut stays_root = Probe::switch(0, 0);
    let mut to_exempt = Probe::switch(exempt.uid, exempt.gid);
    let places: Vec<String> = [&only_euid, &only_ruid, &stays_root, &to_exempt]
        .iter()
        .map(|p| p.cgroup())
        .collect();
    only_euid.go();
    only_ruid.go();
    stays_root.go();
    to_exempt.go();
    // The barrier: a later switch to the confined user is moved.
    let mut later = Probe::switch(alice.uid, alice.gid);
    later.go();
    wait_fenced(&setup, &later, &alice.name);
    assert_eq!(only_euid.cgroup(), places[0], "seteuid only");
    assert_eq!(
        only_ruid.cgroup(),
        places[1],
        "setreuid(user, -1): still root"
    );
    assert_eq!(stays_root.cgroup(), places[2], "root");
    assert_eq!(to_exempt.cgroup(), places[3], "exempt user");
}

#[test]
fn a_process_in_its_fence_stays_and_one_in_another_fence_goes_to_its_own() {
    require_root();
    let alice = TestUser::new("psn");
    let bob = TestUser::new("psn");
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(&work.path().join("history"), ""), "");
    let _daemon = NetDaemon::start(&setup, &[alice.uid, bob.uid]);

    // Both start as root in alice's fence (classify --force), then one becomes alice, the
    // other bob.
    let mut stays = Probe::switch(alice.uid, alice.gid);
    let mut moves = Probe::switch(bob.uid, bob.gid);
    for p in [&stays, &moves] {
        let pid = p.pid().to_string();
        ctl_ok(
            &setup,
            &[
                "classify",
                &pid,
                "--user",
                &alice.name,
                "--service",
                "pre",
                "--force",
            ],
        );
    }
    let placed = stays.cgroup();
    assert!(in_fence(&setup, &placed, &alice.name), "{placed}");
    stays.go();
    moves.go();
    wait_fenced(&setup, &moves, &bob.name);
    // The barrier for alice's probe: a later switch to alice is moved.
    let mut later = Probe::switch(alice.uid, alice.gid);
    later.go();
    wait_fenced(&setup, &later, &alice.name);
    assert_eq!(stays.cgroup(), placed);
}

#[test]
fn doctor_fails_a_stray_while_the_daemon_is_down_and_its_first_sweep_moves_it() {
    require_root();
    let alice = TestUser::new("psn");
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(&work.path().join("history"), ""), "");
    // The tree exists (a daemon ran and stopped); nothing watches now.
    ctl_ok(&setup, &["init"]);
    let mut stray = Probe::switch(alice.uid, alice.gid);
    stray.go();

    let out = ctl(&setup, &["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let fence = findings
        .iter()
        .find(|f| f["check"] == "fence")
        .unwrap_or_else(|| panic!("no fence finding: {}", describe(&out)));
    assert_eq!(fence["status"], "FAIL", "{fence}");
    let summary = fence["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("pid {} ({})", stray.pid(), alice.name)),
        "{summary}"
    );
    let net = findings
        .iter()
        .find(|f| f["check"] == "safety-net")
        .unwrap();
    assert_eq!(net["status"], "FAIL", "no daemon runs for it: {net}");

    let _daemon = NetDaemon::start(&setup, &[alice.uid]);
    wait_fenced(&setup, &stray, &alice.name);
}

#[test]
fn the_net_judges_by_the_policy_the_logins_follow_an_edit_or_a_typo_without_a_reload() {
    require_root();
    let alice = TestUser::new("psn");
    let admin = TestUser::new("psa");
    let work = tempfile::tempdir().unwrap();
    let history = work.path().join("history");
    let setup = TestSetup::new(&config(&history, ""), "");
    let _daemon = NetDaemon::start(&setup, &[alice.uid, admin.uid]);

    // The admin is made exempt by an edit of the file, with no reload of the daemon, and then
    // the file gets a typo after the valid [policy]: the module follows that [policy] (the
    // broken file's readable part), and so must the net.
    let policy = format!("exempt_users = [\"root\", \"{}\"]\n", admin.name);
    setup.write_config(&config(&history, &policy));
    let mut to_admin = Probe::switch(admin.uid, admin.gid);
    let place = to_admin.cgroup();
    to_admin.go();
    let mut later = Probe::switch(alice.uid, alice.gid);
    later.go();
    wait_fenced(&setup, &later, &alice.name);
    assert_eq!(
        to_admin.cgroup(),
        place,
        "an exempt admin's process was moved"
    );

    let broken = format!(
        "{}[limits]\n\"memory.max\" = \"1Gx\"\n",
        config(&history, &policy)
    );
    std::fs::write(setup.config_path(), broken).unwrap();
    let mut to_admin = Probe::switch(admin.uid, admin.gid);
    let place = to_admin.cgroup();
    to_admin.go();
    let mut later = Probe::switch(alice.uid, alice.gid);
    later.go();
    wait_fenced(&setup, &later, &alice.name);
    assert_eq!(
        to_admin.cgroup(),
        place,
        "with a typo in the file, an exempt admin's process was moved"
    );
}

#[test]
fn a_child_forked_before_the_move_is_fenced_with_its_parent() {
    require_root();
    let alice = TestUser::new("psn");
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(&work.path().join("history"), ""), "");
    let _daemon = NetDaemon::start(&setup, &[alice.uid]);

    // `sh -c 'sleep 100 &'`: the child is in the probe's cgroup before the probe is moved.
    let mut probe = Probe::background(alice.uid, alice.gid);
    let source = probe.cgroup();
    probe.go();
    let took = wait_all_fenced(&setup, &alice, &source, 2, DRAIN_LIMIT);
    eprintln!("both fenced within {took:?}");
}

#[test]
fn a_hopper_that_forks_and_exits_again_and_again_is_drained_into_its_fence() {
    require_root();
    let alice = TestUser::new("psn");
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(&work.path().join("history"), ""), "");
    let daemon = NetDaemon::start_sweeping_every(&setup, &[alice.uid], Some(1));

    // The probe stays root; its child switches and stays (the event names it, and a gone
    // one would tell nothing); the hopper it forked at once is an orphan in the same cgroup
    // within 0.2 ms.
    let _cpu = one_hopper_at_a_time();
    // Longer than the waits below: a failure is the net's, not the hopper's end.
    const HOP_SECS: u32 = 30;
    let mut probe = Probe::hop(alice.uid, alice.gid, HOP_SECS);
    // Dropped before the probe, which reaps the last generations.
    let _ends = HopperEnds::new(&setup, &alice, HOP_SECS);
    let source = probe.cgroup();
    assert!(!in_fence(&setup, &source, &alice.name));
    probe.go();
    let took = wait_all_fenced(&setup, &alice, &source, 1, DRAIN_LIMIT);
    eprintln!("the switched process fenced within {took:?}");
    wait_hopper_in_fence(
        &setup,
        &alice,
        &daemon,
        "the hopper to run in the fence",
        DRAIN_LIMIT,
    );
    // The hopper runs in the fence, and stays: every generation after is forked there.
    for _ in 0..5 {
        assert_hopper_runs_in_fence(&setup, &alice);
        wait_all_fenced(&setup, &alice, &source, 1, Duration::ZERO);
    }
    let log = daemon.log();
    eprintln!(
        "{}",
        log.lines()
            .filter(|l| l.contains("drain"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // A drain may give up on a loaded host (its bounds: 64 reads, 0.5 s), logged and counted;
    // the next sighting drains again. What matters is where the hopper ends, checked above.
}

/// A daemon whose stderr reader is gone (a journal stream that broke): each log line fails
/// with EPIPE. eprintln! panicked on it, and the first line killed the daemon (or the net's
/// thread in a drain, leaving what it had stopped stopped); a lost line must cost nothing.
#[test]
fn a_daemon_whose_log_reader_is_gone_still_fences() {
    require_root();
    let alice = TestUser::new("psn");
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(&work.path().join("history"), ""), "");
    let mut daemon = Command::new(cgroupctl_bin())
        .arg("--config")
        .arg(setup.config_path())
        .args(["daemon", "--scan-interval", "600"])
        .args(["--safety-net-uid", &alice.uid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(daemon.stderr.take());
    let mut daemon = KilledOnDrop(daemon);
    let mut probe = Probe::switch(alice.uid, alice.gid);
    // Fenced by the uid event, or by the first sweep if the switch came before the daemon
    // listened; each step logs, and the daemon must live through it.
    let started = Instant::now();
    probe.go();
    while !in_fence(&setup, &probe.cgroup(), &alice.name) {
        let status = daemon.0.try_wait().unwrap();
        assert!(status.is_none(), "the daemon died: {status:?}");
        assert!(
            started.elapsed() < MOVE_LIMIT,
            "not fenced in {MOVE_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = daemon.0.try_wait().unwrap();
    assert!(status.is_none(), "the daemon died: {status:?}");
}

/// A child process killed and waited for on drop (std's Child is neither).
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// In how many of 30 looks at `source`'s cgroup.procs, 10 ms apart, a process of `uid` is
/// there: a hopper outside its fence is, in nearly all of them (one generation always lives).
fn looks_outside(setup: &TestSetup, source: &str, uid: u32) -> usize {
    (0..30)
        .filter(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !in_cgroup(setup, source, uid).is_empty()
        })
        .count()
}

/// The net stops what it finds of a hopper before the move; the customer continues every
/// process of its own at once, again and again (`kill -CONT -1` in a loop, from a shell that
/// the net fences too). Holding them failed: each drain chased the hopper to its bounds and
/// gave up, and the hopper stayed outside. A drain that finds one of the processes it
/// stopped running again moves each one as soon as it is found.
#[test]
fn a_hopper_whose_owner_continues_what_the_net_stops_is_still_fenced() {
    require_root();
    let alice = TestUser::new("psn");
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(&work.path().join("history"), ""), "");
    let daemon = NetDaemon::start_sweeping_every(&setup, &[alice.uid], Some(1));
    let _cpu = one_hopper_at_a_time();
    let spammer = Command::new("setpriv")
        .args([
            "--reuid",
            &alice.uid.to_string(),
            "--regid",
            &alice.gid.to_string(),
            "--clear-groups",
            "sh",
            "-c",
            "while :; do kill -s CONT -- -1; done",
        ])
        .spawn()
        .unwrap();
    let spammer_pid = spammer.id();
    // Killed on every way out: a customer's busy loop must not outlive the test.
    let _spammer = KilledOnDrop(spammer);
    wait_until("the customer's shell to be fenced", MOVE_LIMIT, || {
        in_fence(&setup, &cgroup_of(spammer_pid), &alice.name)
    });
    const HOP_SECS: u32 = 30;
    let mut probe = Probe::hop(alice.uid, alice.gid, HOP_SECS);
    let _ends = HopperEnds::new(&setup, &alice, HOP_SECS);
    let source = probe.cgroup();
    assert!(!in_fence(&setup, &source, &alice.name));
    probe.go();
    let took = wait_until(
        "the hopper to leave its cgroup for good",
        DRAIN_LIMIT,
        || looks_outside(&setup, &source, alice.uid) == 0,
    );
    eprintln!("no process of the hopper outside its fence within {took:?}");
    // And it stays in: every generation after is forked there.
    for _ in 0..3 {
        let seen = looks_outside(&setup, &source, alice.uid);
        assert_eq!(seen, 0, "the hopper is back outside: {}", daemon.log());
    }
    eprintln!(
        "{}",
        daemon
            .log()
            .lines()
            .filter(|l| l.contains("drain") || l.contains("continued"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A process name in bytes that are not UTF-8 (a CGI script named so, or a customer's own
/// prctl) once hid the process from the safety net: /proc/PID/status was read as strict UTF-8
/// and an unreadable process was skipped, at the uid event and at every sweep.
const ODD_NAME: &[u8] = b"\xff\xfe-hop.cgi";

#[test]
fn a_process_named_in_bytes_that_are_not_utf8_is_fenced_at_the_switch() {
    require_root();
    let alice = TestUser::new("psn");
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(&work.path().join("history"), ""), "");
    let _daemon = NetDaemon::start(&setup, &[alice.uid]);
    let mut probe = Probe::switch_named(alice.uid, alice.gid, ODD_NAME, false);
    probe.go();
    wait_fenced(&setup, &probe, &alice.name);
}

#[test]
fn a_stray_that_renames_itself_in_odd_bytes_is_reported_by_doctor_and_moved_by_the_sweep() {
    require_root();
    let alice = TestUser::new("psn");
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(&work.path().join("history"), ""), "");
    ctl_ok(&setup, &["init"]);
    // Switched while no daemon runs, then renamed by the customer's own (unprivileged) process.
    let mut stray = Probe::switch_named(alice.uid, alice.gid, ODD_NAME, true);
    stray.go();
    let status = std::fs::read(format!("/proc/{}/status", stray.pid())).unwrap();
    assert!(
        status.windows(2).any(|w| w == b"\xff\xfe"),
        "the name is set: {}",
        String::from_utf8_lossy(&status)
    );
    let fence = doctor_fence(&setup);
    assert_eq!(fence["status"], "FAIL", "{fence}");
    assert!(
        fence["summary"].as_str().unwrap().contains(&format!(
            "pid {} ({})",
            stray.pid(),
            alice.name
        )),
        "{fence}"
    );
    let _daemon = NetDaemon::start(&setup, &[alice.uid]);
    wait_fenced(&setup, &stray, &alice.name);
}

/// The threads of a process, by /proc/PID/task, with the cgroup each is in.
fn threads_of(pid: u32) -> Vec<(u32, String)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let tid = e.file_name().to_str()?.parse().ok()?;
                    let text = std::fs::read_to_string(e.path().join("cgroup")).ok()?;
                    let cgroup = text.lines().find_map(|l| l.strip_prefix("0::"))?;
                    Some((tid, cgroup.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A customer's process whose main thread exits while another runs on (pthread_exit() in
/// main, in a program a root daemon ran as the customer: `|~/bin/x` in ~/.forward) shows
/// `Z` in /proc/PID/stat. The net took it for a zombie, gone, and never moved it, and doctor
/// said nothing: its other thread ran outside the fence for good. Now it is told by a thread
/// that runs, and a move of its PID takes the threads into the fence.
#[test]
fn a_process_whose_main_thread_exited_is_still_found_and_fenced() {
    require_root();
    let alice = TestUser::new("psn");
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(&work.path().join("history"), ""), "");
    ctl_ok(&setup, &["init"]);
    // Switched while no daemon runs: only the sweep can find it.
    let mut probe = Probe::leader_exits(alice.uid, alice.gid);
    probe.go();
    let pid = probe.pid();
    wait_until("the main thread to exit", MOVE_LIMIT, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|f| f.trim_start().starts_with('Z'))
        })
    });
    let worker = || {
        threads_of(pid)
            .into_iter()
            .find(|(tid, _)| *tid != pid)
            .unwrap_or_else(|| panic!("process {pid} has no running thread"))
    };
    assert!(!in_fence(&setup, &worker().1, &alice.name));

    let fence = doctor_fence(&setup);
    assert_eq!(fence["status"], "FAIL", "{fence}");
    assert!(
        fence["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {pid} ({})", alice.name)),
        "{fence}"
    );

    let daemon = NetDaemon::start(&setup, &[alice.uid]);
    wait_until(
        &format!("the running thread of process {pid} to enter the fence"),
        MOVE_LIMIT,
        || in_fence(&setup, &worker().1, &alice.name),
    );
    // Found once, moved once: cgroup.procs still lists it where its main thread exited, and
    // each read after tells it is in its fence (no drain runs to its bounds on it).
    let log = daemon.log();
    assert!(!log.contains("gave up draining"), "{log}");
    let fence = doctor_fence(&setup);
    assert!(
        !fence["summary"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("pid {pid} ")),
        "{fence}"
    );
    // The levers reach it in the fence, though the fence's cgroup.procs does not list it
    // (it is listed where its main thread exited): a TERM by thread, not by cgroup.procs.
    let o = ctl(&setup, &["kill", &alice.name, "--signal", "TERM"]);
    assert!(o.status.success(), "{}", describe(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("0 remaining"), "{out}");
    let status = wait_for_value("the process to end by the TERM", MOVE_LIMIT, || {
        probe.child.try_wait().unwrap()
    });
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

/// A hopper whose switching process is gone before any daemon runs: no uid change is ever
/// seen, and no generation lives long enough to be read after a listing of /proc (the old
/// sweep's way), so it ran outside the fence for good. The sweep's walk of the cgroups reads
/// each one's processes at once: the daemon's first sweep catches it.
#[test]
fn a_hopper_started_while_no_daemon_runs_is_caught_by_a_sweep() {
    require_root();
    let alice = TestUser::new("psn");
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(&work.path().join("history"), ""), "");
    ctl_ok(&setup, &["init"]);
    let _cpu = one_hopper_at_a_time();
    // Longer than the waits below: a failure is the net's, not the hopper's end.
    const HOP_SECS: u32 = 40;
    let mut probe = Probe::hop_alone(alice.uid, alice.gid, HOP_SECS);
    let _ends = HopperEnds::new(&setup, &alice, HOP_SECS);
    let source = probe.cgroup();
    assert!(!in_fence(&setup, &source, &alice.name));
    probe.go();
    let hopping = Instant::now();
    // The switched process is gone: only the hopper is left, and no daemon ran meanwhile.
    // No process of alice lives from one listing of /proc to the next, 50 ms later.
    wait_until("the switched process to exit", MOVE_LIMIT, || {
        let first = processes_of(alice.uid);
        std::thread::sleep(Duration::from_millis(50));
        let second = processes_of(alice.uid);
        !first.iter().any(|p| second.contains(p))
    });

    eprintln!("the hopper hopped alone for {:?}", hopping.elapsed());
    let started = Instant::now();
    let daemon = NetDaemon::start_sweeping_every(&setup, &[alice.uid], Some(1));
    wait_hopper_in_fence(
        &setup,
        &alice,
        &daemon,
        "a sweep to fence the hopper",
        SWEEP_CATCH_LIMIT,
    );
    eprintln!(
        "the hopper ran in its fence within {:?} of the daemon's start",
        started.elapsed()
    );
    // It stays: every generation after is forked there.
    for _ in 0..5 {
        assert_hopper_runs_in_fence(&setup, &alice);
        wait_all_fenced(&setup, &alice, &source, 0, Duration::ZERO);
    }
    let log = daemon.log();
    eprintln!(
        "{}",
        log.lines()
            .filter(|l| l.contains("sweep") || l.contains("drain"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // A drain may give up on a loaded host (its bounds: 64 reads, 0.5 s), logged and counted;
    // the next sighting drains again. What matters is where the hopper ends, checked above.
}
