//! Runs the `pam-session` driver (one real PAM session in its own process) and parses its
//! report.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use super::pamconf::SERVICE;

#[derive(Debug, Clone, Deserialize)]
pub struct SessionReport {
    pub pid: u32,
    pub cgroup_before: String,
    pub open_rc: i32,
    pub open_error: String,
    pub cgroup_after_open: String,
    pub child_status: Option<i32>,
    pub child_stdout: String,
    pub child_stderr: String,
    pub close_rc: Option<i32>,
    pub cgroup_after_close: String,
    pub syslog: Vec<String>,
}

impl SessionReport {
    /// The child's cgroup from `cat /proc/self/cgroup` (the default child command).
    pub fn child_cgroup(&self) -> Option<String> {
        self.child_stdout
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_string)
    }

    pub fn syslog_text(&self) -> String {
        self.syslog.join("\n")
    }
}

#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    pub hold_ms: u64,
    pub as_user: bool,
    pub no_close: bool,
    pub command: Vec<String>,
}

/// The driver binary, built beside the test binary (target/<profile>/pam-session).
pub fn driver() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf();
    profile_dir.join("pam-session")
}

/// Opens (and closes) one session of `user` with the PAM stack in `pam_dir`, with syslog
/// captured.
pub fn run_session(pam_dir: &Path, user: &str, opts: &SessionOptions) -> SessionReport {
    run_command(Command::new(driver()), pam_dir, user, opts)
}

/// The same, inside a private mount namespace after a shell `prelude` changed it (unmount
/// cgroup2, bind a broken nsswitch.conf...). The machine's own mounts are never touched.
pub fn run_session_in_namespace(
    prelude: &str,
    pam_dir: &Path,
    user: &str,
    opts: &SessionOptions,
) -> SessionReport {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-euc"])
        .arg(format!("{prelude}\nexec \"$0\" \"$@\""))
        .arg(driver());
    run_command(cmd, pam_dir, user, opts)
}

impl SessionOptions {
    /// Open and do not close: the leaf stays for the test to inspect.
    pub fn no_close() -> SessionOptions {
        SessionOptions {
            no_close: true,
            ..SessionOptions::default()
        }
    }
}

fn run_command(
    mut cmd: Command,
    pam_dir: &Path,
    user: &str,
    opts: &SessionOptions,
) -> SessionReport {
    cmd.arg("--confdir")
        .arg(pam_dir)
        .args(["--service", SERVICE, "--capture-syslog"])
        .arg(format!("--user={user}"))
        .args(["--hold-ms", &opts.hold_ms.to_string()]);
    if opts.as_user {
        cmd.arg("--as-user");
    }
    if opts.no_close {
        cmd.arg("--no-close");
    }
    if !opts.command.is_empty() {
        cmd.arg("--").args(&opts.command);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "pam-session failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad report {e}: {}", String::from_utf8_lossy(&out.stdout)))
}
