//! Who the daemon's loopback TCP metrics port takes a peer for. A customer that sends its
//! request and closes its socket before the daemon looks leaves a timewait mini-socket behind
//! (once the daemon's kernel has acked its FIN), which the kernel's socket lookup reports with
//! uid 0. Those connections are refused and counted, never served as root's (each would run
//! a full collection and take one of the four connection slots, so Prometheus got 503s while
//! the refusal counter stayed still).

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use pam_cgroup_tests::support::{require_root, wait_until, TestSetup, TestUser};

use crate::cgroupctl_daemon::{free_loopback_addr, http_get, scrape_unix, Daemon};

const CLOSED_PEERS: usize = 50;

/// The customer's loop. `close`: connect, send the request, close without reading the answer,
/// one connection after the other. `timewait`: the same on all connections at once, each
/// closed only once the daemon's kernel has acked its FIN (the closing socket's state is then
/// FIN_WAIT2), so that close() leaves a timewait at once instead of an orphan that still
/// knows its uid until the daemon's delayed ack comes (40 ms or more in CLOSE_WAIT).
const CONNECT_SEND_CLOSE: &str = r#"
import socket, sys, time
addr, count, mode = (sys.argv[1], int(sys.argv[2])), int(sys.argv[3]), sys.argv[4]
FIN_WAIT2 = 5
def state(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
if mode == "close":
    for _ in range(count):
        s = socket.create_connection(addr, timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
    sys.exit(0)
held = []
for _ in range(count):
    s = socket.create_connection(addr, timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    held.append(s)
deadline = time.monotonic() + 5
for s in held:
    while state(s) != FIN_WAIT2:
        if time.monotonic() > deadline:
            sys.exit(f"FIN not acked: state {state(s)}")
        time.sleep(0.01)
    s.close()
"#;

/// `pam_cgroup_daemon_metrics_refused_total` as root reads it on the daemon's unix socket
/// (SO_PEERCRED: not a TCP peer, so the reading itself is never counted).
fn refused_so_far(socket: &Path) -> u64 {
    let (head, body) = scrape_unix(socket);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.lines()
        .find_map(|l| l.strip_prefix("pam_cgroup_daemon_metrics_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no refused counter in:\n{body}"))
}

#[test]
fn a_customer_that_closes_at_once_is_refused_not_taken_for_root() {
    require_root();
    let setup = TestSetup::new("", "");
    let customer = TestUser::new("pcw");
    let addr = free_loopback_addr();
    let port = addr.rsplit_once(':').unwrap().1;
    let socket = setup.dir.path().join("metrics.sock");
    let socket_arg = socket.display().to_string();
    let daemon = Daemon::start(&setup, &["--listen", &addr, "--socket", &socket_arg]);
    // Both are bound before the daemon serves either: waiting on the unix socket keeps root's
    // own TCP connections (which would be counted) out of the count.
    wait_until("the metrics socket", Duration::from_secs(20), || {
        UnixStream::connect(&socket).is_ok()
    });
    let before = refused_so_far(&socket);
    let connect_send_close = |mode: &str| {
        let status = customer
            .command("/usr/bin/python3")
            .args(["-c", CONNECT_SEND_CLOSE, "127.0.0.1", port])
            .args([&CLOSED_PEERS.to_string(), mode])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the customer's {mode} loop failed: {status}"
        );
    };
    // With the daemon running it looks each peer up within microseconds, long before the
    // peer is a timewait: the customer's own uid, refused either way.
    connect_send_close("close");
    // The race won for certain: the daemon stopped (a busy daemon, a starved CPU) while the
    // kernel completes each handshake, takes the request and the FIN, and the customer's
    // closed sockets become timewaits (uid 0 in the kernel's answer); then the daemon accepts
    // them all at once.
    daemon.signal(Signal::SIGSTOP);
    connect_send_close("timewait");
    daemon.signal(Signal::SIGCONT);
    let expected = 2 * CLOSED_PEERS as u64;
    // The daemon takes the connections in its own time: wait for all of them (the old build
    // took the stopped round's for root's, serving four at a time and 503 to the rest).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = refused_so_far(&socket) - before;
    while refused < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        refused = refused_so_far(&socket) - before;
    }
    assert_eq!(
        refused,
        expected,
        "customer connections refused, of {expected}\n{}",
        daemon.log()
    );
    // Root's own scrape over TCP is still served, and not counted as refused.
    let s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (head, _) = http_get(s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{}", daemon.log());
    assert_eq!(refused_so_far(&socket) - before, expected);
    daemon.signal(Signal::SIGTERM);
}
