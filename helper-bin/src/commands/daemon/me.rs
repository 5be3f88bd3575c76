//! The customers' socket (`--me-socket`, e.g. /run/pam_cgroup/me.sock): `cgroupctl me` run by
//! a customer connects, and the daemon answers, as one JSON document, that customer's limits,
//! usage and recent faults (cgroup-core's `events::me`), then closes.
//!
//! No new privilege and nothing of anybody else:
//! - who is asking is the kernel's word: SO_PEERCRED's uid, resolved through NSS to the name
//!   of users/<name>; the daemon never reads a byte from the customer, so no path, user or
//!   option of the customer's choice reaches it;
//! - the socket is 0666 (every customer may ask about itself) in a root-owned directory no
//!   one else may write to (so nobody can replace it);
//! - a customer cannot stall it or make it work for nothing: one connection of a uid at a
//!   time, one answer per uid per second (the answer reads the history), at most MAX_ACTIVE
//!   connections served at once (each in its own short-lived thread, with a write deadline);
//!   beyond that the connection is closed at once.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use cgroup_core::config::EventsConfig;
use cgroup_core::tree::Tree;

use super::log;
use super::peer::unix_peer_uid;

const MAX_ACTIVE: usize = 8;
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const DRAIN_DEADLINE: Duration = Duration::from_secs(1);
const MAX_DRAIN: usize = 64 * 1024;

/// Where the answers come from; the history directory follows reloads.
pub struct Sources {
    pub tree: Arc<RwLock<Tree>>,
    pub events: Arc<RwLock<EventsConfig>>,
}

struct Server {
    sources: Sources,
    active: AtomicUsize,
    /// uid -> (connection open, last answer).
    per_uid: Mutex<HashMap<u32, (bool, Instant)>>,
}

/// Binds the socket: its directory must be root's and writable by root only (created 0755
/// when missing); a stale socket is replaced, a live one (another daemon) refused.
pub fn bind(path: &Path) -> Result<UnixListener> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .context("the me socket needs a directory")?;
    if parent.starts_with(cgroup_core::sessions::RUN_DIR) {
        // That directory is root-only (0700) and holds the logins' locks: a customer could not
        // reach the socket there, and making it 0755 would make logins refuse it.
        bail!(
            "the me socket cannot live in {}: use /run/pam_cgroup-me/me.sock",
            cgroup_core::sessions::RUN_DIR
        );
    }
    if !parent.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .with_context(|| format!("create {}", parent.display()))?;
    }
    let meta =
        std::fs::symlink_metadata(parent).with_context(|| format!("stat {}", parent.display()))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        bail!(
            "{} must be a root-owned directory nobody else may write to (a customer could replace the socket)",
            parent.display()
        );
    }
    super::bind_unix_socket(path, 0o666)
}

fn answer_json(sources: &Sources, uid: u32) -> String {
    let name = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => {
            return serde_json::json!({"error": format!("uid {uid} has no user name")}).to_string()
        }
    };
    let users_dir = match sources.tree.read() {
        Ok(t) => t.users_dir(),
        Err(p) => p.into_inner().users_dir(),
    };
    let history = match sources.events.read() {
        Ok(e) => e.history_dir.clone(),
        Err(p) => p.into_inner().history_dir.clone(),
    };
    let me = cgroup_core::events::me::answer(&users_dir, &name, uid, &history);
    serde_json::to_string(&me)
        .unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}).to_string())
}

fn serve(server: &Server, mut s: UnixStream, uid: u32) {
    let body = answer_json(&server.sources, uid);
    let _ = s.set_write_timeout(Some(WRITE_DEADLINE));
    if s.write_all(body.as_bytes())
        .and_then(|()| s.write_all(b"\n"))
        .is_err()
    {
        return;
    }
    // End of answer; then whatever the peer sent is read and dropped (never parsed) until it
    // closes, briefly: closing a unix socket with unread data resets the connection, and the
    // peer could lose the answer.
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(DRAIN_DEADLINE));
    let mut sink = [0u8; 4096];
    let mut left = MAX_DRAIN;
    while left > 0 {
        match std::io::Read::read(&mut s, &mut sink) {
            Ok(n) if n > 0 => left = left.saturating_sub(n),
            _ => break,
        }
    }
}

/// Checks the peer's uid against the per-uid rules, then serves it in its own thread.
fn dispatch(server: &Arc<Server>, s: UnixStream) {
    let Ok(uid) = unix_peer_uid(&s) else {
        return;
    };
    {
        let mut map = match server.per_uid.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        if let Some((busy, last)) = map.get(&uid) {
            if *busy || now.duration_since(*last) < MIN_INTERVAL {
                // Answered without a thread of its own and without waiting: a fresh socket's
                // buffer takes these few bytes; then what arrived is dropped, never waited for.
                let mut s = s;
                let _ = s.set_nonblocking(true);
                let _ = s.write_all(b"{\"error\":\"busy: one request per second\"}\n");
                let _ = s.shutdown(std::net::Shutdown::Write);
                let mut sink = [0u8; 4096];
                while matches!(std::io::Read::read(&mut s, &mut sink), Ok(n) if n > 0) {}
                return;
            }
        }
        if server.active.fetch_add(1, Ordering::SeqCst) >= MAX_ACTIVE {
            server.active.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        // Forget uids that have not asked for a while, so the map stays small.
        map.retain(|_, (busy, last)| *busy || now.duration_since(*last) < MIN_INTERVAL);
        map.insert(uid, (true, now));
    }
    let worker = server.clone();
    let done = move |w: &Server| {
        let mut map = match w.per_uid.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.insert(uid, (false, Instant::now()));
        w.active.fetch_sub(1, Ordering::SeqCst);
    };
    let spawned = std::thread::Builder::new()
        .name("me-conn".into())
        .spawn(move || {
            serve(&worker, s, uid);
            done(&worker);
        });
    if let Err(e) = spawned {
        log::warn(&format!("me: start a connection thread: {e}"));
        let mut map = match server.per_uid.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.insert(uid, (false, Instant::now()));
        server.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves until `stop` becomes readable.
pub fn spawn(
    listener: UnixListener,
    sources: Sources,
    stop: OwnedFd,
) -> std::io::Result<JoinHandle<()>> {
    let server = Arc::new(Server {
        sources,
        active: AtomicUsize::new(0),
        per_uid: Mutex::new(HashMap::new()),
    });
    std::thread::Builder::new()
        .name("me".into())
        .spawn(move || loop {
            let mut fds = [
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::error(&format!("me: poll: {e}"));
                    return;
                }
            }
            if fds[1].any().unwrap_or(true) {
                return;
            }
            if fds[0].any().unwrap_or(false) {
                match listener.accept() {
                    Ok((s, _)) => {
                        if s.set_nonblocking(false).is_ok() {
                            dispatch(&server, s);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => log::warn(&format!("me: accept: {e}")),
                }
            }
        })
}
