//! Private IPs on the real kernel: the six cgroup BPF programs attached at a test tree's root,
//! probed by forked children running as confined users in cgroups below it, plus cgroupctl
//! init/deinit and the PAM-side check. Each test has its own tree, pins, users and ports, and
//! removes them on drop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cgroup_core::private_ip::{attached_programs, private_address, programs_attached, HOOKS};
use pam_cgroup_tests::support::pip_tree::{port_block, spare_port, PipTree, TEST_MIN_GID};
use pam_cgroup_tests::support::probe::{run_as, Identity, Op, Outcome, Proto, Server};
use pam_cgroup_tests::support::{require_root, TestUser};

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

fn installed(j: &InitJson) -> &[ProgramJson] {
    &j.installed.as_ref().expect("programs installed").programs
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
    let second = init_json(&t);
    for p in installed(&second) {
        assert_eq!(p.action, "unchanged", "{}", p.program);
    }
    assert_eq!(our_ids(t.root()), ids);
    assert!(programs_attached(t.root()).unwrap());
    for hook in HOOKS {
        assert!(t.pins.join(hook.pin_name).exists(), "pin {}", hook.pin_name);
    }
}

#[test]
fn config_change_swaps_programs_in_place() {
    require_root();
    let t = PipTree::new(port_block());
    let user = TestUser::new("pip-s-");
    init_json(&t);
    let before = our_ids(t.root());
    // A watcher queries the root as fast as it can while init swaps the programs: every hook
    // must have one of our programs attached at every instant it looks.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, root) = (stop.clone(), t.root().to_path_buf());
        std::thread::spawn(move || {
            let mut looks = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for a in attached_programs(&root).unwrap() {
                    assert!(
                        !a.ours.is_empty(),
                        "{} had nothing attached",
                        a.hook.prog_name
                    );
                }
                looks += 1;
            }
            looks
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let new_ports = *t.ports.start()..=*t.ports.end() - 20;
    t.write_config(true, &new_ports);
    let swapped = init_json(&t);
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Relaxed);
    let looks = watcher
        .join()
        .expect("the watcher saw a hook with nothing attached");
    assert!(looks > 0);
    for p in installed(&swapped) {
        assert_eq!(p.action, "updated", "{}", p.program);
    }
    let after = our_ids(t.root());
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(old, new, "program IDs change");
    }
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
    for a in attached_programs(t.root()).unwrap() {
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
    assert_eq!(
        removed["detached"].as_array().map(Vec::len),
        Some(6),
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
    let so = pam_cgroup_tests::support::pamconf::module_path();
    let dynamic = std::process::Command::new("readelf")
        .arg("-d")
        .arg(&so)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dynamic.stdout);
    for lib in ["libbpf", "libelf", "libz"] {
        assert!(!text.contains(lib), "{} needs {lib}:\n{text}", so.display());
    }
    let symbols = std::process::Command::new("nm").arg(&so).output().unwrap();
    let text = String::from_utf8_lossy(&symbols.stdout);
    assert!(
        !text.contains("bpf_object__open"),
        "{} contains libbpf",
        so.display()
    );
}
