//! The daemon's metrics socket as both ends see it: the deadlines the daemon keeps, where the
//! package puts the socket, and the client that asks a running daemon for its own families
//! (`cgroupctl stats --prometheus` and `--textfile`, which have no counters of their own).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use cgroup_core::stats::daemon::daemon_lines_of;

/// Where the packaged daemon serves its metrics to root (debian/pam-cgroup.service).
pub const DEFAULT_DAEMON_SOCKET: &str = cgroup_core::paths::METRICS_SOCKET;

/// The whole request (line and headers) must have arrived this long after accept.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// The whole answer must have been written this long after the request arrived.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// A whole scrape is read up to this size (hundreds of users take a few hundred KB).
const MAX_ANSWER: u64 = 64 << 20;

/// The daemon's own families, asked of a running daemon on its unix metrics socket.
pub fn ask_daemon(path: &Path) -> Result<String> {
    let mut s = UnixStream::connect(path).with_context(|| {
        format!(
            "connect to {} (is the daemon running, with --socket {}?)",
            path.display(),
            path.display()
        )
    })?;
    s.set_read_timeout(Some(REQUEST_DEADLINE + WRITE_DEADLINE))?;
    s.set_write_timeout(Some(REQUEST_DEADLINE))?;
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
        bail!("the daemon answered {status:?}");
    }
    Ok(daemon_lines_of(body))
}
