//! Who is on the other end of a metrics connection: the uid that owns the peer socket.
//!
//! Unix sockets tell it directly (SO_PEERCRED). For loopback TCP the kernel knows it too: the
//! peer is a local socket, and NETLINK_SOCK_DIAG looked up by its exact 4-tuple answers the uid
//! that created it (the same lookup `ss -e` does). Hand-written on libc: the netlink crates
//! (netlink-packet-sock-diag and friends) would pull in a dozen crates for one request/answer.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const INET_DIAG_NOCOOKIE: u32 = !0;

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct NlMsgHdr {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

/// struct inet_diag_sockid: ports and addresses in network byte order.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    interface: u32,
    cookie: [u32; 2],
}

/// struct inet_diag_req_v2
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct DiagReq {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: SockId,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Request {
    hdr: NlMsgHdr,
    req: DiagReq,
}

/// The head of struct inet_diag_msg, up to the uid.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct DiagMsg {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: SockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}

fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

/// The uid owning the local TCP socket `peer` that is connected to our `local` address.
pub fn tcp_peer_uid(peer: SocketAddr, local: SocketAddr) -> io::Result<u32> {
    let family = match (peer.ip(), local.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    };
    // SAFETY: plain syscall; a non-negative result is a new fd we own.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd was just created and is owned here only.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let request = Request {
        hdr: NlMsgHdr {
            len: size_of::<Request>() as u32,
            kind: SOCK_DIAG_BY_FAMILY,
            flags: libc::NLM_F_REQUEST as u16,
            seq: 1,
            pid: 0,
        },
        req: DiagReq {
            family: family as u8,
            protocol: libc::IPPROTO_TCP as u8,
            states: !0,
            // Seen from the peer socket: its source is our remote end.
            id: SockId {
                sport: peer.port().to_be_bytes(),
                dport: local.port().to_be_bytes(),
                src: addr_bytes(peer.ip()),
                dst: addr_bytes(local.ip()),
                interface: 0,
                cookie: [INET_DIAG_NOCOOKIE; 2],
            },
            ..DiagReq::default()
        },
    };
    // SAFETY: all-zero is a valid sockaddr_nl (pid 0: the kernel).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: request and kernel are valid for their sizes.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            (&request as *const Request).cast(),
            size_of::<Request>(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u64; 128];
    // SAFETY: buf is writable for its size in bytes.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            size_of::<[u64; 128]>(),
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if n < size_of::<NlMsgHdr>() {
        return Err(io::Error::from_raw_os_error(libc::EPROTO));
    }
    // SAFETY: buf holds at least one header; read_unaligned copies plain data.
    let hdr: NlMsgHdr = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
    if hdr.kind == NLMSG_ERROR {
        // SAFETY: an error message carries an i32 right after the header.
        let err: i32 = unsafe {
            std::ptr::read_unaligned(buf.as_ptr().cast::<u8>().add(size_of::<NlMsgHdr>()).cast())
        };
        return Err(io::Error::from_raw_os_error(-err));
    }
    if hdr.kind != SOCK_DIAG_BY_FAMILY || n < size_of::<NlMsgHdr>() + size_of::<DiagMsg>() {
        return Err(io::Error::from_raw_os_error(libc::EPROTO));
    }
    // SAFETY: the length was checked; DiagMsg is plain data.
    let msg: DiagMsg = unsafe {
        std::ptr::read_unaligned(buf.as_ptr().cast::<u8>().add(size_of::<NlMsgHdr>()).cast())
    };
    Ok(msg.uid)
}

/// The uid of the process at the other end of a unix socket (SO_PEERCRED).
pub fn unix_peer_uid(stream: &std::os::unix::net::UnixStream) -> io::Result<u32> {
    nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map(|c| c.uid())
        .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(size_of::<NlMsgHdr>(), 16);
        assert_eq!(size_of::<SockId>(), 48);
        assert_eq!(size_of::<DiagReq>(), 56);
        assert_eq!(size_of::<DiagMsg>(), 72);
    }

    /// Our own connection: the peer socket is ours, so its uid is ours.
    #[test]
    fn finds_the_uid_of_a_local_tcp_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(local).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // SAFETY: plain getter.
        let me = unsafe { libc::geteuid() };
        assert_eq!(tcp_peer_uid(peer, local).unwrap(), me);
    }
}
