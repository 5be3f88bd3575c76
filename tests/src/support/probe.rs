//! Socket probes run as another identity in a forked child: the child moves itself into a
//! cgroup, drops to the given uid/gid (no supplementary groups), runs socket calls and reports
//! each result through a pipe. The test process is multi-threaded, so the child does only raw
//! syscalls on buffers allocated before fork(), closes every inherited fd it does not need
//! (other tests' pipes), and leaves with _exit().

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, MsgFlags, SockFlag, SockType, SockaddrLike,
    SockaddrStorage,
};

/// Who the child becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

impl Identity {
    pub const ROOT: Identity = Identity { uid: 0, gid: 0 };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One socket call on a fresh socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// socket, [IPV6_V6ONLY], bind, getsockname.
    Bind {
        addr: SocketAddr,
        proto: Proto,
        v6only: bool,
    },
    /// TCP socket, connect.
    Connect { addr: SocketAddr },
    /// UDP socket, sendto (one byte).
    SendTo { addr: SocketAddr },
    /// TCP socket, connect, getpeername: where the connection really went.
    ConnectPeer { addr: SocketAddr },
    /// UDP socket of `addr`'s family, sendmsg (one byte) with a source address chosen in an
    /// IP_PKTINFO (v4) or IPV6_PKTINFO (v6) control message.
    SendFrom { src: IpAddr, addr: SocketAddr },
}

impl Op {
    pub fn bind(addr: &str, proto: Proto) -> Op {
        Op::Bind {
            addr: addr.parse().unwrap(),
            proto,
            v6only: false,
        }
    }
    pub fn bind_v6only(addr: &str, proto: Proto) -> Op {
        Op::Bind {
            addr: addr.parse().unwrap(),
            proto,
            v6only: true,
        }
    }
    pub fn connect(addr: &str) -> Op {
        Op::Connect {
            addr: addr.parse().unwrap(),
        }
    }
    pub fn send_to(addr: &str) -> Op {
        Op::SendTo {
            addr: addr.parse().unwrap(),
        }
    }
    pub fn connect_peer(addr: &str) -> Op {
        Op::ConnectPeer {
            addr: addr.parse().unwrap(),
        }
    }
    pub fn send_from(src: &str, addr: &str) -> Op {
        Op::SendFrom {
            src: src.parse().unwrap(),
            addr: addr.parse().unwrap(),
        }
    }

    /// `bind:ADDR`, `bind-udp:ADDR`, `connect:ADDR`, `peer:ADDR`, `send:ADDR`,
    /// `send-from:SRC=ADDR` (sock-probe's arguments).
    pub fn parse(text: &str) -> Option<Op> {
        let (kind, arg) = text.split_once(':')?;
        Some(match kind {
            "bind" => Op::bind(arg, Proto::Tcp),
            "bind-udp" => Op::bind(arg, Proto::Udp),
            "connect" => Op::connect(arg),
            "peer" => Op::connect_peer(arg),
            "send" => Op::send_to(arg),
            "send-from" => {
                let (src, dst) = arg.split_once('=')?;
                Op::send_from(src, dst)
            }
            _ => return None,
        })
    }
}

/// Performs one op in this process (sock-probe runs it after `sg`, `newgrp` or a setgid exec).
pub fn perform_op(op: &Op) -> Outcome {
    perform(op)
}

/// An outcome as sock-probe prints it: `ok`, `ok ADDR` or `errno N`.
pub fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Ok(None) => "ok".to_string(),
        Ok(Some(a)) => format!("ok {a}"),
        Err(e) => format!("errno {e}"),
    }
}

/// Ok(bound address after a bind, None otherwise) or Err(errno).
pub type Outcome = Result<Option<SocketAddr>, i32>;

const RECORD: usize = 32;

// ---- child side: raw syscalls only ------------------------------------------------------
//
// The socket calls go through nix's thin wrappers (one syscall each, no allocation); only
// sendmsg with a PKTINFO message is written out, because nix's sendmsg allocates its control
// buffer, which a child forked from a multi-threaded process must not do.

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The address a syscall takes, from a std one.
pub(crate) fn sockaddr(addr: &SocketAddr) -> SockaddrStorage {
    SockaddrStorage::from(*addr)
}

/// The std address of what getsockname / getpeername gave (None for another family).
fn socket_addr(ss: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(sin) = ss.as_sockaddr_in() {
        return Some(SocketAddr::V4((*sin).into()));
    }
    ss.as_sockaddr_in6()
        .map(|sin6| SocketAddr::V6((*sin6).into()))
}

pub(crate) fn new_socket(addr: &SocketAddr, proto: Proto) -> Result<OwnedFd, i32> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let ty = match proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
    };
    socket::socket(family, ty, SockFlag::SOCK_CLOEXEC, None).map_err(|e| e as i32)
}

/// socket + bind (+ getsockname); the socket is returned open.
fn bind_fd(
    addr: &SocketAddr,
    proto: Proto,
    v6only: bool,
) -> Result<(OwnedFd, Option<SocketAddr>), i32> {
    let fd = new_socket(addr, proto)?;
    if addr.is_ipv6() {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &v6only).map_err(|e| e as i32)?;
    }
    socket::bind(fd.as_raw_fd(), &sockaddr(addr)).map_err(|e| e as i32)?;
    let bound: SockaddrStorage = socket::getsockname(fd.as_raw_fd()).map_err(|e| e as i32)?;
    Ok((fd, socket_addr(&bound)))
}

fn perform(op: &Op) -> Outcome {
    match op {
        Op::Bind {
            addr,
            proto,
            v6only,
        } => bind_fd(addr, *proto, *v6only).map(|(_, bound)| bound),
        Op::Connect { addr } => {
            let fd = new_socket(addr, Proto::Tcp)?;
            socket::connect(fd.as_raw_fd(), &sockaddr(addr)).map_err(|e| e as i32)?;
            Ok(None)
        }
        Op::SendTo { addr } => {
            let fd = new_socket(addr, Proto::Udp)?;
            socket::sendto(fd.as_raw_fd(), b"x", &sockaddr(addr), MsgFlags::empty())
                .map_err(|e| e as i32)?;
            Ok(None)
        }
        Op::ConnectPeer { addr } => {
            let fd = new_socket(addr, Proto::Tcp)?;
            socket::connect(fd.as_raw_fd(), &sockaddr(addr)).map_err(|e| e as i32)?;
            let peer: SockaddrStorage =
                socket::getpeername(fd.as_raw_fd()).map_err(|e| e as i32)?;
            Ok(socket_addr(&peer))
        }
        Op::SendFrom { src, addr } => send_from(src, addr),
    }
}

/// sendmsg of one byte to `addr` with `src` as the source in a PKTINFO control message.
fn send_from(src: &IpAddr, addr: &SocketAddr) -> Outcome {
    let fd = new_socket(addr, Proto::Udp)?;
    let to = sockaddr(addr);
    // Room for one cmsg of either kind (u64 array: aligned for cmsghdr).
    let mut control = [0u64; 8];
    let mut byte = *b"x";
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: all-zero is a valid msghdr; every pointer set below outlives the sendmsg, and
    // the kernel only reads msg_name.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = to.as_ptr().cast_mut().cast();
    msg.msg_namelen = to.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    let (level, kind, data_len) = match src {
        IpAddr::V4(_) => (
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            std::mem::size_of::<libc::in_pktinfo>(),
        ),
        IpAddr::V6(_) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_PKTINFO,
            std::mem::size_of::<libc::in6_pktinfo>(),
        ),
    };
    // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic; the control buffer (64 bytes) holds
    // one cmsg of either pktinfo kind, and CMSG_FIRSTHDR/CMSG_DATA point inside it.
    unsafe {
        msg.msg_controllen = libc::CMSG_SPACE(data_len as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
        match src {
            IpAddr::V4(ip) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(ip.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
            }
            IpAddr::V6(ip) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: ip.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
            }
        }
    }
    // SAFETY: msg and everything it points to are valid for the call.
    if unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, 0) } < 0 {
        Err(errno())
    } else {
        Ok(None)
    }
}

fn encode(outcome: &Outcome, rec: &mut [u8]) {
    rec.fill(0);
    match outcome {
        Err(e) => rec[0..4].copy_from_slice(&e.to_ne_bytes()),
        Ok(None) => {}
        Ok(Some(addr)) => {
            rec[6..8].copy_from_slice(&addr.port().to_be_bytes());
            match addr.ip() {
                IpAddr::V4(ip) => {
                    rec[4] = 4;
                    rec[8..12].copy_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    rec[4] = 6;
                    rec[8..24].copy_from_slice(&ip.octets());
                }
            }
        }
    }
}

fn decode(rec: &[u8]) -> Outcome {
    let e = i32::from_ne_bytes(rec[0..4].try_into().unwrap());
    if e != 0 {
        return Err(e);
    }
    let port = u16::from_be_bytes([rec[6], rec[7]]);
    match rec[4] {
        4 => Ok(Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(rec[8], rec[9], rec[10], rec[11])),
            port,
        ))),
        6 => {
            let octets: [u8; 16] = rec[8..24].try_into().unwrap();
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        _ => Ok(None),
    }
}

pub(crate) fn write_all(fd: i32, buf: &[u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the slice is readable from done to its end.
        let n = unsafe { libc::write(fd, buf[done..].as_ptr().cast(), buf.len() - done) };
        if n <= 0 {
            return false;
        }
        done += n as usize;
    }
    true
}

/// The child's first steps: keep only `keep` (dup'ed to 3), enter the cgroup, drop privileges.
/// Returns the fd to report on, or exits with a code naming the failed step.
pub(crate) fn child_setup(keep: i32, procs: &CString, who: Identity) -> i32 {
    // SAFETY: raw syscalls on values prepared before fork; _exit never returns.
    unsafe {
        if libc::dup2(keep, 3) < 0 {
            libc::_exit(90);
        }
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 || libc::write(fd, b"0\n".as_ptr().cast(), 2) != 2 {
            libc::_exit(91);
        }
        libc::close(fd);
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(who.gid) != 0
            || libc::setuid(who.uid) != 0
        {
            libc::_exit(92);
        }
    }
    3
}

// ---- parent side ------------------------------------------------------------------------

pub(crate) fn procs_path(cgroup: &Path) -> CString {
    CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes()).unwrap()
}

pub(crate) fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for two fds.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        0,
        "pipe2"
    );
    (fds[0], fds[1])
}

pub(crate) fn read_exact(fd: i32, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the slice is writable from done to its end.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        if n <= 0 {
            break;
        }
        done += n as usize;
    }
    done
}

pub(crate) fn wait(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

pub(crate) fn exit_meaning(status: i32) -> String {
    let code = libc::WEXITSTATUS(status);
    match code {
        91 => "could not enter the cgroup".to_string(),
        92 => "could not drop privileges".to_string(),
        _ => format!("wait status {status:#x}"),
    }
}

/// Runs `ops` as `who` inside `cgroup`, each on a fresh socket, and returns their outcomes.
pub fn run_as(cgroup: &Path, who: Identity, ops: &[Op]) -> Vec<Outcome> {
    let procs = procs_path(cgroup);
    let ops = ops.to_vec();
    let mut buf = vec![0u8; ops.len() * RECORD];
    let (r, w) = pipe();
    // SAFETY: the child runs only raw syscalls on memory prepared above, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let out = child_setup(w, &procs, who);
        for (op, rec) in ops.iter().zip(buf.chunks_mut(RECORD)) {
            encode(&perform(op), rec);
        }
        let ok = write_all(out, &buf);
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 93 }) };
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(w) };
    let got = read_exact(r, &mut buf);
    // SAFETY: our fd.
    unsafe { libc::close(r) };
    let status = wait(pid);
    assert!(
        got == buf.len() && status == 0,
        "probe child as {who:?} in {} failed: {}",
        cgroup.display(),
        exit_meaning(status)
    );
    buf.chunks(RECORD).map(decode).collect()
}

/// A socket bound (and listening, for TCP) by a child running as `who` in `cgroup`, kept open
/// until the Server is dropped (the child is killed).
pub struct Server {
    pid: i32,
    /// Where it is bound (getsockname), or the bind's errno.
    pub bound: Outcome,
}

impl Server {
    pub fn start(cgroup: &Path, who: Identity, op: Op) -> Server {
        let Op::Bind {
            addr,
            proto,
            v6only,
        } = op
        else {
            panic!("a server binds: {op:?}");
        };
        let procs = procs_path(cgroup);
        let mut rec = [0u8; RECORD];
        let (r, w) = pipe();
        // SAFETY: as in run_as.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let out = child_setup(w, &procs, who);
            // The socket stays open until the child is killed.
            let mut _kept = None;
            let outcome = bind_fd(&addr, proto, v6only).and_then(|(fd, bound)| {
                if proto == Proto::Tcp {
                    socket::listen(&fd, Backlog::new(64).map_err(|e| e as i32)?)
                        .map_err(|e| e as i32)?;
                }
                _kept = Some(fd);
                Ok(bound)
            });
            encode(&outcome, &mut rec);
            write_all(out, &rec);
            // SAFETY: close our report fd, then wait to be killed.
            unsafe {
                libc::close(out);
                loop {
                    libc::pause();
                }
            }
        }
        // SAFETY: our copy of the write end.
        unsafe { libc::close(w) };
        let got = read_exact(r, &mut rec);
        // SAFETY: our fd.
        unsafe { libc::close(r) };
        let server = Server {
            pid,
            bound: decode(&rec),
        };
        assert_eq!(
            got,
            RECORD,
            "server child as {who:?} in {} died",
            cgroup.display()
        );
        server
    }

    /// The bound address; panics if the bind failed.
    pub fn addr(&self) -> SocketAddr {
        match self.bound {
            Ok(Some(a)) => a,
            other => panic!("server bind failed: {other:?}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: our own child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        wait(self.pid);
    }
}

/// Timings of one bench run, in nanoseconds per operation.
#[derive(Debug, Clone, Copy)]
pub struct BenchTimes {
    /// TCP bind of 0.0.0.0 (rewritten when the programs are attached).
    pub bind_tcp_ns: f64,
    /// TCP bind of the private address itself (never rewritten): the hook's own cost.
    pub bind_direct_ns: f64,
    pub bind_udp_ns: f64,
    pub connect_ns: f64,
}

/// socket + bind + close, `iterations` times; ns per iteration.
fn bind_loop(bind: &SocketAddr, proto: Proto, iterations: u32) -> Result<f64, i32> {
    let start = Instant::now();
    for _ in 0..iterations {
        bind_fd(bind, proto, false)?;
    }
    Ok(start.elapsed().as_nanos() as f64 / f64::from(iterations))
}

fn bench_loops(bind: SocketAddr, direct: SocketAddr, iterations: u32) -> Result<BenchTimes, i32> {
    let bind_tcp_ns = bind_loop(&bind, Proto::Tcp, iterations)?;
    let bind_direct_ns = bind_loop(&direct, Proto::Tcp, iterations)?;
    let bind_udp_ns = bind_loop(&bind, Proto::Udp, iterations)?;
    // A listener on the same (possibly rewritten) address; then socket + connect + accept +
    // close, the client closing with RST (linger 0) so no TIME_WAIT piles up.
    let (listener, bound) = bind_fd(&bind, Proto::Tcp, false)?;
    let target = bound.ok_or(libc::EINVAL)?;
    socket::listen(&listener, Backlog::new(128).map_err(|e| e as i32)?).map_err(|e| e as i32)?;
    let to = sockaddr(&target);
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let start = Instant::now();
    for _ in 0..iterations {
        let fd = new_socket(&target, Proto::Tcp)?;
        socket::connect(fd.as_raw_fd(), &to).map_err(|e| e as i32)?;
        let peer = socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC);
        let _ = socket::setsockopt(&fd, sockopt::Linger, &linger);
        drop(fd);
        if let Ok(peer) = peer {
            let _ = nix::unistd::close(peer);
        }
    }
    let connect_ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    drop(listener);
    Ok(BenchTimes {
        bind_tcp_ns,
        bind_direct_ns,
        bind_udp_ns,
        connect_ns,
    })
}

/// Times `iterations` of socket+bind+close on `bind` (TCP and UDP) and on `direct` (TCP), and
/// of socket+connect(+accept)+close to a listener bound on `bind`, as `who` in `cgroup`
/// (forked child). Err: the child failed.
pub fn bench_as(
    cgroup: &Path,
    who: Identity,
    bind: SocketAddr,
    direct: SocketAddr,
    iterations: u32,
) -> Result<BenchTimes, String> {
    let procs = procs_path(cgroup);
    let mut rec = [0u8; 36];
    let (r, w) = pipe();
    // SAFETY: as in run_as.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".to_string());
    }
    if pid == 0 {
        let out = child_setup(w, &procs, who);
        match bench_loops(bind, direct, iterations) {
            Ok(t) => {
                rec[0..4].copy_from_slice(&0i32.to_ne_bytes());
                rec[4..12].copy_from_slice(&t.bind_tcp_ns.to_ne_bytes());
                rec[12..20].copy_from_slice(&t.bind_udp_ns.to_ne_bytes());
                rec[20..28].copy_from_slice(&t.connect_ns.to_ne_bytes());
                rec[28..36].copy_from_slice(&t.bind_direct_ns.to_ne_bytes());
            }
            Err(e) => rec[0..4].copy_from_slice(&e.to_ne_bytes()),
        }
        let ok = write_all(out, &rec);
        // SAFETY: leaving the child.
        unsafe { libc::_exit(if ok { 0 } else { 93 }) };
    }
    // SAFETY: our copy of the write end.
    unsafe { libc::close(w) };
    let got = read_exact(r, &mut rec);
    // SAFETY: our fd.
    unsafe { libc::close(r) };
    let status = wait(pid);
    if got != rec.len() || status != 0 {
        return Err(format!("bench child failed: {}", exit_meaning(status)));
    }
    let e = i32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]);
    if e != 0 {
        return Err(format!(
            "bench child: {}",
            std::io::Error::from_raw_os_error(e)
        ));
    }
    let f = |b: &[u8]| f64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
    Ok(BenchTimes {
        bind_tcp_ns: f(&rec[4..12]),
        bind_udp_ns: f(&rec[12..20]),
        connect_ns: f(&rec[20..28]),
        bind_direct_ns: f(&rec[28..36]),
    })
}
