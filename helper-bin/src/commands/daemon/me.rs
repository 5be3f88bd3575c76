//! The customers' socket (`--me-socket`, e.g. /run/pam_cgroup/me.sock): `cgroupctl me` run by
//! a customer connects, and the daemon answers, as one JSON document, that customer's limits,
//! usage and recent faults (cgroup-core's `events::me`), then closes.
//!
//! No new privilege and nothing of anybody else:
//! - who is asking is the kernel's word: SO_PEERCRED's uid, resolved through NSS to the name
//!   of users/<name>. The customer may send one short request line, read within
//!   REQUEST_WAIT: `history SECONDS` asks for its usage history over that many seconds;
//!   anything else, or nothing, gets the plain answer. Only a number reaches the daemon's
//!   work: no path, user or option of the customer's choice;
//! - the socket is 0666 (every customer may ask about itself) in a root-owned directory no
//!   one else may write to (so nobody can replace it);
//! - a customer cannot stall it or make it work for nothing: one connection of a uid at a
//!   time (a second one is told "busy" at once), one answer per uid per second (the answer
//!   reads the history), at most MAX_ACTIVE connections served at once, each in its own
//!   short-lived thread and ended CONNECTION_DEADLINE after it got its slot, however slowly
//!   the peer reads or however it trickles bytes: a slot is never held longer than that;
//! - so customers who hold every slot cannot shut out another one: a connection that finds
//!   them all held waits, in the order it came, for the first slot to free, at most
//!   CONNECTION_DEADLINE (then it is told "busy" rather than cut off): with 8 slots of 3 s each,
//!   a customer is served within about 3 s whatever up to 8 others do, and any number of
//!   others, each limited to one slot and one answer a second, delay it by their turns only.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use cgroup_core::config::Config;
use cgroup_core::tree::Tree;

use super::log;
use super::peer::unix_peer_uid;
use super::socket::bind_unix_socket;
use super::worker::accept_loop;

const MAX_ACTIVE: usize = 8;
/// A whole connection, from accept to close: the answer written, then the peer's bytes
/// drained. Per connection, not per read or write, so trickling bytes buys no time.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(3);
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The drain after the answer, in all (within CONNECTION_DEADLINE).
const DRAIN_DEADLINE: Duration = Duration::from_secs(1);
const MAX_DRAIN: usize = 64 * 1024;
/// How long the daemon waits for a request line before giving the plain answer (a client
/// that sends nothing, as `me` before --history did), and its longest length.
const REQUEST_WAIT: Duration = Duration::from_millis(200);
const MAX_REQUEST: usize = 64;
const BUSY: &[u8] = b"{\"error\":\"busy: one request per second\"}\n";
const FULL: &[u8] = b"{\"error\":\"busy: too many requests, try again\"}\n";

/// Where the answers come from; the database follows reloads.
pub struct Sources {
    pub tree: Arc<RwLock<Tree>>,
    /// The whole config, for `[history] database` (usage rows and fault events).
    pub config: Arc<RwLock<Arc<Config>>>,
}

/// What the customer asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Plain,
    /// The usage history over this many seconds.
    History(i64),
}

/// A request line: `history SECONDS`; anything else is the plain question.
fn parse_request(line: &[u8]) -> Request {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("history"), Some(n), None) => n
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=cgroup_core::history::customer::MAX_PERIOD_SECS).contains(n))
            .map_or(Request::Plain, Request::History),
        _ => Request::Plain,
    }
}

/// Reads the request line: up to a newline, the end of the peer's writes, MAX_REQUEST bytes
/// or REQUEST_WAIT, whichever comes first.
fn read_request(s: &mut UnixStream, deadline: Instant) -> Request {
    let end = deadline.min(Instant::now() + REQUEST_WAIT);
    let mut line = Vec::with_capacity(MAX_REQUEST);
    let mut buf = [0u8; MAX_REQUEST];
    while line.len() < MAX_REQUEST && !line.contains(&b'\n') {
        let Some(wait) = remaining(end) else {
            break;
        };
        if s.set_read_timeout(Some(wait)).is_err() {
            break;
        }
        match std::io::Read::read(s, &mut buf[..MAX_REQUEST - line.len()]) {
            Ok(0) => break,
            Ok(n) => line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let first = line.split(|b| *b == b'\n').next().unwrap_or(&[]);
    parse_request(first)
}

struct Server {
    sources: Sources,
    /// Connections being served; `slot_freed` is signalled when one ends.
    active: Mutex<usize>,
    slot_freed: Condvar,
    /// uid -> (connection open, last answer).
    per_uid: Mutex<HashMap<u32, (bool, Instant)>>,
}

impl Server {
    /// Takes a slot, waiting for one until `deadline`; false when none freed in time.
    fn take_slot(&self, deadline: Instant) -> bool {
        let mut active = match self.active.lock() {
            Ok(a) => a,
            Err(p) => p.into_inner(),
        };
        while *active >= MAX_ACTIVE {
            let Some(left) = remaining(deadline) else {
                return false;
            };
            active = match self.slot_freed.wait_timeout(active, left) {
                Ok((a, _)) => a,
                Err(p) => p.into_inner().0,
            };
        }
        *active += 1;
        true
    }

    fn release_slot(&self) {
        let mut active = match self.active.lock() {
            Ok(a) => a,
            Err(p) => p.into_inner(),
        };
        *active = active.saturating_sub(1);
        self.slot_freed.notify_one();
    }

    fn per_uid(&self) -> std::sync::MutexGuard<'_, HashMap<u32, (bool, Instant)>> {
        match self.per_uid.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        }
    }
}

/// Time left before `deadline`, None once it has passed (a zero timeout would mean "none").
fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// Answers a refused connection without a thread and without waiting: a fresh socket's buffer
/// takes these few bytes; then what arrived is dropped, never waited for.
fn refuse(mut s: UnixStream, answer: &[u8]) {
    let _ = s.set_nonblocking(true);
    let _ = s.write_all(answer);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    while matches!(std::io::Read::read(&mut s, &mut sink), Ok(n) if n > 0) {}
}

/// Binds the socket: its directory must be root's and writable by root only (created 0755
/// when missing); a stale socket is replaced, a live one (another daemon) refused.
pub fn bind(path: &Path) -> Result<UnixListener> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .context("the me socket needs a directory")?;
    if parent.starts_with(cgroup_core::paths::RUN_DIR) {
        // That directory is root-only (0700) and holds the logins' locks: a customer could not
        // reach the socket there, and making it 0755 would make logins refuse it.
        bail!(
            "the me socket cannot live in {}: use {}",
            cgroup_core::paths::RUN_DIR,
            cgroup_core::paths::ME_SOCKET
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
    bind_unix_socket(path, 0o666)
}

fn answer_json(sources: &Sources, uid: u32, request: Request) -> String {
    let name = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => {
            return serde_json::json!({"error": format!("uid {uid} has no user name")}).to_string()
        }
    };
    if let Request::History(period) = request {
        let database = match sources.config.read() {
            Ok(c) => c.history.database.clone(),
            Err(p) => p.into_inner().history.database.clone(),
        };
        let now = (cgroup_core::time::now_ms() / 1000) as i64;
        let me = cgroup_core::history::customer::answer(&database, &name, uid, period, now);
        return serde_json::to_string(&me)
            .unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}).to_string());
    }
    let user_dir = match sources.tree.read() {
        Ok(t) => t.user_dir(&name),
        Err(p) => p.into_inner().user_dir(&name),
    };
    let database = match sources.config.read() {
        Ok(c) => c.history.database.clone(),
        Err(p) => p.into_inner().history.database.clone(),
    };
    // Its own events only: the peer's name with its uid (a name given again to another uid
    // does not show its predecessor's), and no query of the customer's choosing.
    let recent = cgroup_core::history::events::of_customer(
        &database,
        &name,
        uid,
        cgroup_core::events::me::MAX_EVENTS,
    )
    .ok();
    let me = cgroup_core::events::me::answer(user_dir.ok().as_deref(), &name, uid, recent);
    serde_json::to_string(&me)
        .unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}).to_string())
}

/// Serves one connection, ended at `deadline` whatever the peer does.
fn serve(server: &Server, mut s: UnixStream, uid: u32, deadline: Instant) {
    let request = read_request(&mut s, deadline);
    let body = format!("{}\n", answer_json(&server.sources, uid, request));
    let mut unsent = body.as_bytes();
    while !unsent.is_empty() {
        let Some(left) = remaining(deadline) else {
            return;
        };
        if s.set_write_timeout(Some(left)).is_err() {
            return;
        }
        match s.write(unsent) {
            Ok(n) if n > 0 => unsent = &unsent[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
    // End of answer; then whatever the peer sent is read and dropped (never parsed) until it
    // closes, briefly: closing a unix socket with unread data resets the connection, and the
    // peer could lose the answer.
    let _ = s.shutdown(std::net::Shutdown::Write);
    let drain_end = deadline.min(Instant::now() + DRAIN_DEADLINE);
    let mut sink = [0u8; 4096];
    let mut left = MAX_DRAIN;
    while left > 0 {
        let Some(wait) = remaining(drain_end) else {
            return;
        };
        if s.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match std::io::Read::read(&mut s, &mut sink) {
            Ok(n) if n > 0 => left = left.saturating_sub(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}

/// Checks the peer's uid against the per-uid rules, waits for a slot if all are held (the
/// accept loop, so connections are taken in the order they came), then serves it in its own
/// thread.
fn dispatch(server: &Arc<Server>, s: UnixStream) {
    let accepted = Instant::now();
    let Ok(uid) = unix_peer_uid(&s) else {
        return;
    };
    let uid_free = |now: Instant| match server.per_uid().get(&uid) {
        Some((busy, last)) => !*busy && now.duration_since(*last) >= MIN_INTERVAL,
        None => true,
    };
    // Only this thread marks a uid busy, so the check still holds once a slot is taken.
    if !uid_free(accepted) {
        refuse(s, BUSY);
        return;
    }
    if !server.take_slot(accepted + CONNECTION_DEADLINE) {
        refuse(s, FULL);
        return;
    }
    // The connection's own deadline starts now: the wait for a slot is not its time.
    let deadline = Instant::now() + CONNECTION_DEADLINE;
    {
        let mut map = server.per_uid();
        let now = Instant::now();
        // Forget uids that have not asked for a while, so the map stays small.
        map.retain(|_, (busy, last)| *busy || now.duration_since(*last) < MIN_INTERVAL);
        map.insert(uid, (true, now));
    }
    let worker = server.clone();
    let done = move |w: &Server| {
        w.per_uid().insert(uid, (false, Instant::now()));
        w.release_slot();
    };
    let spawned = std::thread::Builder::new()
        .name("me-conn".into())
        .spawn(move || {
            serve(&worker, s, uid, deadline);
            done(&worker);
        });
    if let Err(e) = spawned {
        log::warn(&format!("me: start a connection thread: {e}"));
        server.per_uid().insert(uid, (false, Instant::now()));
        server.release_slot();
    }
}

/// Serves `listener` until `stop` becomes readable (the daemon's worker thread).
pub fn run(listener: UnixListener, sources: Sources, stop: OwnedFd) {
    let server = Arc::new(Server {
        sources,
        active: Mutex::new(0),
        slot_freed: Condvar::new(),
        per_uid: Mutex::new(HashMap::new()),
    });
    accept_loop("me", listener.as_fd(), &stop, || {
        let (s, _) = listener
            .accept()
            .map_err(|e| std::io::Error::new(e.kind(), format!("accept: {e}")))?;
        // A connection that cannot be made blocking is dropped.
        if s.set_nonblocking(false).is_ok() {
            dispatch(&server, s);
        }
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_period_is_taken_from_the_customer() {
        assert_eq!(parse_request(b"history 604800"), Request::History(604_800));
        assert_eq!(parse_request(b" history  60 "), Request::History(60));
        for plain in [
            &b""[..],
            b"me",
            b"history",
            b"history 0",
            b"history -5",
            b"history 99999999999",
            b"history 60 alice",
            b"history ../../etc/shadow",
            b"{\"user\":\"alice\"}",
        ] {
            assert_eq!(parse_request(plain), Request::Plain, "{plain:?}");
        }
    }
}
