//! The metrics endpoint: a minimal HTTP/1.1 responder on a loopback TCP address or a unix
//! socket. `GET /metrics` answers the same text as `cgroupctl stats --prometheus`, plus the
//! daemon's own counters.
//!
//! The metrics name every customer and its usage, so no customer may read them, and no
//! customer may stall them:
//! - Who may read: root, and the users given with `--allow-user` (the `prometheus` user of a
//!   stock Prometheus). The peer's uid comes from the kernel before anything is read: the
//!   owner of the peer socket for loopback TCP (sock_diag, peer.rs), SO_PEERCRED for the unix
//!   socket. Anyone else gets a 403 at once and the connection is closed: a customer's
//!   connection never holds the server for a moment.
//! - Stalling: every allowed connection has a whole-request deadline (the request must have
//!   arrived REQUEST_DEADLINE after accept, however slowly it dribbles in) and a write
//!   deadline, and up to MAX_ACTIVE are served at once, each in its own short-lived thread; a
//!   connection beyond that gets a 503 at once. The accept loop itself never reads.
//!
//! Why loopback TCP for Prometheus: a stock Prometheus scrapes HTTP over TCP only (no unix
//! sockets), and needs no credentials in its config this way; the uid check is the kernel's
//! word, unlike a password a customer could read from a world-readable prometheus.yml.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use cgroup_core::stats::prometheus::CONTENT_TYPE;
use cgroup_core::tree::Tree;

use super::log;
use super::peer::{tcp_peer_uid, unix_peer_uid};
use cgroup_core::config::Config;

use crate::commands::stats::{collect, fill_info, prometheus_text};

/// The whole request (line and headers) must have arrived this long after accept.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// The whole answer must have been written this long after the request arrived.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
const MAX_REQUEST: usize = 8192;
/// Allowed connections served at once (Prometheus scrapes one at a time; room for an admin).
const MAX_ACTIVE: usize = 4;

/// The daemon's own counters, shown with the users' metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub reaped: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// Metrics connections refused because of who the peer was.
    pub metrics_refused: AtomicU64,
    /// Fault events recorded (`faults`), and those the history could not keep.
    pub fault_events: AtomicU64,
    pub fault_events_unsaved: AtomicU64,
    /// Processes the safety net moved into their fence, and moves that failed.
    pub fenced: AtomicU64,
    pub fence_failures: AtomicU64,
    /// Times the kernel dropped process events (a sweep of /proc followed).
    pub proc_events_lost: AtomicU64,
    /// The config file and the broken user files, each with whether it is broken now
    /// (`last_good::Watch::files`, refreshed at each pass).
    pub config_files: std::sync::Mutex<Vec<(String, bool)>>,
}

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| format!("http://{a}/metrics"))
                .unwrap_or_else(|_| "tcp".to_string()),
            Listener::Unix(_, p) => format!("unix:{} (GET /metrics)", p.display()),
        }
    }
}

pub fn daemon_metrics(c: &Counters) -> String {
    let mut out = String::new();
    for (name, help, v) in [
        (
            "pam_cgroup_daemon_reaped_leaves_total",
            "Empty leaves the daemon removed.",
            &c.reaped,
        ),
        (
            "pam_cgroup_daemon_reloads_total",
            "Reloads done (start and SIGHUP).",
            &c.reloads,
        ),
        (
            "pam_cgroup_daemon_reload_failures_total",
            "Reloads that failed (config kept).",
            &c.reload_failures,
        ),
        (
            "pam_cgroup_daemon_metrics_refused_total",
            "Metrics connections refused: the peer was not root or an allowed user.",
            &c.metrics_refused,
        ),
        (
            "pam_cgroup_daemon_fault_events_total",
            "Fault events recorded (see cgroupctl events).",
            &c.fault_events,
        ),
        (
            "pam_cgroup_daemon_fault_events_unsaved_total",
            "Fault events logged but not kept in the history (it could not be written).",
            &c.fault_events_unsaved,
        ),
        (
            "pam_cgroup_daemon_fenced_processes_total",
            "Processes whose real uid became a confined customer's, moved into its fence by the safety net.",
            &c.fenced,
        ),
        (
            "pam_cgroup_daemon_fence_failures_total",
            "Processes of confined customers the safety net found outside their fence but could not move.",
            &c.fence_failures,
        ),
        (
            "pam_cgroup_daemon_proc_events_lost_total",
            "Times the kernel dropped process events (the safety net then sweeps /proc).",
            &c.proc_events_lost,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            v.load(Ordering::Relaxed)
        ));
    }
    out.push_str(&config_broken(c));
    out
}

/// `pam_cgroup_config_broken{file}`: 1 while a config file does not parse (logins, reload
/// and the daemon use its last good copy, or follow on_error when none was kept). The
/// global file always has a series; a user file only while it is broken.
fn config_broken(c: &Counters) -> String {
    let name = CONFIG_BROKEN;
    let mut out = format!(
        "# HELP {name} 1 while the config file does not parse: its last good copy is used (or on_error, when none was kept).\n# TYPE {name} gauge\n"
    );
    let files = match c.config_files.lock() {
        Ok(f) => f.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for (file, broken) in files {
        out.push_str(&format!(
            "{name}{{file=\"{}\"}} {}\n",
            cgroup_core::stats::prometheus::escape_label(&file),
            u8::from(broken)
        ));
    }
    out
}

/// The daemon's own families, asked of a running daemon on its unix metrics socket (for
/// `cgroupctl stats --prometheus` and `--textfile`, which have no counters of their own).
pub fn ask_daemon(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let mut s = UnixStream::connect(path).with_context(|| {
        format!(
            "connect to {} (is the daemon running, with --socket {}?)",
            path.display(),
            path.display()
        )
    })?;
    s.set_timeouts(
        Some(REQUEST_DEADLINE + WRITE_DEADLINE),
        Some(REQUEST_DEADLINE),
    )?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut answer = Vec::new();
    (&mut s)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .with_context(|| format!("read from {}", path.display()))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the daemon's answer has no body")?;
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        anyhow::bail!("the daemon answered {status:?}");
    }
    Ok(daemon_families_of(body))
}

/// The lines of the daemon's own families (`pam_cgroup_daemon_*` and
/// `pam_cgroup_config_broken`, their HELP and TYPE included) out of a whole scrape.
fn daemon_families_of(body: &str) -> String {
    body.lines()
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            is_daemon_family(name)
        })
        .flat_map(|l| [l, "\n"])
        .collect()
}

/// The daemon's own families start with this; the per-user ones never do.
const DAEMON_PREFIX: &str = "pam_cgroup_daemon_";
/// The one daemon family without the prefix (its name is the one the alert rules and the
/// dashboards know): whether a config file is broken, which only the daemon watches.
const CONFIG_BROKEN: &str = "pam_cgroup_config_broken";

/// Is the sample or metadata line's metric name (up to its labels) one of the daemon's?
fn is_daemon_family(name: &str) -> bool {
    name.starts_with(DAEMON_PREFIX)
        || name
            .strip_prefix(CONFIG_BROKEN)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['{', ' ']))
}
/// A whole scrape is read up to this size (hundreds of users take a few hundred KB).
const MAX_ANSWER: u64 = 64 << 20;

/// A stream whose reads and writes end at a deadline, however the peer paces its bytes.
trait DeadlineIo: Read + Write {
    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> std::io::Result<()>;
}

impl DeadlineIo for TcpStream {
    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(read)?;
        self.set_write_timeout(write)
    }
}

impl DeadlineIo for UnixStream {
    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(read)?;
        self.set_write_timeout(write)
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "request deadline passed")
}

/// Reads the request head until the blank line, `MAX_REQUEST` bytes or the deadline.
fn read_head<S: DeadlineIo>(s: &mut S, deadline: Instant) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        s.set_timeouts(Some(left), None)?;
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Err(timed_out()),
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            break;
        }
    }
    Ok(buf)
}

fn write_answer<S: DeadlineIo>(
    s: &mut S,
    status: &str,
    ctype: &str,
    body: &str,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(header.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}

fn respond<S: DeadlineIo>(mut s: S, server: &Server, accepted: Instant) -> std::io::Result<()> {
    let (tree, counters) = (&*server.tree, &*server.counters);
    let buf = read_head(&mut s, accepted + REQUEST_DEADLINE)?;
    s.set_timeouts(None, Some(WRITE_DEADLINE))?;
    let head = String::from_utf8_lossy(&buf);
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (status, ctype, body) = if method != "GET" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        )
    } else if path != "/metrics" && path != "/" {
        ("404 Not Found", "text/plain", "try /metrics\n".to_string())
    } else {
        let snapshot = match tree.read() {
            Ok(t) => collect(&t, None),
            Err(p) => collect(&p.into_inner(), None),
        };
        let config = match server.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        match snapshot {
            Ok(mut all) => ("200 OK", CONTENT_TYPE, {
                fill_info(&config, &mut all);
                prometheus_text(&all) + &daemon_metrics(counters)
            }),
            Err(e) => ("500 Internal Server Error", "text/plain", format!("{e}\n")),
        }
    };
    write_answer(&mut s, status, ctype, &body)
}

/// Who may read the metrics: root and these uids.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub uids: Vec<u32>,
}

impl Access {
    fn allows(&self, uid: u32) -> bool {
        uid == 0 || self.uids.contains(&uid)
    }
}

/// Shared by the accept loop and the connection threads.
struct Server {
    tree: Arc<RwLock<Tree>>,
    /// The running config (follows reloads): plans and suspensions of `pam_cgroup_user_info`.
    config: Arc<RwLock<Arc<Config>>>,
    counters: Arc<Counters>,
    access: Access,
    active: AtomicUsize,
}

/// A refusal written without waiting: the socket is non-blocking and a fresh connection's
/// send buffer takes these few bytes; whatever does not fit is dropped with the connection.
fn refuse<S: DeadlineIo + AsFd>(mut s: S, status: &str) {
    let _ = nix::fcntl::fcntl(
        s.as_fd().as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let _ = write_answer(&mut s, status, "text/plain", "not allowed\n");
    // Take what already arrived (never waiting) so the close is a FIN after our answer rather
    // than a reset that may discard it.
    let mut sink = [0u8; 1024];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
}

/// Checks the peer, then serves it in a thread of its own (at most MAX_ACTIVE at once).
fn dispatch<S: DeadlineIo + AsFd + Send + 'static>(
    server: &Arc<Server>,
    s: S,
    peer_uid: std::io::Result<u32>,
) {
    let accepted = Instant::now();
    match peer_uid {
        Ok(uid) if server.access.allows(uid) => {}
        _ => {
            server
                .counters
                .metrics_refused
                .fetch_add(1, Ordering::Relaxed);
            return refuse(s, "403 Forbidden");
        }
    }
    if server.active.fetch_add(1, Ordering::SeqCst) >= MAX_ACTIVE {
        server.active.fetch_sub(1, Ordering::SeqCst);
        return refuse(s, "503 Service Unavailable");
    }
    let worker = server.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-conn".into())
        .spawn(move || {
            if let Err(e) = respond(s, &worker, accepted) {
                use std::io::ErrorKind::{BrokenPipe, ConnectionReset, TimedOut};
                if !matches!(e.kind(), TimedOut | BrokenPipe | ConnectionReset) {
                    log::warn(&format!("metrics: {e}"));
                }
            }
            worker.active.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        server.active.fetch_sub(1, Ordering::SeqCst);
        log::warn(&format!("metrics: start a connection thread: {e}"));
    }
}

fn accept_one(listener: &Listener, server: &Arc<Server>) -> std::io::Result<()> {
    match listener {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept()?;
            s.set_nonblocking(false)?;
            let uid = s.local_addr().and_then(|local| tcp_peer_uid(peer, local));
            dispatch(server, s, uid);
        }
        Listener::Unix(l, _) => {
            let (s, _) = l.accept()?;
            s.set_nonblocking(false)?;
            let uid = unix_peer_uid(&s);
            dispatch(server, s, uid);
        }
    }
    Ok(())
}

/// Serves until `stop` becomes readable (the main loop writes to or closes the other end).
pub fn spawn(
    listener: Listener,
    tree: Arc<RwLock<Tree>>,
    config: Arc<RwLock<Arc<Config>>>,
    counters: Arc<Counters>,
    access: Access,
    stop: OwnedFd,
) -> std::io::Result<JoinHandle<()>> {
    let server = Arc::new(Server {
        tree,
        config,
        counters,
        access,
        active: AtomicUsize::new(0),
    });
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || loop {
            let mut fds = [
                PollFd::new(listener.fd(), PollFlags::POLLIN),
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::error(&format!("metrics: poll: {e}"));
                    return;
                }
            }
            if fds[1].any().unwrap_or(true) {
                return;
            }
            if fds[0].any().unwrap_or(false) {
                if let Err(e) = accept_one(&listener, &server) {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        log::warn(&format!("metrics: {e}"));
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `stats --prometheus` takes the daemon's families by their prefix out of a whole scrape:
    /// every daemon family has it and no per-user one does.
    #[test]
    fn daemon_families_are_told_by_their_prefix() {
        let daemon = daemon_metrics(&Counters::default());
        assert_eq!(daemon_families_of(&daemon), daemon);
        for (name, _, _) in cgroup_core::stats::prometheus::families() {
            assert!(!is_daemon_family(name), "{name}");
        }
        let users = crate::commands::stats::prometheus_text(&[]);
        assert_eq!(daemon_families_of(&(users + &daemon)), daemon);
    }
}
