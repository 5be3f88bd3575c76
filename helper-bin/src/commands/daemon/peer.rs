//! Who is on the other end of a metrics connection: the uid that owns the peer socket.
//!
//! Unix sockets tell it directly (SO_PEERCRED). For loopback TCP the kernel knows it too: the
//! peer is a local socket, and NETLINK_SOCK_DIAG looked up by its exact 4-tuple answers the uid
//! that created it (the same lookup `ss -e` does). TCP is needed because a stock Prometheus
//! (Debian 12's 2.42, Debian 13's) scrapes HTTP over TCP only: it refuses a `unix:` target.
//! One request and one answer, written as bytes on nix's netlink socket: the netlink crates
//! (netlink-packet-sock-diag and friends) would pull in a dozen crates for it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const INET_DIAG_NOCOOKIE: u32 = !0;
/// struct nlmsghdr: len, type, flags, seq, pid.
const NLMSG_HDR_LEN: usize = 16;
/// struct inet_diag_req_v2: family, protocol, ext, pad, states, then struct inet_diag_sockid
/// (sport, dport, src, dst, interface, cookie: 48 bytes).
const DIAG_REQ_LEN: usize = 56;
/// struct inet_diag_msg: family, state, timer, retrans, the sockid, expires, rqueue, wqueue,
/// uid, inode.
const DIAG_MSG_LEN: usize = 72;
/// Where the uid is in struct inet_diag_msg.
const DIAG_MSG_UID: usize = 4 + 48 + 12;

fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

/// The SOCK_DIAG_BY_FAMILY request for the TCP socket at `peer` connected to `local`, as the
/// kernel reads it (host byte order, except ports and addresses: network byte order).
fn request(family: u8, peer: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(NLMSG_HDR_LEN + DIAG_REQ_LEN);
    out.extend(((NLMSG_HDR_LEN + DIAG_REQ_LEN) as u32).to_ne_bytes());
    out.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    out.extend((libc::NLM_F_REQUEST as u16).to_ne_bytes());
    out.extend(1u32.to_ne_bytes()); // seq
    out.extend(0u32.to_ne_bytes()); // pid: the kernel
    out.extend([family, libc::IPPROTO_TCP as u8, 0, 0]);
    out.extend((!0u32).to_ne_bytes()); // every state
                                       // Seen from the peer socket: its source is our remote end.
    out.extend(peer.port().to_be_bytes());
    out.extend(local.port().to_be_bytes());
    out.extend(addr_bytes(peer.ip()));
    out.extend(addr_bytes(local.ip()));
    out.extend(0u32.to_ne_bytes()); // any interface
    out.extend(INET_DIAG_NOCOOKIE.to_ne_bytes());
    out.extend(INET_DIAG_NOCOOKIE.to_ne_bytes());
    out
}

/// The uid out of the kernel's answer, or the error it answered.
fn answered_uid(answer: &[u8]) -> io::Result<u32> {
    let u16_at = |at: usize| {
        answer
            .get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        answer
            .get(at..at + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let proto = || io::Error::from_raw_os_error(libc::EPROTO);
    match u16_at(4).ok_or_else(proto)? {
        // An error message carries the negative errno right after the header.
        NLMSG_ERROR => {
            let err = u32_at(NLMSG_HDR_LEN).ok_or_else(proto)? as i32;
            Err(io::Error::from_raw_os_error(-err))
        }
        SOCK_DIAG_BY_FAMILY if answer.len() >= NLMSG_HDR_LEN + DIAG_MSG_LEN => {
            u32_at(NLMSG_HDR_LEN + DIAG_MSG_UID).ok_or_else(proto)
        }
        _ => Err(proto()),
    }
}

/// The uid owning the local TCP socket `peer` that is connected to our `local` address.
pub fn tcp_peer_uid(peer: SocketAddr, local: SocketAddr) -> io::Result<u32> {
    use nix::sys::socket::{
        recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
        SockType,
    };
    let family = match (peer.ip(), local.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    };
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )?;
    sendto(
        sock.as_raw_fd(),
        &request(family as u8, peer, local),
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut answer = [0u8; 1024];
    let n = recv(sock.as_raw_fd(), &mut answer, MsgFlags::empty())?;
    answered_uid(&answer[..n])
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

    /// The request is the kernel's struct nlmsghdr + struct inet_diag_req_v2, and the
    /// answer's uid is read where struct inet_diag_msg has it.
    #[test]
    fn request_and_answer_follow_the_kernel_layout() {
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let local: SocketAddr = "127.0.0.2:9464".parse().unwrap();
        let req = request(libc::AF_INET as u8, peer, local);
        assert_eq!(req.len(), 72);
        assert_eq!(&req[..4], &72u32.to_ne_bytes());
        assert_eq!(&req[24..26], &40000u16.to_be_bytes());
        assert_eq!(&req[26..28], &9464u16.to_be_bytes());
        assert_eq!(&req[28..32], &[127, 0, 0, 1]);
        assert_eq!(&req[44..48], &[127, 0, 0, 2]);
        let mut answer = vec![0u8; NLMSG_HDR_LEN + DIAG_MSG_LEN];
        answer[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        answer[80..84].copy_from_slice(&1234u32.to_ne_bytes());
        assert_eq!(answered_uid(&answer).unwrap(), 1234);
        assert!(answered_uid(&answer[..80]).is_err());
        let mut error = vec![0u8; 20];
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(
            answered_uid(&error).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
    }

    /// Our own connection: the peer socket is ours, so its uid is ours.
    #[test]
    fn finds_the_uid_of_a_local_tcp_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(local).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(tcp_peer_uid(peer, local).unwrap(), me);
    }
}
