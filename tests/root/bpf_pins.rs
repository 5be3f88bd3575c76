//! The pinned BPF objects are root's alone. A customer that could take one with BPF_OBJ_GET
//! could write init's "all hooks attached" marker into the fence map (logins would then trust
//! hooks that enforce nothing), rewrite its own fence entry to a neighbour's, or read everyone's
//! traffic counters. The kernel's gate on unprivileged bpf() is a sysctl an administrator may
//! open (`kernel.unprivileged_bpf_disabled=0`), and bpffs mounted by another tool without
//! `mode=` has a root of 1777 (ours mounts it 0700), so the attack runs with both open: what
//! must refuse it is the pins' own modes and their directories.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cgroup_core::private_ip::DEFAULT_BPFFS;
use pam_cgroup_tests::support::escape_probe::attempt_as;
use pam_cgroup_tests::support::pip_tree::{port_block, PipTree};
use pam_cgroup_tests::support::{require_root, TestUser};

const GATE: &str = "/proc/sys/kernel/unprivileged_bpf_disabled";

/// Opens the kernel's gate on unprivileged bpf() for the test when it is closed in the way
/// that can be undone (2); puts the old value back on drop, failed test or not. 1 cannot be
/// undone until reboot: the test then runs behind the closed gate and says so.
struct OpenGate {
    old: Option<String>,
}

impl OpenGate {
    fn open() -> OpenGate {
        let old = std::fs::read_to_string(GATE).unwrap().trim().to_string();
        if old == "2" {
            std::fs::write(GATE, "0").unwrap();
            OpenGate { old: Some(old) }
        } else {
            if old != "0" {
                eprintln!("{GATE} is {old} (cannot be opened until reboot): testing behind it");
            }
            OpenGate { old: None }
        }
    }
}

impl Drop for OpenGate {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            if let Err(e) = std::fs::write(GATE, old) {
                eprintln!("cleanup: restore {GATE} to {old}: {e}");
            }
        }
    }
}

/// The bpffs root as a mount without `mode=` makes it (1777: anyone may traverse and make
/// directories); the old mode back on drop.
struct OpenBpffsRoot {
    old: u32,
}

impl OpenBpffsRoot {
    fn open() -> OpenBpffsRoot {
        let root = Path::new(DEFAULT_BPFFS);
        let old = std::fs::metadata(root).unwrap().permissions().mode() & 0o7777;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o1777)).unwrap();
        OpenBpffsRoot { old }
    }
}

impl Drop for OpenBpffsRoot {
    fn drop(&mut self) {
        let root = Path::new(DEFAULT_BPFFS);
        if let Err(e) = std::fs::set_permissions(root, std::fs::Permissions::from_mode(self.old)) {
            eprintln!("cleanup: restore the mode of {}: {e}", root.display());
        }
    }
}

/// Runs the probe's ops as uid/gid (no supplementary groups); (op, errno) of each.
fn attempt(uid: u32, gid: u32, ops: &[String]) -> Vec<(String, i32)> {
    attempt_as(None, uid, gid, ops)
        .into_iter()
        .map(|(op, errno, _)| (op, errno))
        .collect()
}

fn pins_of(dir: &Path) -> Vec<PathBuf> {
    let mut pins: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pins.sort();
    pins
}

#[test]
fn a_customer_cannot_take_or_plant_a_pinned_map_program_or_link() {
    require_root();
    let t = PipTree::new(port_block());
    t.core_tree().ensure_base().unwrap();
    t.install();
    let customer = TestUser::new("pcbpf");
    let _gate = OpenGate::open();
    let _root = OpenBpffsRoot::open();

    let pins = pins_of(&t.pins);
    let names: Vec<String> = pins
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for must in ["fences", "bind4", "connect6", "sendmsg4"] {
        assert!(names.iter().any(|n| n == must), "{must} not in {names:?}");
    }
    let mut ops = Vec::new();
    for pin in &pins {
        for mode in ["rw", "ro", "wo"] {
            ops.push(format!("bpfget:{}={mode}", pin.display()));
        }
    }
    // The probe's op works: root takes the fence map (rules out a probe that always fails).
    let fences = t.pins.join("fences");
    let by_root = attempt(0, 0, &[format!("bpfget:{}=ro", fences.display())]);
    assert_eq!(
        by_root[0].1,
        0,
        "root's BPF_OBJ_GET of {}",
        fences.display()
    );

    for (op, errno) in attempt(customer.uid, customer.gid, &ops) {
        assert!(
            errno == libc::EACCES || errno == libc::EPERM,
            "{op}: errno {errno}, the customer took a pinned object"
        );
    }
    // Nor can it plant its own object (a map answering "attached") where a missing pin would
    // be looked for, or remove or rename root's pins.
    let planted = t.pins.join("planted");
    let base = t.pins.parent().unwrap().join("planted-dir");
    let more = [
        format!("mknod:{}", planted.display()),
        format!("mkdir:{}", base.display()),
        format!("rename:{}={}", fences.display(), planted.display()),
        format!("rmdir:{}", t.pins.display()),
    ];
    for (op, errno) in attempt(customer.uid, customer.gid, &more) {
        assert!(
            errno == libc::EACCES || errno == libc::EPERM,
            "{op}: errno {errno}"
        );
    }
    assert!(fences.exists() && !planted.exists() && !base.exists());
}
