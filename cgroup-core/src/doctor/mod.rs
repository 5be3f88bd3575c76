//! `cgroupctl doctor`: finds what is misconfigured and says why it matters and how to fix it.
//! Each check returns findings (OK / WARN / FAIL, one line why, one line fix); the paths of
//! the system files read are inputs, so tests can point them at temporary directories.

mod config_checks;
mod fence;
mod kernel;
pub mod logind;
mod nss_cost;
pub mod pam;
mod stacks;

use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    /// Fine as configured, but worth knowing (a documented default with a trade-off).
    Info,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Info => "INFO",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub status: Status,
    /// Short name of the check (`cgroup2`, `pam:sshd`, ...).
    pub check: String,
    pub summary: String,
    /// Why it matters, and for INFO and WARN when (INFO/WARN/FAIL).
    pub why: Option<String>,
    /// How to fix it, or for INFO how to change it (INFO/WARN/FAIL).
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: impl Into<String>, summary: impl Into<String>) -> Finding {
        Finding {
            status: Status::Ok,
            check: check.into(),
            summary: summary.into(),
            why: None,
            fix: None,
        }
    }

    pub fn info(
        check: impl Into<String>,
        summary: impl Into<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status: Status::Info,
            ..Finding::warn(check, summary, why, fix)
        }
    }

    pub fn warn(
        check: impl Into<String>,
        summary: impl Into<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status: Status::Warn,
            check: check.into(),
            summary: summary.into(),
            why: Some(why.into()),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(
        check: impl Into<String>,
        summary: impl Into<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status: Status::Fail,
            ..Finding::warn(check, summary, why, fix)
        }
    }
}

/// The session line the package's pam-auth-update profile installs (debian/
/// pam-cgroup.pam-auth-update): what doctor suggests, so a fix matches a packaged install.
pub const PACKAGE_PAM_LINE: &str =
    "session [success=ok ignore=ignore module_unknown=ignore default=bad] pam_cgroup.so";

/// The PAM services whose stacks must call the module.
pub const DEFAULT_SERVICES: &[&str] = &["sshd", "su", "sudo", "cron", "login"];

/// Where doctor looks.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub config: PathBuf,
    /// The proc filesystem (`/proc`): its `self/mountinfo` shows the cgroup2 and /proc mounts.
    pub proc_root: PathBuf,
    pub pam_dir: PathBuf,
    pub services: Vec<String>,
    /// logind.conf; drop-ins are read from `<path>.d/*.conf`.
    pub logind_conf: PathBuf,
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs {
            config: PathBuf::from(crate::config::DEFAULT_CONFIG_PATH),
            proc_root: PathBuf::from("/proc"),
            pam_dir: PathBuf::from("/etc/pam.d"),
            services: DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect(),
            logind_conf: PathBuf::from(logind::DEFAULT_CONF),
        }
    }
}

/// The checks of `cgroupctl check`: every check of the config files and of what they say
/// (the first part of `run`), and the config in use (the file's or its last good copy).
pub fn check_config(
    config: &std::path::Path,
    keep: crate::config::last_good::Keep,
) -> (Vec<Finding>, Option<crate::config::Config>) {
    let mut out = Vec::new();
    // Without a mount table (a chroot without /proc) the tree-root check says it cannot tell.
    let mounts = crate::mount::cgroup2_mounts().unwrap_or_default();
    let config = config_checks::check_config(config, &mounts, keep, &mut out);
    (out, config)
}

/// Runs every check, in the order an administrator fixes things: kernel, config, tree,
/// private IPs, /proc, PAM stacks, logind.
pub fn run(inputs: &Inputs) -> Vec<Finding> {
    let mut out = Vec::new();
    let mounts = kernel::check_cgroup2(inputs, &mut out);
    let keep = crate::config::last_good::Keep::as_root(crate::config::last_good::Keep::Settled);
    let config = config_checks::check_config(&inputs.config, &mounts, keep, &mut out);
    if let Some(config) = &config {
        config_checks::check_tree(config, &mounts, &mut out);
        fence::check(inputs, config, &mounts, &mut out);
    }
    kernel::check_hidepid(inputs, config.as_ref(), &mut out);
    stacks::check_pam(inputs, &mut out);
    out.push(logind::check_remove_ipc(&inputs.logind_conf));
    out.extend(nss_cost::check(Path::new(nss_cost::NSSWITCH)));
    out
}
