//! Private IPs on the real kernel: the six cgroup BPF programs attached at a test tree's root,
//! probed by forked children running as confined users in cgroups below it, plus cgroupctl
//! init/deinit and the PAM-side check. Each test has its own tree, pins, users and ports, and
//! removes them on drop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cgroup_core::private_ip::{
    attached_programs, attached_programs_of, empty_hooks, marked_attached, private_address,
    programs_attached, query_empty_hooks, HOOKS, NET_HOOKS, TRAFFIC_MAP_PIN,
};
use pam_cgroup_tests::support::pip_tree::{port_block, spare_port, PipTree, TEST_MIN_GID};
use pam_cgroup_tests::support::probe::{run_as, Identity, Op, Outcome, Proto, Server};
use pam_cgroup_tests::support::{require_root, wait_until, TestUser};

const EACCES: Outcome = Err(libc::EACCES);

fn who(user: &TestUser) -> Identity {
    Identity {
        uid: user.uid,
        gid: user.gid,
    }
}

/// A process below min_gid that is not root (the platform's reverse proxy, say).
const LOW: Identity = Identity {
    uid: 1500,
    gid: 1500,
};

fn ip_of(user: &TestUser) -> Ipv4Addr {
    private_address(user.gid, TEST_MIN_GID).unwrap()
}

fn v4(ip: Ipv4Addr, port: u16) -> String {
    format!("{ip}:{port}")
}

fn mapped(ip: Ipv4Addr, port: u16) -> String {
    format!("[::ffff:{ip}]:{port}")
}

fn bound(outcome: &Outcome) -> SocketAddr {
    match outcome {
        Ok(Some(a)) => *a,
        other => panic!("expected a bound address, got {other:?}"),
    }
}

/// An installed tree with two confined users, A's cgroup three levels below the root.
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
        Fixture {
            a: TestUser::new("pip-a-"),
            b: TestUser::new("pip-b-"),
            t,
        }
    }

    fn port(&self, i: u16) -> u16 {
        self.t.ports.start() + i
    }

    /// users/<a>/svc/worker: three levels below the tree root.
    fn a_cgroup(&self) -> std::path::PathBuf {
        self.t.cgroup(&format!("users/{}/svc/worker", self.a.name))
    }

    fn b_cgroup(&self) -> std::path::PathBuf {
        self.t.cgroup(&format!("users/{}/session-1", self.b.name))
    }

    /// Where unconfined probes run (still under the root, so the programs do run for them).
    fn admin_cgroup(&self) -> std::path::PathBuf {
        self.t.cgroup("unconfined/admin")
    }
}

#[test]
fn tcp_and_udp_bind_of_any_is_rewritten_to_the_private_address() {
    let f = Fixture::new();
    let p = f.port(0);
    let out = run_as(
        &f.a_cgroup(),
        who(&f.a),
        &[
            Op::bind(&format!("0.0.0.0:{p}"), Proto::Tcp),
            Op::bind(&format!("0.0.0.0:{p}"), Proto::Udp),
        ],
    );
    let expected: SocketAddr = v4(ip_of(&f.a), p).parse().unwrap();
    assert_eq!(bound(&out[0]), expected, "TCP");
    assert_eq!(bound(&out[1]), expected, "UDP");
}

#[test]
fn port_out_of_range_is_untouched() {
    let f = Fixture::new();
    let q = spare_port();
    let out = run_as(
        &f.a_cgroup(),
        who(&f.a),
        &[Op::bind(&format!("0.0.0.0:{q}"), Proto::Tcp)],
    );
    assert_eq!(bound(&out[0]), format!("0.0.0.0:{q}").parse().unwrap());
}

#[test]
fn own_address_is_allowed_for_bind_and_connect() {
    let f = Fixture::new();
    let own = ip_of(&f.a);
    let server = Server::start(
        &f.a_cgroup(),
        who(&f.a),
        Op::bind(&format!("0.0.0.0:{}", f.port(1)), Proto::Tcp),
    );
    assert_eq!(server.addr(), v4(own, f.port(1)).parse().unwrap());
    let out = run_as(
        &f.a_cgroup(),
        who(&f.a),
        &[
            Op::bind(&v4(own, f.port(2)), Proto::Tcp),
            Op::bind(&v4(own, f.port(2)), Proto::Udp),
            Op::connect(&v4(own, f.port(1))),
            Op::connect(&mapped(own, f.port(1))),
            Op::send_to(&v4(own, f.port(3))),
        ],
    );
    assert_eq!(bound(&out[0]), v4(own, f.port(2)).parse().unwrap());
    assert_eq!(bound(&out[1]), v4(own, f.port(2)).parse().unwrap());
    assert_eq!(out[2], Ok(None), "connect to own service");
    assert_eq!(out[3], Ok(None), "connect to own service, v4-mapped");
    assert_eq!(out[4], Ok(None), "sendto own address");
}

#[test]
fn another_users_address_is_refused_with_eacces() {
    let f = Fixture::new();
    let other = ip_of(&f.b);
    let q = spare_port();
    // B really serves there, so a refusal is the policy and not an empty port.
    let _server = Server::start(
        &f.b_cgroup(),
        who(&f.b),
        Op::bind(&format!("0.0.0.0:{}", f.port(4)), Proto::Tcp),
    );
    let out = run_as(
        &f.a_cgroup(),
        who(&f.a),
        &[
            Op::bind(&v4(other, f.port(5)), Proto::Tcp),
            Op::bind(&v4(other, q), Proto::Udp),
            Op::connect(&v4(other, f.port(4))),
            Op::send_to(&v4(other, f.port(4))),
        ],
    );
    assert_eq!(
        out,
        vec![EACCES; 4],
        "bind tcp, bind udp (out of range), connect, sendto"
    );
}

#[test]
fn v4_mapped_address_of_another_user_is_refused() {
    let f = Fixture::new();
    let other = ip_of(&f.b);
    let _server = Server::start(
        &f.b_cgroup(),
        who(&f.b),
        Op::bind(&format!("0.0.0.0:{}", f.port(6)), Proto::Tcp),
    );
    let out = run_as(
        &f.a_cgroup(),
        who(&f.a),
        &[
            Op::bind(&mapped(other, f.port(7)), Proto::Tcp),
            Op::bind(&mapped(other, f.port(7)), Proto::Udp),
            Op::connect(&mapped(other, f.port(6))),
            Op::send_to(&mapped(other, f.port(6))),
        ],
    );
    assert_eq!(
        out,
        vec![EACCES; 4],
        "bind6 tcp, bind6 udp, connect6, sendto6"
    );
}

#[test]
fn root_and_low_gids_are_untouched_and_reach_users_services() {
    let f = Fixture::new();
    let b_ip = ip_of(&f.b);
    let server = Server::start(
        &f.b_cgroup(),
        who(&f.b),
        Op::bind(&format!("0.0.0.0:{}", f.port(8)), Proto::Tcp),
    );
    assert_eq!(server.addr(), v4(b_ip, f.port(8)).parse().unwrap());
    for id in [Identity::ROOT, LOW] {
        let p = if id == LOW { f.port(9) } else { f.port(10) };
        let out = run_as(
            &f.admin_cgroup(),
            id,
            &[
                Op::connect(&v4(b_ip, f.port(8))),
                Op::connect(&mapped(b_ip, f.port(8))),
                Op::send_to(&v4(b_ip, f.port(8))),
                Op::bind(&format!("0.0.0.0:{p}"), Proto::Tcp),
                Op::bind(&format!("[::]:{p}"), Proto::Tcp),
                Op::bind(&format!("[::1]:{p}"), Proto::Tcp),
                Op::bind(&v4(b_ip, f.port(11)), Proto::Tcp),
            ],
        );
        assert_eq!(out[0], Ok(None), "{id:?} connects to B's service");
        assert_eq!(
            out[1],
            Ok(None),
            "{id:?} connects to B's service (v4-mapped)"
        );
        assert_eq!(out[2], Ok(None), "{id:?} sends to B's address");
        assert_eq!(bound(&out[3]), format!("0.0.0.0:{p}").parse().unwrap());
        assert_eq!(bound(&out[4]), format!("[::]:{p}").parse().unwrap());
        assert_eq!(bound(&out[5]), format!("[::1]:{p}").parse().unwrap());
        assert_eq!(bound(&out[6]), v4(b_ip, f.port(11)).parse().unwrap());
    }
}

#[test]
fn dual_stack_any_never_listens_on_the_wildcard() {
    let f = Fixture::new();
    let own = ip_of(&f.a);
    let p = f.port(12);
    let server = Server::start(
        &f.a_cgroup(),
        who(&f.a),
        Op::bind(&format!("[::]:{p}"), Proto::Tcp),
    );
    assert_eq!(server.addr(), mapped(own, p).parse().unwrap());
    let udp = run_as(
        &f.a_cgroup(),
        who(&f.a),
        &[
            Op::bind(&format!("[::]:{}", f.port(13)), Proto::Udp),
            Op::bind(&format!("[::ffff:0.0.0.0]:{}", f.port(13)), Proto::Tcp),
        ],
    );
    assert_eq!(bound(&udp[0]), mapped(own, f.port(13)).parse().unwrap());
    assert_eq!(bound(&udp[1]), mapped(own, f.port(13)).parse().unwrap());
    // Root finds it only on the private address: not on 127.0.0.1, [::1] or the host's v4.
    let out = run_as(
        &f.admin_cgroup(),
        Identity::ROOT,
        &[
            Op::connect(&v4(own, p)),
            Op::connect(&format!("127.0.0.1:{p}")),
            Op::connect(&format!("[::1]:{p}")),
        ],
    );
    assert_eq!(out[0], Ok(None));
    assert_eq!(out[1], Err(libc::ECONNREFUSED));
    assert_eq!(out[2], Err(libc::ECONNREFUSED));
}

#[test]
fn v6only_any_and_v6_loopback_are_refused_in_range() {
    let f = Fixture::new();
    let p = f.port(14);
    let q = spare_port();
    let out = run_as(
        &f.a_cgroup(),
        who(&f.a),
        &[
            Op::bind_v6only(&format!("[::]:{p}"), Proto::Tcp),
            Op::bind_v6only(&format!("[::]:{p}"), Proto::Udp),
            Op::bind(&format!("[::1]:{p}"), Proto::Tcp),
            Op::bind_v6only(&format!("[::1]:{p}"), Proto::Udp),
            Op::bind(&format!("[::1]:{q}"), Proto::Tcp),
        ],
    );
    assert_eq!(&out[..4], &[EACCES; 4][..]);
    assert_eq!(
        bound(&out[4]),
        format!("[::1]:{q}").parse().unwrap(),
        "out of range"
    );
}

#[test]
fn rules_hold_deep_below_the_root() {
    let f = Fixture::new();
    let deep = f.t.cgroup(&format!("users/{}/a/b/c", f.a.name));
    let out = run_as(
        &deep,
        who(&f.a),
        &[
            Op::bind(&format!("0.0.0.0:{}", f.port(15)), Proto::Tcp),
            Op::connect(&v4(ip_of(&f.b), f.port(15))),
        ],
    );
    assert_eq!(bound(&out[0]), v4(ip_of(&f.a), f.port(15)).parse().unwrap());
    assert_eq!(out[1], EACCES);
}

// ---- cgroupctl init / deinit and the PAM-side check ----------------------------------

#[derive(serde::Deserialize)]
struct InitJson {
    installed: Option<Installed>,
    removed: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct Installed {
    programs: Vec<ProgramJson>,
}

#[derive(serde::Deserialize)]
struct ProgramJson {
    program: String,
    action: String,
    prog_id: u32,
}

fn init_json(t: &PipTree) -> InitJson {
    let out = t.cgroupctl(&["init", "--json"]);
    assert!(
        out.status.success(),
        "cgroupctl init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The private-IP programs init reported (the traffic counters' two are checked apart:
/// their code does not depend on `[private_ip]`, so a config change leaves them unchanged).
fn installed(j: &InitJson) -> Vec<&ProgramJson> {
    j.installed
        .as_ref()
        .expect("programs installed")
        .programs
        .iter()
        .filter(|p| HOOKS.iter().any(|h| h.prog_name == p.program))
        .collect()
}

fn installed_net(j: &InitJson) -> Vec<&ProgramJson> {
    j.installed
        .as_ref()
        .expect("programs installed")
        .programs
        .iter()
        .filter(|p| NET_HOOKS.iter().any(|h| h.prog_name == p.program))
        .collect()
}

fn our_ids(root: &Path) -> Vec<u32> {
    attached_programs(root)
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a.ours.len(), 1, "{}: {:?}", a.hook.prog_name, a);
            a.ours[0]
        })
        .collect()
}

#[test]
fn init_twice_changes_nothing() {
    require_root();
    let t = PipTree::new(port_block());
    assert!(!programs_attached(t.root()).unwrap(), "no tree yet");
    let first = init_json(&t);
    assert!(installed(&first).iter().all(|p| p.action == "attached"));
    assert!(t.root().join("users").is_dir());
    let ids = our_ids(t.root());
    let reported: Vec<u32> = installed(&first).iter().map(|p| p.prog_id).collect();
    assert_eq!(reported, ids, "init reports what is attached");
    assert_eq!(installed_net(&first).len(), NET_HOOKS.len());
    assert!(installed_net(&first).iter().all(|p| p.action == "attached"));
    let second = init_json(&t);
    for p in installed(&second).into_iter().chain(installed_net(&second)) {
        assert_eq!(p.action, "unchanged", "{}", p.program);
    }
    assert_eq!(our_ids(t.root()), ids);
    assert!(programs_attached(t.root()).unwrap());
    for hook in HOOKS.iter().chain(&NET_HOOKS) {
        assert!(t.pins.join(hook.pin_name).exists(), "pin {}", hook.pin_name);
    }
    assert!(t.pins.join(TRAFFIC_MAP_PIN).exists());
}

/// (link id, program id, pin name) of each private-IP hook's pinned link.
fn link_ids(t: &PipTree) -> Vec<(u32, u32, &'static str)> {
    HOOKS
        .iter()
        .map(|hook| {
            let pin = t.pins.join(hook.pin_name);
            let link = libbpf_rs::Link::open(&pin).unwrap_or_else(|e| panic!("{pin:?}: {e}"));
            let info = link.info().unwrap();
            (info.id, info.prog_id, hook.pin_name)
        })
        .collect()
}

/// Each hook's pinned link is the same link as in `before`, now running another program: what
/// BPF_LINK_UPDATE does, and what a detach and a new attach (a new link) would not.
fn assert_links_kept_with_new_programs(t: &PipTree, before: &[(u32, u32, &'static str)]) {
    for (old, new) in before.iter().zip(&link_ids(t)) {
        assert_eq!(old.0, new.0, "{}: the same link", old.2);
        assert_ne!(old.1, new.1, "{}: the link runs a new program", old.2);
    }
}

#[test]
fn config_change_swaps_programs_in_place() {
    require_root();
    let t = PipTree::new(port_block());
    let user = TestUser::new("pip-s-");
    init_json(&t);
    let before = our_ids(t.root());
    let links_before = link_ids(&t);
    // A watcher queries the root as fast as it can while init swaps the programs: every hook
    // must have one of our programs attached at every instant it looks.
    let stop = Arc::new(AtomicBool::new(false));
    let looks = Arc::new(AtomicU32::new(0));
    let watcher = {
        let (stop, looks, root) = (stop.clone(), looks.clone(), t.root().to_path_buf());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for a in attached_programs(&root).unwrap() {
                    assert!(
                        !a.ours.is_empty(),
                        "{} had nothing attached",
                        a.hook.prog_name
                    );
                }
                looks.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Looking before the swap, and through to a whole look after it.
    let looked = |n: u32| looks.load(Ordering::Relaxed) >= n;
    wait_until("the watcher's first look", Duration::from_secs(10), || {
        looked(1)
    });
    let new_ports = *t.ports.start()..=*t.ports.end() - 20;
    t.write_config(true, &new_ports);
    let swapped = init_json(&t);
    let after_swap = looks.load(Ordering::Relaxed) + 2;
    wait_until("a look after the swap", Duration::from_secs(10), || {
        looked(after_swap) || watcher.is_finished()
    });
    stop.store(true, Ordering::Relaxed);
    watcher
        .join()
        .expect("the watcher saw a hook with nothing attached");
    for p in installed(&swapped) {
        assert_eq!(p.action, "updated", "{}", p.program);
    }
    let after = our_ids(t.root());
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(old, new, "program IDs change");
    }
    // What rules out a window however short: the links were updated in place.
    assert_links_kept_with_new_programs(&t, &links_before);
    // The new range is in force: a port the old range covered is now left alone.
    let dropped_port = *t.ports.end();
    let out = run_as(
        &t.cgroup(&format!("users/{}/s", user.name)),
        who(&user),
        &[
            Op::bind(&format!("0.0.0.0:{dropped_port}"), Proto::Tcp),
            Op::bind(&format!("0.0.0.0:{}", new_ports.start()), Proto::Tcp),
        ],
    );
    assert_eq!(
        bound(&out[0]),
        format!("0.0.0.0:{dropped_port}").parse().unwrap()
    );
    assert_eq!(bound(&out[1]).ip(), IpAddr::V4(ip_of(&user)));
}

#[test]
fn deinit_leaves_no_program_and_no_pin_and_plain_behaviour() {
    require_root();
    let t = PipTree::new(port_block());
    let user = TestUser::new("pip-d-");
    init_json(&t);
    let cg = t.cgroup(&format!("users/{}/s", user.name));
    assert!(programs_attached(t.root()).unwrap());
    let out = t.cgroupctl(&["deinit"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("left in place"),
        "a tree with users stays: {text}"
    );
    assert!(!t.pins.exists(), "pin dir {} left", t.pins.display());
    for a in attached_programs_of(t.root(), &HOOKS)
        .unwrap()
        .into_iter()
        .chain(attached_programs_of(t.root(), &NET_HOOKS).unwrap())
    {
        assert!(a.ids.is_empty(), "{}: {:?}", a.hook.prog_name, a.ids);
    }
    assert!(!programs_attached(t.root()).unwrap());
    let p = *t.ports.start();
    let out = run_as(
        &cg,
        who(&user),
        &[Op::bind(&format!("0.0.0.0:{p}"), Proto::Tcp)],
    );
    assert_eq!(bound(&out[0]), format!("0.0.0.0:{p}").parse().unwrap());
}

#[test]
fn deinit_removes_an_empty_tree_and_is_idempotent() {
    require_root();
    let t = PipTree::new(port_block());
    init_json(&t);
    let out = t.cgroupctl(&["deinit"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!t.root().exists(), "empty tree is removed");
    assert!(!t.pins.exists());
    let again = t.cgroupctl(&["deinit"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        again.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn init_with_private_ips_disabled_detaches_old_programs() {
    require_root();
    let t = PipTree::new(port_block());
    init_json(&t);
    t.write_config(false, &t.ports.clone());
    let j = init_json(&t);
    assert!(j.installed.is_none());
    let removed = j.removed.expect("a removal report");
    // The six private-IP programs and the traffic counters' two.
    assert_eq!(
        removed["detached"].as_array().map(Vec::len),
        Some(HOOKS.len() + NET_HOOKS.len()),
        "{removed}"
    );
    assert!(t.root().join("users").is_dir(), "the tree is still made");
    assert!(!t.pins.exists());
    assert!(!programs_attached(t.root()).unwrap());
}

#[test]
fn ip_prints_the_private_address() {
    require_root();
    let t = PipTree::new(port_block());
    let user = TestUser::new("pip-i-");
    let out = t.cgroupctl(&["ip", &user.name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        ip_of(&user).to_string()
    );
    let out = t.cgroupctl(&["ip", "root"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("cgroupctl: ") && err.contains("min_gid"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[test]
fn pam_module_does_not_link_libbpf() {
    module_lacks(&["libbpf", "libelf", "libz"], "bpf_object__open");
}

/// The PAM module as built needs none of `libs` and holds no `symbol`: what it must never do
/// at a login (load BPF, open the usage history) is not even linked in.
pub fn module_lacks(libs: &[&str], symbol: &str) {
    let so = pam_cgroup_tests::support::pamconf::module_path();
    let dynamic = std::process::Command::new("readelf")
        .arg("-d")
        .arg(&so)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dynamic.stdout);
    assert!(text.contains("NEEDED"), "{text}");
    for lib in libs {
        assert!(!text.contains(lib), "{} needs {lib}:\n{text}", so.display());
    }
    let symbols = std::process::Command::new("nm").arg(&so).output().unwrap();
    let text = String::from_utf8_lossy(&symbols.stdout);
    assert!(!text.is_empty(), "nm {}", so.display());
    assert!(!text.contains(symbol), "{} contains {symbol}", so.display());
}

// ---- issue 12: the fence decides, not the gid ------------------------------------------

/// The gid a process runs with changes nothing: a customer after `sg` into a group below
/// min_gid, into another customer's primary group, or running a setgid-root program keeps its
/// own address and its refusals. (The forked probe sets the gid directly; the test below does
/// the same through the real sg, newgrp and a setgid binary.)
#[test]
fn any_gid_in_the_fence_keeps_the_own_address_and_refusals() {
    let f = Fixture::new();
    let (p, own, other) = (f.port(20), ip_of(&f.a), ip_of(&f.b));
    for gid in [f.a.gid, LOW.gid, f.b.gid, 0] {
        let out = run_as(
            &f.a_cgroup(),
            Identity { uid: f.a.uid, gid },
            &[
                Op::bind(&format!("0.0.0.0:{p}"), Proto::Tcp),
                Op::bind(&format!("[::]:{p}"), Proto::Tcp),
                Op::bind(&v4(other, p), Proto::Tcp),
                Op::bind(&v4(other, spare_port()), Proto::Udp),
                Op::connect(&v4(other, p)),
                Op::bind(&format!("127.0.0.5:{p}"), Proto::Tcp),
            ],
        );
        assert_eq!(bound(&out[0]), v4(own, p).parse().unwrap(), "gid {gid}");
        assert_eq!(bound(&out[1]), mapped(own, p).parse().unwrap(), "gid {gid}");
        assert_eq!(&out[2..], &[EACCES; 4], "gid {gid}");
    }
}

/// Runs `argv` as root in `cgroup` (the shell enters it, then execs): runuser, sg and newgrp
/// then change the credentials the way they do for a customer.
fn run_in(cgroup: &Path, argv: &[&str]) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("echo $$ > \"$0/cgroup.procs\" && exec \"$@\"")
        .arg(cgroup)
        .args(argv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sock_probe_path() -> std::path::PathBuf {
    pam_cgroup_tests::support::pip_tree::cgroupctl_path().with_file_name("sock-probe")
}

#[test]
fn sg_newgrp_and_a_setgid_binary_change_nothing() {
    use pam_cgroup_tests::support::users::add_to_group;
    use pam_cgroup_tests::support::TestGroup;
    let f = Fixture::new();
    let low = TestGroup::low("pip-low-");
    add_to_group(&f.a.name, &low.name);
    add_to_group(&f.a.name, &f.b.name);
    let (p, own, other) = (f.port(21), ip_of(&f.a), ip_of(&f.b));
    let probe = sock_probe_path();
    let ops = [
        format!("bind:0.0.0.0:{p}"),
        format!("bind:127.0.0.1:{p}"),
        format!("bind:{}", v4(other, p)),
        format!("connect:{}", v4(other, p)),
        format!("bind:127.0.0.9:{p}"),
    ];
    let command = format!("{} {}", probe.display(), ops.join(" "));
    // A setgid program of B's primary group, as a customer could find one on the system.
    let dir = tempfile::Builder::new()
        .prefix("pct-sgid-")
        .tempdir()
        .unwrap();
    let setgid_probe = dir.path().join("sock-probe");
    std::fs::copy(&probe, &setgid_probe).unwrap();
    std::os::unix::fs::chown(&setgid_probe, Some(0), Some(f.b.gid)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&setgid_probe, std::fs::Permissions::from_mode(0o2755)).unwrap();
    let setgid_cmd: Vec<&str> = std::iter::once(setgid_probe.to_str().unwrap())
        .chain(ops.iter().map(String::as_str))
        .collect();
    let cg = f.a_cgroup();
    let runs = [
        (
            format!("gid {} ", low.gid),
            run_in(
                &cg,
                &[
                    "runuser", "-u", &f.a.name, "--", "sg", &low.name, "-c", &command,
                ],
            ),
        ),
        (
            format!("gid {} ", f.b.gid),
            run_in(
                &cg,
                &[
                    "runuser", "-u", &f.a.name, "--", "sg", &f.b.name, "-c", &command,
                ],
            ),
        ),
        (
            format!("gid {} ", low.gid),
            run_in(
                &cg,
                &[
                    "runuser",
                    "-u",
                    &f.a.name,
                    "--",
                    "sh",
                    "-c",
                    &format!("echo '{command}' | newgrp {}", low.name),
                ],
            ),
        ),
        (
            format!("gid {} egid {}", f.a.gid, f.b.gid),
            run_in(
                &cg,
                &[&["runuser", "-u", &f.a.name, "--"][..], &setgid_cmd[..]].concat(),
            ),
        ),
    ];
    for (first, out) in runs {
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with(&first), "credentials changed: {out}");
        assert_eq!(
            &lines[1..],
            &[
                format!("ok {}", v4(own, p)).as_str(),
                format!("ok {}", v4(own, p)).as_str(),
                "errno 13",
                "errno 13",
                "errno 13",
            ],
            "{first}: {out}"
        );
    }
}

#[test]
fn localhost_on_the_range_reaches_the_own_service_never_a_neighbours() {
    let f = Fixture::new();
    let (p, q) = (f.port(22), f.port(23));
    let (own, other) = (ip_of(&f.a), ip_of(&f.b));
    // B listens on 127.0.0.1:p and :q: that is B's own address.
    let b_p = Server::start(
        &f.b_cgroup(),
        who(&f.b),
        Op::bind(&format!("127.0.0.1:{p}"), Proto::Tcp),
    );
    let _b_q = Server::start(
        &f.b_cgroup(),
        who(&f.b),
        Op::bind(&format!("127.0.0.1:{q}"), Proto::Tcp),
    );
    assert_eq!(b_p.addr(), v4(other, p).parse().unwrap());
    // A has a service on p only.
    let a_p = Server::start(
        &f.a_cgroup(),
        who(&f.a),
        Op::bind(&format!("0.0.0.0:{p}"), Proto::Tcp),
    );
    assert_eq!(a_p.addr(), v4(own, p).parse().unwrap());
    let out = run_as(
        &f.a_cgroup(),
        who(&f.a),
        &[
            Op::connect_peer(&format!("127.0.0.1:{p}")),
            Op::connect_peer(&format!("[::ffff:127.0.0.1]:{p}")),
            // Nothing of A's on q: refused by the kernel, never B's listener.
            Op::connect_peer(&format!("127.0.0.1:{q}")),
            Op::connect_peer(&format!("[::ffff:127.0.0.1]:{q}")),
            Op::send_to(&format!("127.0.0.1:{q}")),
        ],
    );
    assert_eq!(out[0], Ok(Some(v4(own, p).parse().unwrap())));
    assert_eq!(out[1], Ok(Some(mapped(own, p).parse().unwrap())));
    assert_eq!(out[2], Err(libc::ECONNREFUSED));
    assert_eq!(out[3], Err(libc::ECONNREFUSED));
    assert_eq!(out[4], Ok(None));
    let out = run_as(
        &f.b_cgroup(),
        who(&f.b),
        &[Op::connect_peer(&format!("127.0.0.1:{q}"))],
    );
    assert_eq!(out[0], Ok(Some(v4(other, q).parse().unwrap())));
    // The platform (outside users/) still reaches each service at its address.
    let out = run_as(
        &f.admin_cgroup(),
        Identity::ROOT,
        &[
            Op::connect_peer(&v4(own, p)),
            Op::connect_peer(&v4(other, q)),
        ],
    );
    assert_eq!(out[0], Ok(Some(v4(own, p).parse().unwrap())));
    assert_eq!(out[1], Ok(Some(v4(other, q).parse().unwrap())));
}

/// Datagrams waiting on `socket` (each probe sends one byte), read until a short quiet spell.
fn datagrams(socket: &std::net::UdpSocket) -> usize {
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    let mut n = 0;
    while socket.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

#[test]
fn any_as_a_peer_on_the_range_is_the_own_localhost_never_the_shared_one() {
    let f = Fixture::new();
    let p = f.port(25);
    let own = ip_of(&f.a);
    // An unconfined service on the shared 127.0.0.1:p (TCP and UDP), and A's own on its
    // address, both held by this (root, unconfined) process so it can count what arrives.
    let shared_tcp = std::net::TcpListener::bind(v4(Ipv4Addr::LOCALHOST, p)).unwrap();
    let shared_udp = std::net::UdpSocket::bind(v4(Ipv4Addr::LOCALHOST, p)).unwrap();
    let _own_tcp = std::net::TcpListener::bind(v4(own, p)).unwrap();
    let own_udp = std::net::UdpSocket::bind(v4(own, p)).unwrap();
    let peers = [
        format!("0.0.0.0:{p}"),
        format!("[::ffff:0.0.0.0]:{p}"),
        format!("[::]:{p}"),
    ];
    let mut ops: Vec<Op> = peers.iter().map(|a| Op::connect_peer(a)).collect();
    ops.extend(peers.iter().map(|a| Op::send_to(a)));
    let out = run_as(&f.a_cgroup(), who(&f.a), &ops);
    assert_eq!(out[0], Ok(Some(v4(own, p).parse().unwrap())), "TCP 0.0.0.0");
    assert_eq!(
        out[1],
        Ok(Some(mapped(own, p).parse().unwrap())),
        "TCP [::ffff:0.0.0.0]"
    );
    assert_eq!(
        out[2],
        Ok(Some(mapped(own, p).parse().unwrap())),
        "TCP [::]"
    );
    shared_tcp.set_nonblocking(true).unwrap();
    assert!(
        shared_tcp.accept().is_err(),
        "a connection reached the shared 127.0.0.1:{p}"
    );
    assert_eq!(
        &out[3..5],
        &[Ok(None), Ok(None)],
        "UDP 0.0.0.0, [::ffff:0.0.0.0]"
    );
    // [::] as a datagram's peer cannot be rewritten to a v4-mapped one (the kernel's UDPv6
    // send path answers ENOTSUPP after the hook): refused plainly instead.
    assert_eq!(out[5], EACCES, "UDP [::]");
    assert_eq!(
        datagrams(&shared_udp),
        0,
        "datagrams reached the shared 127.0.0.1:{p}"
    );
    assert_eq!(datagrams(&own_udp), 2, "datagrams that reached {own}:{p}");
}

#[test]
fn other_loopback_binds_on_the_range_are_refused() {
    let f = Fixture::new();
    let (p, q) = (f.port(24), spare_port());
    let own = ip_of(&f.a);
    let out = run_as(
        &f.a_cgroup(),
        who(&f.a),
        &[
            Op::bind(&format!("127.0.0.5:{p}"), Proto::Tcp),
            Op::bind(&format!("127.0.0.5:{p}"), Proto::Udp),
            Op::bind(&format!("127.1.2.3:{p}"), Proto::Tcp),
            Op::bind(&format!("[::ffff:127.0.0.5]:{p}"), Proto::Tcp),
            Op::bind(&format!("127.0.0.1:{p}"), Proto::Udp),
            Op::bind(&format!("[::ffff:127.0.0.1]:{p}"), Proto::Tcp),
            Op::bind(&format!("127.0.0.5:{q}"), Proto::Tcp),
        ],
    );
    assert_eq!(&out[..4], &[EACCES; 4]);
    assert_eq!(bound(&out[4]), v4(own, p).parse().unwrap());
    assert_eq!(bound(&out[5]), mapped(own, p).parse().unwrap());
    // Outside the range the rest of 127/8 is left alone.
    assert_eq!(bound(&out[6]), format!("127.0.0.5:{q}").parse().unwrap());
}

#[test]
fn pktinfo_source_of_another_user_is_refused_v4_and_v6() {
    let f = Fixture::new();
    let q = spare_port();
    let (own, other) = (ip_of(&f.a), ip_of(&f.b));
    // A root UDP service outside the range.
    let _service = Server::start(
        &f.admin_cgroup(),
        Identity::ROOT,
        Op::bind(&format!("0.0.0.0:{q}"), Proto::Udp),
    );
    let to4 = format!("127.0.0.1:{q}");
    let to6 = format!("[::ffff:127.0.0.1]:{q}");
    let ops = [
        Op::send_from(&other.to_string(), &to4),
        Op::send_from(&format!("::ffff:{other}"), &to6),
        Op::send_from(&own.to_string(), &to4),
        Op::send_from(&format!("::ffff:{own}"), &to6),
    ];
    let out = run_as(&f.a_cgroup(), who(&f.a), &ops);
    assert_eq!(&out[..2], &[EACCES; 2], "spoofed sources");
    assert_eq!(&out[2..], &[Ok(None); 2], "own source");
    // Outside users/ the same calls go through: the refusal above is the policy's.
    let out = run_as(&f.admin_cgroup(), LOW, &ops[..2]);
    assert_eq!(&out[..], &[Ok(None); 2], "unconfined");
}

/// The 0.1.0 programs (gid-based, no fence map), as that release attached and pinned them.
fn attach_010_programs(t: &PipTree) {
    use libbpf_rs::ObjectBuilder;
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/private_ip-0.1.0.bpf.c"),
    )
    .unwrap()
    .replace(
        "port_min = 8000",
        &format!("port_min = {}", t.ports.start()),
    )
    .replace("port_max = 8299", &format!("port_max = {}", t.ports.end()));
    let dir = tempfile::tempdir().unwrap();
    let (src, obj) = (dir.path().join("old.bpf.c"), dir.path().join("old.bpf.o"));
    std::fs::write(&src, source).unwrap();
    let multiarch = std::process::Command::new("gcc")
        .arg("-print-multiarch")
        .output()
        .unwrap();
    let include = format!(
        "-I/usr/include/{}",
        String::from_utf8_lossy(&multiarch.stdout).trim()
    );
    let status = std::process::Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", &include, "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap();
    assert!(status.success(), "clang the 0.1.0 programs");
    let object = ObjectBuilder::default()
        .open_file(&obj)
        .unwrap()
        .load()
        .unwrap();
    std::fs::create_dir_all(&t.pins).unwrap();
    let root = std::fs::File::open(t.root()).unwrap();
    for hook in HOOKS {
        let prog = object
            .progs_mut()
            .find(|p| p.name() == hook.prog_name)
            .unwrap();
        let mut link = prog
            .attach_cgroup(std::os::fd::AsRawFd::as_raw_fd(&root))
            .unwrap();
        link.pin(t.pins.join(hook.pin_name)).unwrap();
    }
}

#[test]
fn init_swaps_010_programs_in_place_with_no_window() {
    use cgroup_core::private_ip::{ensure_bpffs, DEFAULT_BPFFS};
    require_root();
    let t = PipTree::new(port_block());
    let (a, b) = (TestUser::new("pip-u-"), TestUser::new("pip-v-"));
    t.core_tree().ensure_base().unwrap();
    ensure_bpffs(Path::new(DEFAULT_BPFFS)).unwrap();
    attach_010_programs(&t);
    assert!(programs_attached(t.root()).unwrap());
    // Made under 0.1.0: not in any map yet; init must register it before the swap.
    let cg = t.cgroup(&format!("users/{}/session-1", a.name));
    let p = *t.ports.start();
    let (own, other) = (ip_of(&a), ip_of(&b));
    let ops = [
        Op::bind(&v4(other, p), Proto::Tcp),
        Op::bind(&format!("0.0.0.0:{p}"), Proto::Tcp),
        Op::connect(&v4(other, p)),
    ];
    let check = move |out: &[Outcome]| {
        out.chunks(3).all(|c| {
            c[0] == EACCES && c[1] == Ok(Some(v4(own, p).parse().unwrap())) && c[2] == EACCES
        })
    };
    assert!(check(&run_as(&cg, who(&a), &ops)), "0.1.0 rules hold");
    let links_before = link_ids(&t);
    let stop = Arc::new(AtomicBool::new(false));
    let rounds_done = Arc::new(AtomicU32::new(0));
    let prober = {
        let (stop, done, cg, who_a) = (stop.clone(), rounds_done.clone(), cg.clone(), who(&a));
        let many: Vec<Op> = ops.iter().cycle().take(300).copied().collect();
        std::thread::spawn(move || {
            let (mut rounds, mut bad) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                if !check(&run_as(&cg, who_a, &many)) {
                    bad += 1;
                }
                rounds += 1;
                done.store(rounds, Ordering::Relaxed);
            }
            (rounds, bad)
        })
    };
    // Probing before the swap, and through to a whole round after it.
    let done = |n: u32| rounds_done.load(Ordering::Relaxed) >= n;
    wait_until("the probe's first round", Duration::from_secs(30), || {
        done(1)
    });
    let swapped = init_json(&t);
    let after_swap = rounds_done.load(Ordering::Relaxed) + 2;
    wait_until(
        "a probe round after the swap",
        Duration::from_secs(30),
        || done(after_swap) || prober.is_finished(),
    );
    stop.store(true, Ordering::Relaxed);
    let (rounds, bad) = prober.join().unwrap();
    assert!(
        rounds >= 2,
        "the probe ran through the swap ({rounds} rounds)"
    );
    assert_eq!(
        bad, 0,
        "{bad} of {rounds} probe rounds saw a forbidden call succeed"
    );
    for p in installed(&swapped) {
        assert_eq!(p.action, "updated", "{}", p.program);
    }
    // The probe samples; the links prove it: the 0.1.0 links stay, running the new programs.
    assert_links_kept_with_new_programs(&t, &links_before);
    assert!(t.pins.join("fences").exists());
    // Now the fence rules: another gid changes nothing, localhost on the range is own.
    let out = run_as(
        &cg,
        Identity {
            uid: a.uid,
            gid: LOW.gid,
        },
        &[Op::bind(&format!("127.0.0.1:{p}"), Proto::Tcp)],
    );
    assert_eq!(bound(&out[0]), v4(own, p).parse().unwrap());
}

/// The login's check trusts the marker init leaves in the fence map only for the cgroup it
/// was written for: a tree root removed and made again (nothing attached at the new one) is
/// not "attached" because the old one was; deinit takes the marker away first; a link
/// unpinned by hand is what doctor reports.
#[test]
fn the_login_check_trusts_the_marker_of_this_root_only() {
    require_root();
    let t = PipTree::new(port_block());
    t.core_tree().ensure_base().unwrap();
    assert!(!marked_attached(t.root()).unwrap(), "no marker before init");
    assert_eq!(empty_hooks(t.root()).unwrap().len(), HOOKS.len());
    t.install();
    assert!(marked_attached(t.root()).unwrap());
    assert!(empty_hooks(t.root()).unwrap().is_empty());
    assert!(query_empty_hooks(t.root()).unwrap().is_empty());

    // The root removed and made again: a new cgroup with nothing attached, the old pins and
    // marker still in bpffs.
    let rm = std::process::Command::new("find")
        .arg(t.root())
        .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", "+"])
        .status()
        .unwrap();
    assert!(rm.success());
    t.core_tree().ensure_base().unwrap();
    assert!(
        !marked_attached(t.root()).unwrap(),
        "a former root's marker"
    );
    assert_eq!(
        empty_hooks(t.root()).unwrap().len(),
        HOOKS.len(),
        "nothing attached at the new root"
    );
    // init again: attached at the new root, marked again.
    t.install();
    assert!(marked_attached(t.root()).unwrap());
    assert!(programs_attached(t.root()).unwrap());

    // What the marker cannot see: root unpinning a link by hand (nothing else holds it, so
    // it is detached). doctor checks the hooks themselves and says that logins still trust it.
    std::fs::remove_file(t.pins.join("bind4")).unwrap();
    // The kernel releases the link once its last reference goes, which under load can come a
    // moment after the unlink returns.
    wait_until(
        "the unpinned link to detach",
        Duration::from_secs(10),
        || query_empty_hooks(t.root()).unwrap() == vec!["pcg_bind4"],
    );
    let doctor = t.cgroupctl(&["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        text.contains("pcg_bind4") && text.contains("init's marker"),
        "{text}"
    );
    t.install();
    assert!(query_empty_hooks(t.root()).unwrap().is_empty());

    let deinit = t.cgroupctl(&["deinit"]);
    assert!(
        deinit.status.success(),
        "{}",
        String::from_utf8_lossy(&deinit.stderr)
    );
    assert!(!marked_attached(t.root()).unwrap_or(false));
}
