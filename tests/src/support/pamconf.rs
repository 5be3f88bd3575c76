//! A temporary config dir (root-owned, 0700) and PAM conf dir for one test, with the module
//! line pointing at the built libpam_cgroup.so.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::TestTree;

pub const SERVICE: &str = "pamcgroup-test";

/// The module under test: $PAM_CGROUP_SO, or target/debug/libpam_cgroup.so.
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PAM_CGROUP_SO") {
        return PathBuf::from(p);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"));
    let so = target.join("debug/libpam_cgroup.so");
    assert!(
        so.exists(),
        "{} is missing: run `cargo build -p pam_cgroup` first (tests/run does)",
        so.display()
    );
    so.canonicalize().unwrap()
}

/// A test's config and PAM stack. Removed on drop (the tempdir).
pub struct TestSetup {
    pub dir: tempfile::TempDir,
    pub tree: TestTree,
}

impl TestSetup {
    /// `config_body` is appended after a `[tree] root = ...` section pointing at a fresh
    /// test root; `module_args` are added to the module line.
    pub fn new(config_body: &str, module_args: &str) -> TestSetup {
        let tree = TestTree::new();
        let text = format!("[tree]\nroot = \"{}\"\n{config_body}", tree.root.display());
        Self::with_raw_config(tree, &text, module_args)
    }

    /// The config file is exactly `text` (for broken-config tests).
    pub fn with_raw_config(tree: TestTree, text: &str, module_args: &str) -> TestSetup {
        let dir = tempfile::Builder::new()
            .prefix("pct-conf-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let setup = TestSetup { dir, tree };
        std::fs::create_dir(setup.users_dir()).unwrap();
        std::fs::create_dir(setup.pam_dir()).unwrap();
        setup.write_config(text);
        setup.write_pam_stack(&format!(
            "session required {} config={} {module_args}\n",
            module_path().display(),
            setup.config_path().display()
        ));
        setup
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// `cgroupctl gc --min-age 0` over this setup's tree: what the daemon does as each leaf
    /// empties (close moves nobody; a session's leaf goes once its processes have exited).
    pub fn gc(&self) {
        let out = std::process::Command::new(super::pip_tree::cgroupctl_path())
            .arg("--config")
            .arg(self.config_path())
            .args(["gc", "--min-age", "0"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cgroupctl gc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn users_dir(&self) -> PathBuf {
        self.dir.path().join("users")
    }

    pub fn pam_dir(&self) -> PathBuf {
        self.dir.path().join("pam.d")
    }

    /// Rewrites the config as `[tree]` with this test's root plus `tree_keys`, then `body`
    /// (for tests that set max_descendants, max_depth...).
    pub fn write_config_with_tree(&self, tree_keys: &str, body: &str) {
        self.write_config(&format!(
            "[tree]\nroot = \"{}\"\n{tree_keys}{body}",
            self.tree.root.display()
        ));
    }

    pub fn write_config(&self, text: &str) {
        let text = without_host_history(&without_safety_net(text), self.dir.path());
        std::fs::write(self.config_path(), text).unwrap();
        std::fs::set_permissions(self.config_path(), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }

    pub fn write_user_file(&self, user: &str, text: &str) {
        let p = self.users_dir().join(format!("{user}.toml"));
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// Replaces the whole PAM stack of the test service.
    pub fn write_pam_stack(&self, text: &str) {
        std::fs::write(self.pam_dir().join(SERVICE), text).unwrap();
    }
}

impl Drop for TestSetup {
    fn drop(&mut self) {
        forget_kept_policy(&self.config_path());
        forget_reported_breakage(self.dir.path());
    }
}

/// The module logs a broken file once, remembering it in /run/pam_cgroup/broken@<escaped
/// path>: tests forget what they broke under `dir`.
fn forget_reported_breakage(dir: &Path) {
    let Some(prefix) = cgroup_core::state_dir::escape_path(dir) else {
        return;
    };
    let prefix = format!("broken@{prefix}");
    let Ok(entries) = std::fs::read_dir(cgroup_core::paths::RUN_DIR) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            if let Err(err) = std::fs::remove_file(e.path()) {
                eprintln!("cleanup: {}: {err}", e.path().display());
            }
        }
    }
}

/// The module and every `cgroupctl` verb keep the last good copy of every config (and user
/// file) they load, keyed by the config's path, in /var/lib/pam_cgroup: tests forget theirs.
pub fn forget_kept_policy(config: &Path) {
    if let Err(e) = cgroup_core::config::last_good::forget(config) {
        eprintln!(
            "cleanup: forget the kept policy of {}: {e}",
            config.display()
        );
    }
}

/// Forgets the kept policy of a config path on drop (tests that build configs by hand).
pub struct KeptPolicyGuard(pub PathBuf);

impl Drop for KeptPolicyGuard {
    fn drop(&mut self) {
        forget_kept_policy(&self.0);
    }
}

/// `text` kept off the host's own state: `[history] enabled = false` with a database in the
/// test's directory `dir` unless it has a `[history]` table (a test's daemon must neither
/// sample into nor record its fault events in /var/lib/pam_cgroup/history.db), and
/// `[events] history_dir` in `dir` unless it has an `[events]` table (the daemon imports and
/// removes an old event ring it finds there at start: never the host's). A config that does
/// not parse is left exactly as written.
fn without_host_history(text: &str, dir: &Path) -> String {
    if text.parse::<toml::Table>().is_err() {
        return text.to_string();
    }
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !text.contains("[history]") {
        out.push_str(&format!(
            "[history]\nenabled = false\ndatabase = \"{}\"\n",
            dir.join("db/history.db").display()
        ));
    }
    if !text.contains("[events]") {
        out.push_str(&format!(
            "[events]\nhistory_dir = \"{}\"\n",
            dir.join("events").display()
        ));
    }
    out
}

/// `text` with `[policy] safety_net = false` unless it names `safety_net` itself: the daemons
/// of tests running side by side on one host must not take each other's users' processes
/// (each would move every other test's users into its own tree). A config that does not
/// parse is left exactly as written (broken-config tests check its lines).
fn without_safety_net(text: &str) -> String {
    if text.contains("safety_net") || text.parse::<toml::Table>().is_err() {
        return text.to_string();
    }
    if let Some(at) = text.find("[policy]\n") {
        let after = at + "[policy]\n".len();
        return format!("{}safety_net = false\n{}", &text[..after], &text[after..]);
    }
    let sep = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    format!("{text}{sep}[policy]\nsafety_net = false\n")
}
