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
    pub acct_rc: Option<i32>,
    pub open_rc: i32,
    pub open_error: String,
    pub cgroup_after_open: String,
    pub child_status: Option<i32>,
    pub child_stdout: String,
    pub child_stderr: String,
    pub close_rc: Option<i32>,
    pub cgroup_after_close: String,
    pub syslog: Vec<String>,
    pub messages: Vec<String>,
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
    /// Run pam_acct_mgmt first.
    pub acct: bool,
    pub tty: Option<String>,
    pub rhost: Option<String>,
    /// Stay open until this file exists.
    pub hold_until: Option<PathBuf>,
    /// `ulimit -n` while libpam runs (`pam-session --nofile`).
    pub nofile: Option<u64>,
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

/// The same, with the driver started as `program` (a symlink to it): the process's comm is
/// then the link's name, as when a customer starts su through a link it named.
pub fn run_session_via(
    program: &Path,
    pam_dir: &Path,
    user: &str,
    opts: &SessionOptions,
) -> SessionReport {
    run_command(Command::new(program), pam_dir, user, opts)
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

/// The driver's command line for one session, to spawn without waiting (concurrent logins);
/// read its report with `parse_report`.
pub fn session_command(pam_dir: &Path, user: &str, opts: &SessionOptions) -> Command {
    let mut cmd = Command::new(driver());
    add_args(&mut cmd, pam_dir, user, opts);
    cmd
}

/// Parses the report of a finished driver.
pub fn parse_report(out: &std::process::Output) -> SessionReport {
    assert!(
        out.status.success(),
        "pam-session failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad report {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn add_args(cmd: &mut Command, pam_dir: &Path, user: &str, opts: &SessionOptions) {
    if opts.acct {
        cmd.arg("--acct");
    }
    if let Some(t) = &opts.tty {
        cmd.arg("--tty").arg(t);
    }
    if let Some(h) = &opts.rhost {
        cmd.arg("--rhost").arg(h);
    }
    if let Some(n) = opts.nofile {
        cmd.arg("--nofile").arg(n.to_string());
    }
    if let Some(f) = &opts.hold_until {
        cmd.arg("--hold-until").arg(f);
    }
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
}

fn run_command(
    mut cmd: Command,
    pam_dir: &Path,
    user: &str,
    opts: &SessionOptions,
) -> SessionReport {
    add_args(&mut cmd, pam_dir, user, opts);
    parse_report(&cmd.output().unwrap())
}
