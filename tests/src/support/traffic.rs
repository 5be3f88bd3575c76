//! Known traffic from a confined user: a forked child enters a cgroup, drops to the user's
//! uid/gid (like probe.rs, raw syscalls only after fork) and sends an exact payload over TCP
//! or UDP; a receiver thread of the test process (root, outside the tree, so never counted)
//! takes it, in this network namespace or in a test one (`TestNetns`).

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

use super::probe::{
    child_setup, errno, exit_meaning, new_socket, pipe, procs_path, read_exact, sockaddr, wait,
    write_all, Identity, Proto,
};

/// What the sender does: TCP sends `total` bytes on one connection, then shuts down its
/// side and waits for the receiver to close; UDP sends `count` datagrams of `size` bytes on a
/// connected socket.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    Tcp { total: usize },
    Udp { count: usize, size: usize },
}

/// TCP_INFO's retransmitted payload bytes of a socket (0 when unknown): retransmissions are
/// real packets, so the hooks count them too.
fn bytes_retransmitted(fd: i32) -> u64 {
    // SAFETY: tcp_info is plain data; the kernel fills at most len bytes of it.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        if libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        ) < 0
        {
            return 0;
        }
        info.tcpi_bytes_retrans
    }
}

/// Ok(payload bytes the sender retransmitted: TCP_INFO tcpi_bytes_retrans, 0 for UDP).
fn send_load(to: &SocketAddr, load: Load, buf: &[u8]) -> Result<u64, i32> {
    let proto = match load {
        Load::Tcp { .. } => Proto::Tcp,
        Load::Udp { .. } => Proto::Udp,
    };
    let socket = new_socket(to, proto)?;
    nix::sys::socket::connect(socket.as_raw_fd(), &sockaddr(to)).map_err(|e| e as i32)?;
    let fd = socket.as_raw_fd();
    // SAFETY: raw syscalls on our socket and buffers of the stated sizes.
    unsafe {
        match load {
            Load::Tcp { total } => {
                let mut sent = 0;
                while sent < total {
                    let n = (total - sent).min(buf.len());
                    let w = libc::write(fd, buf.as_ptr().cast(), n);
                    if w <= 0 {
                        return Err(errno());
                    }
                    sent += w as usize;
                }
                libc::shutdown(fd, libc::SHUT_WR);
                // The receiver closes once it has read everything: then every data
                // segment and its ACK have passed the hooks.
                let mut sink = [0u8; 64];
                while libc::read(fd, sink.as_mut_ptr().cast(), sink.len()) > 0 {}
                Ok(bytes_retransmitted(fd))
            }
            Load::Udp { count, size } => {
                for _ in 0..count {
                    if libc::send(fd, buf.as_ptr().cast(), size.min(buf.len()), 0) < 0 {
                        return Err(errno());
                    }
                }
                Ok(0)
            }
        }
    }
}

/// Sends `load` to `to` as `who` inside `cgroup` (a forked child). Ok: the payload bytes TCP
/// retransmitted (0 for UDP); Err: what failed.
pub fn send_as(cgroup: &Path, who: Identity, to: SocketAddr, load: Load) -> Result<u64, String> {
    let procs = procs_path(cgroup);
    let buf = vec![0x5au8; 64 * 1024];
    let mut rec = [0u8; 12];
    let (r, w) = pipe();
    // SAFETY: the child runs only raw syscalls on memory prepared above, then _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        let out = child_setup(w, &procs, who);
        let (e, retrans) = match send_load(&to, load, &buf) {
            Ok(r) => (0i32, r),
            Err(e) => (e, 0),
        };
        let mut out_rec = [0u8; 12];
        out_rec[..4].copy_from_slice(&e.to_ne_bytes());
        out_rec[4..].copy_from_slice(&retrans.to_ne_bytes());
        let ok = write_all(out, &out_rec);
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 93 }) };
    }
    // SAFETY: our copy of the write end.
    unsafe { libc::close(w) };
    let got = read_exact(r, &mut rec);
    // SAFETY: our fd.
    unsafe { libc::close(r) };
    let status = wait(pid);
    if got != rec.len() || status != 0 {
        return Err(format!("sender child: {}", exit_meaning(status)));
    }
    let retrans = u64::from_ne_bytes(rec[4..].try_into().unwrap_or([0; 8]));
    match i32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]) {
        0 => Ok(retrans),
        e => Err(format!(
            "sender child: {}",
            std::io::Error::from_raw_os_error(e)
        )),
    }
}

/// A receiver of one load, bound by root in this thread's network namespace (or, with
/// `netns`, in that namespace: the thread enters it before binding). `finish` returns what it
/// received (bytes).
pub struct Receiver {
    pub addr: SocketAddr,
    handle: JoinHandle<usize>,
}

impl Receiver {
    pub fn start(ip: IpAddr, load: Load, netns: Option<&str>) -> Receiver {
        let netns = netns.map(|n| format!("/run/netns/{n}"));
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            if let Some(path) = netns {
                let f = std::fs::File::open(&path).unwrap();
                // SAFETY: setns on this thread only (network namespaces are per thread).
                assert_eq!(
                    unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) },
                    0,
                    "setns {path}"
                );
            }
            match load {
                Load::Tcp { .. } => {
                    let l = TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
                    tx.send(l.local_addr().unwrap()).unwrap();
                    let (mut c, _) = l.accept().unwrap();
                    let mut got = 0;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n,
                        }
                    }
                    got
                }
                Load::Udp { count, .. } => {
                    let s = UdpSocket::bind(SocketAddr::new(ip, 0)).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    tx.send(s.local_addr().unwrap()).unwrap();
                    let mut got = 0;
                    let mut buf = vec![0u8; 64 * 1024];
                    for _ in 0..count {
                        match s.recv(&mut buf) {
                            Ok(n) => got += n,
                            Err(_) => break,
                        }
                    }
                    got
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Receiver { addr, handle }
    }

    pub fn finish(self) -> usize {
        self.handle.join().unwrap()
    }
}

/// A test network namespace joined to this one by a veth pair, with IPv4 and IPv6 addresses
/// on both ends (IPv6 without duplicate address detection, so it is usable at once). Removed
/// on drop (deleting the namespace deletes both veth ends).
pub struct TestNetns {
    pub name: String,
    pub host_v4: IpAddr,
    pub peer_v4: IpAddr,
    pub host_v6: IpAddr,
    pub peer_v6: IpAddr,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestNetns {
    /// A namespace and veth pair named after this process and call (interface names stay
    /// within 15 bytes), so parallel tests and runs never share one.
    pub fn create() -> TestNetns {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = (std::process::id() % 6000) * 10 + NEXT.fetch_add(1, Ordering::Relaxed) % 10;
        let name = format!("pcg-net-{n}");
        let (host_if, peer_if) = (format!("pcgh{n}"), format!("pcgn{n}"));
        let (a, b) = ((n / 250) % 250, n % 250);
        let host_v4 = format!("10.{}.{a}.{}", 216, (b % 60) * 4 + 1);
        let peer_v4 = format!("10.{}.{a}.{}", 216, (b % 60) * 4 + 2);
        let host_v6 = format!("fd16:{n:x}::1");
        let peer_v6 = format!("fd16:{n:x}::2");
        let t = TestNetns {
            name: name.clone(),
            host_v4: host_v4.parse().unwrap(),
            peer_v4: peer_v4.parse().unwrap(),
            host_v6: host_v6.parse().unwrap(),
            peer_v6: peer_v6.parse().unwrap(),
        };
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if, "netns", &name,
        ]);
        ip(&["addr", "add", &format!("{host_v4}/30"), "dev", &host_if]);
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("{host_v6}/64"),
            "dev",
            &host_if,
            "nodad",
        ]);
        ip(&["link", "set", &host_if, "up"]);
        let ns = |args: &[&str]| {
            let mut all = vec!["-n", name.as_str()];
            all.extend_from_slice(args);
            ip(&all);
        };
        ns(&["addr", "add", &format!("{peer_v4}/30"), "dev", &peer_if]);
        ns(&[
            "-6",
            "addr",
            "add",
            &format!("{peer_v6}/64"),
            "dev",
            &peer_if,
            "nodad",
        ]);
        ns(&["link", "set", &peer_if, "up"]);
        ns(&["link", "set", "lo", "up"]);
        t
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("cleanup: ip netns del {}: {out:?}", self.name);
        }
    }
}
