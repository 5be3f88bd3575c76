//! The metrics endpoint: a minimal HTTP/1.1 responder on a loopback TCP address or a unix
//! socket. `GET /metrics` answers the same text as `cgroupctl stats --prometheus`, plus the
//! daemon's own counters.
//!
//! The metrics name every customer and its usage, so no customer may read them, and no
//! customer may stall them:
//! - Who may read: root, and the users given with `--allow-user` (the `prometheus` user of a
//!   stock Prometheus). The peer's uid comes from the kernel before anything is read: the
//!   owner of the peer socket for loopback TCP (sock_diag, peer.rs; only while the peer still
//!   holds it connected: one that already closed leaves a timewait the kernel reports as uid 0),
//!   SO_PEERCRED for the unix socket. Anyone else gets a 403 at once and the connection is
//!   closed: a customer's connection never holds the server for a moment.
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cgroup_core::config::Config;
use cgroup_core::inventory::user_cgroups;
use cgroup_core::stats::daemon::{self, Counters};
use cgroup_core::stats::prometheus::CONTENT_TYPE;
use cgroup_core::stats::users::{collect, fill_info, prometheus_text};
use cgroup_core::tree::Tree;

use super::log;
use super::peer::{tcp_peer_uid, unix_peer_uid};
use super::worker::accept_loop;
use crate::metrics_socket::{REQUEST_DEADLINE, WRITE_DEADLINE};

const MAX_REQUEST: usize = 8192;
/// Allowed connections served at once (Prometheus scrapes one at a time; room for an admin).
const MAX_ACTIVE: usize = 4;

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
        let tree = match tree.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let snapshot = user_cgroups(&tree).and_then(|users| collect(&tree, users));
        let config = match server.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        };
        match snapshot {
            Ok(mut all) => ("200 OK", CONTENT_TYPE, {
                fill_info(&config, &mut all);
                prometheus_text(&all) + &daemon::render(counters)
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

/// Serves `listener` until `stop` becomes readable (the daemon's worker thread).
pub fn run(
    listener: Listener,
    tree: Arc<RwLock<Tree>>,
    config: Arc<RwLock<Arc<Config>>>,
    counters: Arc<Counters>,
    access: Access,
    stop: OwnedFd,
) {
    let server = Arc::new(Server {
        tree,
        config,
        counters,
        access,
        active: AtomicUsize::new(0),
    });
    accept_loop("metrics", listener.fd(), &stop, || {
        accept_one(&listener, &server)
    });
}
