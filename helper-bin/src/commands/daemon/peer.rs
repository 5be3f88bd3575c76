//! Who is on the other end of a metrics connection: the uid that owns the peer socket.
//!
//! Unix sockets tell it directly (SO_PEERCRED). For loopback TCP the kernel knows it too: the
//! peer is a local socket, and NETLINK_SOCK_DIAG looked up by its exact 4-tuple answers the uid
//! that created it (the same lookup `ss -e` does). TCP is needed because a stock Prometheus
//! (Debian 12's 2.42, Debian 13's) scrapes HTTP over TCP only: it refuses a `unix:` target.
//! The answer is the owner's word only while the owner still holds a connected socket: a peer
//! that closed before we looked (a timewait mini-socket reports uid 0) is refused.
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
/// Where the state, the uid and the socket inode are in struct inet_diag_msg.
const DIAG_MSG_STATE: usize = 1;
const DIAG_MSG_UID: usize = 4 + 48 + 12;
const DIAG_MSG_INODE: usize = DIAG_MSG_UID + 4;

/// TCP states (include/net/tcp_states.h; libc has them for Hurd only).
const TCP_ESTABLISHED: u8 = 1;
const TCP_FIN_WAIT1: u8 = 4;
const TCP_FIN_WAIT2: u8 = 5;

/// The states in which the peer socket's uid is its owner's word: connected, or half-closed
/// after sending its request (shutdown(SHUT_WR): FIN_WAIT1, then FIN_WAIT2 once we acked)
/// while its owner still waits for the answer. Nothing else is a live peer of a connection
/// we have just accepted: CLOSE_WAIT, CLOSING and LAST_ACK need a FIN from us, not sent yet;
/// TIME_WAIT is left once the owner closed; NEW_SYN_RECV is a request mini-socket; LISTEN is
/// what the kernel's lookup falls back to when no socket has this 4-tuple any more (the peer
/// reset and vanished), and names the listener's owner. The state alone is not enough: a
/// timewait mini-socket reports its substate, FIN_WAIT2 when the owner closed before our ack
/// of its FIN came, with uid 0 and inode 0 (inet_twsk_diag_fill), hence the inode check too.
const CONNECTED_STATES: [u8; 3] = [TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2];

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
    // The states we accept. The kernel ignores this mask for a lookup by exact 4-tuple (6.18
    // answered a FIN_WAIT2 timewait to a mask of ESTABLISHED alone), so the answer's state is
    // checked again in answered_uid; a kernel that honours it answers ENOENT, also a refusal.
    let states = CONNECTED_STATES.iter().fold(0u32, |mask, s| mask | 1 << s);
    out.extend(states.to_ne_bytes());
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

/// The uid out of the kernel's answer, or the error it answered; NotConnected when the answer
/// is not about a connected socket its owner still holds (see CONNECTED_STATES).
fn answered_uid(answer: &[u8]) -> io::Result<u32> {
    let u8_at = |at: usize| answer.get(at).copied();
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
            let state = u8_at(NLMSG_HDR_LEN + DIAG_MSG_STATE).ok_or_else(proto)?;
            let uid = u32_at(NLMSG_HDR_LEN + DIAG_MSG_UID).ok_or_else(proto)?;
            let inode = u32_at(NLMSG_HDR_LEN + DIAG_MSG_INODE).ok_or_else(proto)?;
            // Inode 0: no open file holds the socket any more (its owner closed it, or it is
            // a mini-socket), so its uid says nothing about who is asking; for a timewait
            // it is a plain 0 that would read as root.
            if CONNECTED_STATES.contains(&state) && inode != 0 {
                Ok(uid)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("peer socket in TCP state {state}, inode {inode}: no owner to ask"),
                ))
            }
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
        let states = u32::from_ne_bytes([req[20], req[21], req[22], req[23]]);
        assert_eq!(states, 1 << 1 | 1 << 4 | 1 << 5);
        let answer = answer_for(TCP_ESTABLISHED, 1234, 99);
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

    /// A diag answer for a peer socket in `state`, owned by `uid`, with socket inode `inode`.
    fn answer_for(state: u8, uid: u32, inode: u32) -> Vec<u8> {
        let mut answer = vec![0u8; NLMSG_HDR_LEN + DIAG_MSG_LEN];
        answer[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        answer[NLMSG_HDR_LEN] = libc::AF_INET as u8;
        answer[NLMSG_HDR_LEN + 1] = state;
        answer[80..84].copy_from_slice(&uid.to_ne_bytes());
        answer[84..88].copy_from_slice(&inode.to_ne_bytes());
        answer
    }

    /// A customer that sends its request and closes at once leaves a timewait mini-socket,
    /// which the kernel reports with uid 0 and inode 0: that is nobody's word, never root's.
    #[test]
    fn a_timewait_or_unowned_peer_is_refused_never_root() {
        const TIME_WAIT: u8 = 6;
        const FIN_WAIT2: u8 = 5;
        const LISTEN: u8 = 10;
        const NEW_SYN_RECV: u8 = 12;
        let refused = |a: &[u8]| answered_uid(a).map_err(|e| e.kind());
        let not_connected = Err(io::ErrorKind::NotConnected);
        assert_eq!(refused(&answer_for(TIME_WAIT, 0, 0)), not_connected);
        // A FIN_WAIT2 timewait (the customer closed before the daemon answered) reports its
        // substate, so the state alone does not tell it from a half-closed live socket.
        assert_eq!(refused(&answer_for(FIN_WAIT2, 0, 0)), not_connected);
        // A socket its owner has closed, even a full one that still knows its uid.
        assert_eq!(refused(&answer_for(FIN_WAIT2, 1000, 0)), not_connected);
        assert_eq!(refused(&answer_for(TIME_WAIT, 0, 777)), not_connected);
        assert_eq!(refused(&answer_for(LISTEN, 0, 777)), not_connected);
        assert_eq!(refused(&answer_for(NEW_SYN_RECV, 0, 0)), not_connected);
        assert_eq!(answered_uid(&answer_for(1, 1000, 777)).unwrap(), 1000);
        assert_eq!(answered_uid(&answer_for(1, 0, 777)).unwrap(), 0);
        // Half-closed after its request (shutdown(SHUT_WR)) and still holding the socket.
        assert_eq!(
            answered_uid(&answer_for(FIN_WAIT2, 1000, 777)).unwrap(),
            1000
        );
        assert_eq!(answered_uid(&answer_for(4, 1000, 777)).unwrap(), 1000);
    }

    /// The same on the real kernel: once the client has closed (an orphan, then a timewait
    /// on loopback), its socket has no inode and the lookup refuses it, where it used to
    /// answer uid 0 (the timewait) or the closed socket's old owner.
    #[test]
    fn a_local_tcp_peer_that_closed_is_refused() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(local).unwrap();
        client.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        drop(client);
        let (_server, peer) = listener.accept().unwrap();
        let answer = tcp_peer_uid(peer, local);
        assert_eq!(
            answer.as_ref().map_err(io::Error::kind),
            Err(io::ErrorKind::NotConnected),
            "{answer:?}"
        );
    }

    /// A client that half-closes after its request still holds its socket: its uid counts.
    #[test]
    fn a_local_tcp_peer_that_half_closed_is_still_its_owner() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(local).unwrap();
        client.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(tcp_peer_uid(peer, local).unwrap(), me);
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
