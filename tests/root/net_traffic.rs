//! Per-customer traffic counters (bpf/net_traffic.bpf.c) on the real kernel: a confined user
//! (a real unprivileged process in a sub-cgroup of users/<user>) sends known payloads over TCP
//! and UDP, IPv4 and IPv6, over loopback and through a veth pair into a test network
//! namespace, to receivers run by root outside the tree; the user's counters must match the
//! payload plus the headers, in the right scope, and another user's must not move.
//!
//! Expected values (bytes are IP packets as the hooks see them: IP header H = 20 for IPv4,
//! 40 for IPv6, transport header, payload; no link layer):
//!   UDP, n datagrams of s bytes:  transmit_bytes = n * (s + 8 + H), transmit_packets = n,
//!                                 nothing received (the receiver does not answer).
//!   TCP, N payload bytes, R of them retransmitted (TCP_INFO tcpi_bytes_retrans of the
//!   sender's socket: retransmissions are real packets and are counted; a loaded machine
//!   drops on loopback too):
//!                                 N + R + 2 * (H + 20) <= transmit_bytes  (SYN + >= 1 data skb)
//!                                 transmit_bytes <= N + R + transmit_packets * (H + 60)
//!                                 (every packet carries at most a 60-byte TCP header; a GSO
//!                                 skb carries one header set for all its counted segments,
//!                                 so it stays below this bound too), transmit_packets >= 2;
//!                                 received: only SYN-ACK, ACKs and FIN, no payload:
//!                                 receive_packets * (H + 20) <= receive_bytes
//!                                 <= receive_packets * (H + 60), receive_packets >= 2.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cgroup_core::private_ip::traffic::read_user_traffic;
use cgroup_core::private_ip::{Flow, Traffic};
use pam_cgroup_tests::support::pip_tree::{port_block, PipTree};
use pam_cgroup_tests::support::probe::Identity;
use pam_cgroup_tests::support::traffic::{send_as, Load, Receiver, TestNetns};
use pam_cgroup_tests::support::{require_root, TestUser};

const TCP_TOTAL: usize = 3 * 1024 * 1024 + 17;
const UDP_COUNT: usize = 50;
const UDP_SIZE: usize = 1000;

struct Fixture {
    a: TestUser,
    b: TestUser,
    t: PipTree,
}

impl Fixture {
    fn new() -> Fixture {
        require_root();
        let t = PipTree::new(port_block());
        t.install();
        let f = Fixture {
            a: TestUser::new("net-a-"),
            b: TestUser::new("net-b-"),
            t,
        };
        f.t.cgroup(&format!("users/{}/session-1", f.b.name));
        f
    }

    /// A's process runs two levels below its fence: attribution walks up to users/<a>.
    fn a_cgroup(&self) -> std::path::PathBuf {
        self.t.cgroup(&format!("users/{}/svc/worker", self.a.name))
    }

    fn counters(&self, user: &TestUser) -> Traffic {
        read_user_traffic(&self.t.core_tree(), user.uid)
            .unwrap()
            .expect("the counters map is pinned after install")
    }

    /// Sends `load` from A to a root receiver at `ip` (in `netns` if given); returns A's
    /// counters' change and the bytes TCP retransmitted, after checking the receiver got the
    /// payload and B's counters did not move.
    fn transfer(&self, ip: IpAddr, load: Load, netns: Option<&str>) -> (Traffic, u64) {
        let cgroup = self.a_cgroup();
        let before_a = self.counters(&self.a);
        let before_b = self.counters(&self.b);
        let rx = Receiver::start(ip, load, netns);
        let who = Identity {
            uid: self.a.uid,
            gid: self.a.gid,
        };
        let retrans = send_as(&cgroup, who, rx.addr, load).unwrap();
        let got = rx.finish();
        let want = match load {
            Load::Tcp { total } => total,
            Load::Udp { count, size } => count * size,
        };
        assert_eq!(
            got, want,
            "the receiver got the whole payload ({load:?} to {ip})"
        );
        assert_eq!(self.counters(&self.b), before_b, "B's counters moved");
        (minus(&self.counters(&self.a), &before_a), retrans)
    }
}

fn minus(a: &Traffic, b: &Traffic) -> Traffic {
    let f = |x: &Flow, y: &Flow| Flow {
        receive_bytes: x.receive_bytes - y.receive_bytes,
        receive_packets: x.receive_packets - y.receive_packets,
        transmit_bytes: x.transmit_bytes - y.transmit_bytes,
        transmit_packets: x.transmit_packets - y.transmit_packets,
    };
    Traffic {
        loopback: f(&a.loopback, &b.loopback),
        external: f(&a.external, &b.external),
    }
}

fn ip_header(ip: IpAddr) -> u64 {
    if ip.is_ipv4() {
        20
    } else {
        40
    }
}

/// The scope the traffic went to, after checking the other one did not move.
fn in_scope(d: &Traffic, loopback: bool) -> Flow {
    let (used, other) = if loopback {
        (d.loopback, d.external)
    } else {
        (d.external, d.loopback)
    };
    assert_eq!(
        other,
        Flow::default(),
        "traffic counted in the wrong scope: {d:?}"
    );
    used
}

fn check_udp(f: &Fixture, ip: IpAddr, netns: Option<&str>) {
    let (d, _) = f.transfer(
        ip,
        Load::Udp {
            count: UDP_COUNT,
            size: UDP_SIZE,
        },
        netns,
    );
    let flow = in_scope(&d, netns.is_none());
    let n = UDP_COUNT as u64;
    let want = Flow {
        transmit_bytes: n * (UDP_SIZE as u64 + 8 + ip_header(ip)),
        transmit_packets: n,
        receive_bytes: 0,
        receive_packets: 0,
    };
    assert_eq!(flow, want, "UDP to {ip}");
    eprintln!("UDP {ip}: {flow:?}");
}

fn check_tcp(f: &Fixture, ip: IpAddr, netns: Option<&str>) {
    let (d, retrans) = f.transfer(ip, Load::Tcp { total: TCP_TOTAL }, netns);
    let flow = in_scope(&d, netns.is_none());
    let h = ip_header(ip);
    let n = TCP_TOTAL as u64 + retrans;
    let (tb, tp) = (flow.transmit_bytes, flow.transmit_packets);
    let (rb, rp) = (flow.receive_bytes, flow.receive_packets);
    assert!(tp >= 2, "TCP to {ip}: {flow:?}");
    assert!(n + 2 * (h + 20) <= tb, "TCP to {ip}: {flow:?}");
    assert!(tb <= n + tp * (h + 60), "TCP to {ip}: {flow:?}");
    assert!(rp >= 2, "TCP to {ip}: {flow:?}");
    assert!(
        rp * (h + 20) <= rb && rb <= rp * (h + 60),
        "TCP to {ip}: {flow:?}"
    );
    eprintln!("TCP {ip}: {flow:?} (payload {TCP_TOTAL}, retransmitted {retrans})");
}

#[test]
fn loopback_tcp_and_udp_v4_v6_are_counted_for_the_sender_only() {
    let f = Fixture::new();
    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        check_udp(&f, ip, None);
        check_tcp(&f, ip, None);
    }
}

/// What the library reads is what `cgroupctl stats --json`, `--prometheus` and `show --json`
/// report, by user name.
#[test]
fn cgroupctl_reports_the_counters() {
    let f = Fixture::new();
    check_udp(&f, IpAddr::V4(Ipv4Addr::LOCALHOST), None);
    let c = f.counters(&f.a);
    let json = |args: &[&str]| -> serde_json::Value {
        let out = f.t.cgroupctl(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let stats = json(&["stats", "--json", "--user", &f.a.name]);
    let net = &stats[0]["network"];
    assert_eq!(
        net["loopback"]["transmit_bytes"], c.loopback.transmit_bytes,
        "{stats}"
    );
    assert_eq!(
        net["loopback"]["transmit_packets"],
        c.loopback.transmit_packets
    );
    assert_eq!(net["external"]["receive_bytes"], 0);
    let show = json(&["show", "--json", &f.a.name]);
    assert_eq!(show["stats"]["network"], *net, "{show}");
    let b = json(&["stats", "--json", "--user", &f.b.name]);
    assert_eq!(b[0]["network"]["loopback"]["transmit_bytes"], 0, "{b}");
    let out = f.t.cgroupctl(&["stats", "--prometheus"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = format!(
        "pam_cgroup_network_transmit_bytes_total{{user=\"{}\",scope=\"loopback\"}} {}\n",
        f.a.name, c.loopback.transmit_bytes
    );
    assert!(text.contains(&line), "{line} not in:\n{text}");
    assert!(text.contains("# TYPE pam_cgroup_network_receive_packets_total counter\n"));
}

#[test]
fn veth_into_a_netns_is_external_traffic() {
    let f = Fixture::new();
    let ns = TestNetns::create();
    for ip in [ns.peer_v4, ns.peer_v6] {
        check_udp(&f, ip, Some(&ns.name));
        check_tcp(&f, ip, Some(&ns.name));
    }
}

/// Keyed by uid: removing users/<a> and making it again (a new cgroup id) continues the
/// series instead of restarting it from 0.
#[test]
fn counters_continue_when_the_user_cgroup_is_made_again() {
    let f = Fixture::new();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    check_udp(&f, ip, None);
    let first = f.counters(&f.a);
    let fence = f.t.root().join("users").join(&f.a.name);
    let old_id = cgroup_core::private_ip::cgroup_id(&fence).unwrap();
    for rel in ["svc/worker", "svc", ""] {
        std::fs::remove_dir(fence.join(rel)).unwrap();
    }
    assert_eq!(
        f.counters(&f.a),
        first,
        "removing the cgroup must not reset the counters"
    );
    check_udp(&f, ip, None);
    assert_ne!(cgroup_core::private_ip::cgroup_id(&fence).unwrap(), old_id);
    let second = f.counters(&f.a);
    let n = UDP_COUNT as u64;
    assert_eq!(
        second.loopback.transmit_bytes,
        2 * n * (UDP_SIZE as u64 + 8 + 20),
        "{second:?}"
    );
}

/// A host upgraded from 0.2, whose pinned fence map has 8-byte entries (no uid): init
/// replaces it by one with uids, and the counters then work.
#[test]
fn init_replaces_a_fence_map_without_uids() {
    use cgroup_core::private_ip::{ensure_bpffs, DEFAULT_BPFFS, FENCE_MAP_PIN};
    use libbpf_rs::libbpf_sys;
    use libbpf_rs::{MapCore, MapHandle, MapType};
    require_root();
    let t = PipTree::new(port_block());
    t.core_tree().ensure_base().unwrap();
    ensure_bpffs(std::path::Path::new(DEFAULT_BPFFS)).unwrap();
    std::fs::create_dir_all(&t.pins).unwrap();
    let opts = libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as libbpf_sys::size_t,
        map_flags: libbpf_sys::BPF_F_NO_PREALLOC,
        ..Default::default()
    };
    let mut old =
        MapHandle::create(MapType::Hash, Some("pcg_fences"), 8, 8, 1 << 20, &opts).unwrap();
    old.pin(t.pins.join(FENCE_MAP_PIN)).unwrap();
    let report = t.install();
    assert!(report.fence_map_replaced, "{report:?}");
    let now = MapHandle::from_pinned_path(t.pins.join(FENCE_MAP_PIN)).unwrap();
    assert_eq!(now.value_size(), 12);
    let a = TestUser::new("net-u-");
    let cg = t.cgroup(&format!("users/{}/s", a.name));
    let rx = Receiver::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        Load::Udp {
            count: 3,
            size: 100,
        },
        None,
    );
    let who = Identity {
        uid: a.uid,
        gid: a.gid,
    };
    send_as(
        &cg,
        who,
        rx.addr,
        Load::Udp {
            count: 3,
            size: 100,
        },
    )
    .unwrap();
    rx.finish();
    let c = read_user_traffic(&t.core_tree(), a.uid).unwrap().unwrap();
    assert_eq!(c.loopback.transmit_bytes, 3 * (100 + 8 + 20), "{c:?}");
}
