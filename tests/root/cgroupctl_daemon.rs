//! `cgroupctl daemon`: removes a leaf within a second of it becoming empty (sessions opened
//! before and after it started, and a burst of cron-like sessions), answers a metrics scrape
//! on a unix socket and on loopback TCP, reloads on SIGHUP and stops on SIGTERM.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use pam_cgroup_tests::support::{require_root, TestSetup, TestUser};

use crate::cgroupctl::{
    cgroupctl_bin, empty_session, parse_prometheus, session_with_background, Kill,
};

/// The daemon process; killed on drop if the test did not stop it.
struct Daemon {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(setup: &TestSetup, listen: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("daemon.log");
        let child = Command::new(cgroupctl_bin())
            .arg("--config")
            .arg(setup.config_path())
            .args(["daemon", "--scan-interval", "600"])
            .args(listen)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get<S: Read + Write>(mut s: S) -> (String, String) {
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.to_string(), body.to_string())
}

fn scrape_unix(path: &Path) -> (String, String) {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    http_get(s)
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn populated(leaf: &Path) -> Option<bool> {
    std::fs::read_to_string(leaf.join("cgroup.events"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("populated "))
        .map(|v| v.trim() != "0")
}

/// Kills `pid`, waits until its leaf reports empty, then gives the daemon one second to
/// remove the leaf; the latency is printed.
fn assert_reaped_within_a_second(pid: u32, leaf: &Path, daemon: &Daemon) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    wait_for("the leaf to empty", Duration::from_secs(10), || {
        populated(leaf) != Some(true)
    });
    let start = Instant::now();
    while leaf.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let latency = start.elapsed();
    eprintln!(
        "daemon removed {} {:?} after it emptied",
        leaf.display(),
        latency
    );
    assert!(
        !leaf.exists(),
        "{} not removed after 5 s; log:\n{}",
        leaf.display(),
        daemon.log()
    );
    assert!(
        latency <= Duration::from_secs(1),
        "removed after {latency:?} (> 1 s); log:\n{}",
        daemon.log()
    );
}

#[test]
fn daemon_reaps_serves_reloads_and_stops() {
    require_root();
    let setup = TestSetup::new("max_depth = 4\n", "");
    let user = TestUser::new("pcd");
    let mut kill_list = Kill::default();
    // A session from before the daemon started (found by the initial watch of the tree).
    let (early_pid, early_leaf) = session_with_background(&setup, &user, &mut kill_list);
    let socket = setup.dir.path().join("metrics.sock");
    let socket_arg = socket.display().to_string();
    let mut daemon = Daemon::start(&setup, &["--socket", &socket_arg]);
    wait_for("the metrics socket", Duration::from_secs(20), || {
        UnixStream::connect(&socket).is_ok()
    });

    assert_reaped_within_a_second(early_pid, &early_leaf, &daemon);

    // A session opened while it runs (watched through IN_CREATE).
    let (late_pid, late_leaf) = session_with_background(&setup, &user, &mut kill_list);
    std::thread::sleep(Duration::from_millis(300));
    assert!(late_leaf.exists());
    assert_reaped_within_a_second(late_pid, &late_leaf, &daemon);

    // A burst of cron-like sessions whose process exits inside the leaf: none is left.
    let burst: Vec<PathBuf> = (0..5).map(|_| empty_session(&setup, &user.name)).collect();
    let took = wait_for("the burst's leaves to go", Duration::from_secs(10), || {
        burst.iter().all(|l| !l.exists())
    });
    eprintln!("burst of 5 leaves removed within {took:?} of the last session");

    // Metrics.
    let (head, body) = scrape_unix(&socket);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let families = parse_prometheus(&body);
    assert!(
        body.contains(&format!("pam_cgroup_sessions{{user=\"{}\"}} 0", user.name)),
        "{body}"
    );
    assert!(
        families
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f[0] == "pam_cgroup_daemon_reaped_leaves"),
        "{body}"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // SIGHUP: the new config reaches the live cgroup.
    let caps = setup.tree.user(&user.name).join("cgroup.max.depth");
    assert_eq!(std::fs::read_to_string(&caps).unwrap().trim(), "6");
    let text = std::fs::read_to_string(setup.config_path()).unwrap();
    setup.write_config(&text.replace("max_depth = 4", "max_depth = 23"));
    daemon.signal(Signal::SIGHUP);
    wait_for(
        "the reload to reach the cgroup",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&caps)
                .map(|t| t.trim() == "25")
                .unwrap_or(false)
        },
    );
    let (_, body) = scrape_unix(&socket);
    assert!(body.contains("pam_cgroup_daemon_reloads_total 2"), "{body}");
    // A broken config on SIGHUP is logged and the running one kept.
    setup.write_config("[limits]\n\"pids.max\" = 0\n");
    daemon.signal(Signal::SIGHUP);
    wait_for(
        "the failed reload to be counted",
        Duration::from_secs(10),
        || {
            scrape_unix(&socket)
                .1
                .contains("pam_cgroup_daemon_reload_failures_total 1")
        },
    );

    // SIGTERM: clean exit, socket removed.
    daemon.signal(Signal::SIGTERM);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = daemon.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "daemon did not stop; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}; log:\n{}", daemon.log());
    assert!(!socket.exists(), "socket left behind");
    let log = daemon.log();
    assert!(log.contains("removed empty leaf"), "{log}");
    assert!(log.contains("keeping the running config"), "{log}");
    drop(kill_list);
}

#[test]
fn daemon_serves_metrics_on_loopback_tcp() {
    require_root();
    let setup = TestSetup::new("", "");
    let user = TestUser::new("pct");
    empty_session(&setup, &user.name);
    // A free port: bound and released (the daemon binds it again at once).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(&setup, &["--listen", &addr]);
    wait_for("the metrics port", Duration::from_secs(20), || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    let s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (head, body) = http_get(s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{}", daemon.log());
    parse_prometheus(&body);
    assert!(body.contains("pam_cgroup_daemon_reloads_total 1"), "{body}");
    daemon.signal(Signal::SIGTERM);
}

/// inotify watches held by process `pid` (its fdinfo lists one `inotify wd:` line each).
fn inotify_watches(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .map(|t| t.lines().filter(|l| l.starts_with("inotify wd:")).count())
        .sum()
}

#[test]
fn the_daemon_watches_only_what_root_made() {
    require_root();
    let setup = TestSetup::new("max_descendants = 200\n", "");
    let user = TestUser::new("pcd");
    let mut kill_list = Kill::default();
    let (_, leaf) = session_with_background(&setup, &user, &mut kill_list);
    let socket = setup.dir.path().join("metrics.sock");
    let socket_arg = socket.display().to_string();
    let daemon = Daemon::start(&setup, &["--socket", &socket_arg]);
    wait_for("the metrics socket", Duration::from_secs(20), || {
        UnixStream::connect(&socket).is_ok()
    });
    let before = inotify_watches(daemon.child.id());
    // The customer builds 150 cgroups in its leaf: root's watch budget does not grow.
    let script = format!(
        "for i in $(seq 1 50); do mkdir -p {l}/a$i/b/c; done",
        l = leaf.display()
    );
    let made = Command::new("setpriv")
        .args([
            &format!("--reuid={}", user.uid),
            &format!("--regid={}", user.gid),
            "--clear-groups",
            "sh",
            "-c",
            &script,
        ])
        .status()
        .unwrap();
    assert!(made.success());
    std::thread::sleep(Duration::from_millis(500));
    let after = inotify_watches(daemon.child.id());
    assert!(before > 0, "the daemon watches the tree");
    assert_eq!(after, before, "watches grew with the customer's cgroups");
    // A new session adds one leaf's worth of watches.
    let _other = empty_session(&setup, &user.name);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inotify_watches(daemon.child.id()), before + 1);
}
