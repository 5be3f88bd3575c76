//! Every fixed path of pam_cgroup, in one place: what the package installs or creates, what
//! the kernel offers, and the names of the files kept in the state directories. A path named
//! here is the only spelling of it in the code; debian/ and the man pages name the same ones.

use std::path::{Component, Path};

/// The config file (`pam_cgroup.conf(5)`); the PAM module's `config=` and `--config` override it.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/pam_cgroup/config.toml";

/// Root-only runtime state (locks, the "reported once" memory, the metrics socket), gone at
/// reboot like the sessions it serialises.
pub const RUN_DIR: &str = "/run/pam_cgroup";

/// The per-user lock file in `RUN_DIR` under which a login counts sessions and makes its leaf.
/// `user` must have been validated.
pub fn sessions_lock_name(user: &str) -> String {
    format!("sessions-{user}.lock")
}

/// The per-user lock file in `RUN_DIR` under which a leaf's fault counts are carried.
/// `user` must have been validated.
pub fn carry_lock_name(user: &str) -> String {
    format!("carry-{user}.lock")
}

/// Root-only persistent state (the tree key, last good config copies, the event history);
/// the package's location (debian/postrm purges it).
pub const STATE_DIR: &str = "/var/lib/pam_cgroup";

/// The tree key's file name in `STATE_DIR` (`crate::tree::key`).
pub const TREE_KEY_FILE: &str = "tree-key";

/// Prefixes of the last good copies in `STATE_DIR`, followed by the escaped config path
/// (`crate::config::last_good`): the config file, the directory of user files, and the
/// `[policy]` file a 0.2.0 kept (read and removed only).
pub const LAST_GOOD_CONFIG_PREFIX: &str = "last-good@";
pub const LAST_GOOD_USERS_PREFIX: &str = "last-good-users@";
pub const LAST_GOOD_POLICY_PREFIX: &str = "last-good-policy@";

/// Where older versions kept fault events (`[events] history_dir`): imported once, then removed.
pub const DEFAULT_HISTORY_DIR: &str = "/var/lib/pam_cgroup/events";

/// Where the daemon keeps the usage history when the config does not say (`[history]
/// database`): one SQLite file (and its -wal and -shm) in the root-only state directory.
pub const DEFAULT_HISTORY_DATABASE: &str = "/var/lib/pam_cgroup/history.db";

/// The daemon's metrics socket (`cgroupctl stats` asks it; root-only, in `RUN_DIR`).
pub const METRICS_SOCKET: &str = "/run/pam_cgroup/metrics.sock";

/// The daemon's socket for customers' `cgroupctl me` (a directory of its own: customers may
/// connect to it, never to anything in `RUN_DIR`).
pub const ME_SOCKET: &str = "/run/pam_cgroup-me/me.sock";

/// Serializes check-then-mount of bpffs between concurrent `cgroupctl init` runs. In /run
/// itself (root-only, 0755), not /run/lock (1777: any user could plant a symlink there).
pub const BPFFS_MOUNT_LOCK: &str = "/run/pam_cgroup-bpffs.lock";

/// Where bpffs lives by convention (systemd and iproute2 use it too).
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";

/// Name of the tree root inside the cgroup2 mount when the config does not set one.
pub const DEFAULT_ROOT_NAME: &str = "pam_cgroup";

/// The mounts of this process's mount namespace.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The cgroup files the kernel allows to delegate (`crate::tree::delegation`).
pub const DELEGATE_LIST: &str = "/sys/kernel/cgroup/delegate";

/// Syntax check of a configured tree root: absolute, no `.`/`..`, not `/`. Used by the config
/// parser (a wrong root is a config error) and when the tree is located.
pub fn check_root_syntax(root: &Path) -> std::result::Result<(), &'static str> {
    if !root.is_absolute() {
        return Err("must be an absolute path");
    }
    // Path::components() silently drops "." and "//": check the text itself.
    let text = root.to_string_lossy();
    if text
        .split('/')
        .skip(1)
        .any(|seg| seg == "." || seg == ".." || seg.is_empty())
        && text != "/"
    {
        return Err("must not contain '.', '..' or empty components");
    }
    let mut normal = 0;
    for c in root.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(_) => normal += 1,
            _ => return Err("must not contain '.' or '..'"),
        }
    }
    if normal == 0 {
        return Err("must not be '/'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_syntax() {
        assert!(check_root_syntax(Path::new("relative/x")).is_err());
        assert!(check_root_syntax(Path::new("/a/../b")).is_err());
        assert!(check_root_syntax(Path::new("/a/./b")).is_err());
        assert!(check_root_syntax(Path::new("/")).is_err());
        assert!(check_root_syntax(Path::new("/sys/fs/cgroup/x")).is_ok());
    }

    #[test]
    fn run_and_state_paths_are_inside_their_directories() {
        assert_eq!(Path::new(METRICS_SOCKET).parent(), Some(Path::new(RUN_DIR)));
        assert_eq!(
            Path::new(DEFAULT_HISTORY_DIR).parent(),
            Some(Path::new(STATE_DIR))
        );
        assert_eq!(
            Path::new(DEFAULT_HISTORY_DATABASE).parent(),
            Some(Path::new(STATE_DIR))
        );
    }
}
