//! The metrics endpoint: a minimal HTTP/1.1 responder on a loopback TCP address or a unix
//! socket, in one thread that the main loop stops through a pipe. `GET /metrics` answers the
//! same text as `cgroupctl stats --prometheus`, plus the daemon's own counters.
//!
//! One connection at a time with short timeouts: a Prometheus scrape is one small request a
//! few times a minute, and a slow client only delays the next scrape, never the reaping (the
//! main thread's job).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use cgroup_core::stats::prometheus::CONTENT_TYPE;
use cgroup_core::tree::Tree;

use super::log;
use crate::commands::stats::{collect, prometheus_text};

const IO_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_REQUEST: usize = 8192;

/// The daemon's own counters, shown with the users' metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub reaped: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
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

fn daemon_metrics(c: &Counters) -> String {
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
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            v.load(Ordering::Relaxed)
        ));
    }
    out
}

fn respond<S: Read + Write>(
    mut s: S,
    tree: &RwLock<Tree>,
    counters: &Counters,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            break;
        }
    }
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
        match snapshot {
            Ok(all) => (
                "200 OK",
                CONTENT_TYPE,
                prometheus_text(&all) + &daemon_metrics(counters),
            ),
            Err(e) => ("500 Internal Server Error", "text/plain", format!("{e}\n")),
        }
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(header.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}

fn serve_one(listener: &Listener, tree: &RwLock<Tree>, counters: &Counters) -> std::io::Result<()> {
    match listener {
        Listener::Tcp(l) => {
            let (s, _) = l.accept()?;
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            respond(s, tree, counters)
        }
        Listener::Unix(l, _) => {
            let (s, _) = l.accept()?;
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            respond(s, tree, counters)
        }
    }
}

/// Serves until `stop` becomes readable (the main loop writes to or closes the other end).
pub fn spawn(
    listener: Listener,
    tree: Arc<RwLock<Tree>>,
    counters: Arc<Counters>,
    stop: OwnedFd,
) -> std::io::Result<JoinHandle<()>> {
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
                if let Err(e) = serve_one(&listener, &tree, &counters) {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        log::warn(&format!("metrics: {e}"));
                    }
                }
            }
        })
}
