//! A test tree with the private-IP programs: a unique tree root (TestTree), a config file
//! naming it, and the pins derived from it. On drop the programs are detached and unpinned,
//! then the tree is removed, even when the test failed.

use std::ops::RangeInclusive;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cgroup_core::config::PrivateIpConfig;
use cgroup_core::mount::cgroup2_mounts;
use cgroup_core::nss::lookup_user;
use cgroup_core::private_ip::{
    ensure_bpffs, fence_map_pin, install, pin_dir, register_fence, uninstall, InstallReport,
    DEFAULT_BPFFS,
};
use cgroup_core::tree::Tree;

use super::TestTree;

pub const TEST_MIN_GID: u32 = 2000;

/// Ports for one test: a block of 40 from a range no service on this machine uses, distinct
/// per process and per call so parallel tests never bind the same wildcard port.
pub fn port_block() -> RangeInclusive<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = NEXT.fetch_add(1, Ordering::Relaxed) % 64;
    let base = 21000 + (std::process::id() % 4) as u16 * 2600 + slot * 40;
    base..=base + 39
}

/// A port outside every test's block (31400-32599), unique per process and call: for probes
/// that must stay on the real wildcard.
pub fn spare_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 300;
    31400 + (std::process::id() % 4) as u16 * 300 + n
}

pub struct PipTree {
    pub ports: RangeInclusive<u16>,
    pub pins: PathBuf,
    pub dir: tempfile::TempDir,
    // Dropped last: the cgroups go after the programs.
    pub tree: TestTree,
}

impl PipTree {
    /// A tree whose config enables private IPs on `ports` (nothing is created yet).
    pub fn new(ports: RangeInclusive<u16>) -> PipTree {
        let tree = TestTree::new();
        let pins = pin_dir(Path::new(DEFAULT_BPFFS), &tree.root).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("pct-pip-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let t = PipTree {
            ports,
            pins,
            dir,
            tree,
        };
        t.write_config(true, &t.ports.clone());
        t
    }

    pub fn root(&self) -> &Path {
        &self.tree.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn policy(&self) -> PrivateIpConfig {
        PrivateIpConfig {
            enabled: true,
            min_gid: TEST_MIN_GID,
            ports: self.ports.clone(),
        }
    }

    pub fn write_config(&self, enabled: bool, ports: &RangeInclusive<u16>) {
        let text = format!(
            "[tree]\nroot = \"{}\"\n\n[private_ip]\nenabled = {enabled}\nmin_gid = {TEST_MIN_GID}\nports = \"{}-{}\"\n",
            self.tree.root.display(),
            ports.start(),
            ports.end()
        );
        std::fs::write(self.config_path(), text).unwrap();
        std::fs::set_permissions(self.config_path(), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }

    /// Creates the tree and attaches the programs through the library (what `init` does).
    pub fn install(&self) -> InstallReport {
        let tree = Tree::locate_in(&cgroup2_mounts().unwrap(), Some(&self.tree.root)).unwrap();
        tree.ensure_base().unwrap();
        ensure_bpffs(Path::new(DEFAULT_BPFFS)).unwrap();
        install(&tree, &self.pins, &self.policy()).unwrap()
    }

    /// A cgroup below the root (`rel` like "users/alice/svc/worker"), created with parents.
    /// Below `users/<user>` the fence is registered, as the PAM module and cgroupctl do when
    /// they make `users/<user>` (once the programs are installed; `install` registers the
    /// fences made before).
    pub fn cgroup(&self, rel: &str) -> PathBuf {
        let dir = self.tree.root.join(rel);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(user) = rel.strip_prefix("users/").and_then(|r| r.split('/').next()) {
            self.register(user);
        }
        dir
    }

    /// Registers `users/<user>` in the fence map, if the map is there.
    pub fn register(&self, user: &str) {
        let tree = self.core_tree();
        if !fence_map_pin(&tree).unwrap().exists() {
            return;
        }
        let info = lookup_user(user).unwrap();
        register_fence(&tree, &self.policy(), &tree.users_dir().join(user), &info).unwrap();
    }

    /// The library's view of this tree.
    pub fn core_tree(&self) -> Tree {
        Tree::locate_in(&cgroup2_mounts().unwrap(), Some(&self.tree.root)).unwrap()
    }

    /// Runs the real `cgroupctl --config <ours> ARGS`.
    pub fn cgroupctl(&self, args: &[&str]) -> Output {
        Command::new(cgroupctl_path())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for PipTree {
    fn drop(&mut self) {
        super::pamconf::forget_kept_policy(&self.config_path());
        if let Err(e) = uninstall(&self.tree.root, &self.pins) {
            eprintln!("cleanup: detach/unpin {}: {e}", self.pins.display());
        }
    }
}

/// target/<profile>/cgroupctl, built beside the test binary (tests/run builds the workspace).
pub fn cgroupctl_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("cgroupctl");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p cgroupctl` first (tests/run does)",
        path.display()
    );
    path
}
