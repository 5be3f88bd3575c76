//! `check`, `init` and `reload` keep the policy of the config they just validated, so that a
//! later typo in it cannot change who gets in (see cgroup_core::config::last_good).

use cgroup_core::config::{last_good, Config};

/// Keeps `config`'s policy; a failure is a warning on stderr, never the command's failure.
/// Only root can write the state directory: others (a `check` run by a user) skip it.
pub fn keep(config: &Config) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    if let Err(e) = last_good::store(config) {
        eprintln!("cgroupctl: warning: the last valid policy was not kept: {e}");
    }
}
