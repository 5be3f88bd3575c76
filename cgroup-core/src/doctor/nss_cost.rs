//! What the host's NSS makes a login pay for group lookups. The module looks up the user's
//! groups at every login whose config names groups (plans, exempt groups), and its primary
//! group always; with Debian's default `group: files systemd` each lookup also asks systemd's
//! userdb over varlink, which costs far more than the files. Reported as INFO with the time
//! measured on this host, so an administrator can weigh it.

use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::unistd::{getgrouplist, Gid};

use super::Finding;

pub const NSSWITCH: &str = "/etc/nsswitch.conf";

/// The sources of the `group:` line of an nsswitch.conf, `[...]` actions left out.
pub fn group_sources(nsswitch: &str) -> Vec<String> {
    nsswitch
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .find_map(|l| l.trim().strip_prefix("group:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter(|w| !w.starts_with('['))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Median wall time of `runs` getgrouplist calls. The name is nobody's: every source is asked
/// in full (root and nobody are answered early by systemd's source, a customer is not).
fn measure_getgrouplist(runs: usize) -> Option<Duration> {
    let name = CString::new("pam-cgroup-doctor-probe").ok()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        getgrouplist(&name, Gid::from_raw(0)).ok()?;
        times.push(t.elapsed());
    }
    times.sort();
    times.get(times.len() / 2).copied()
}

pub(super) fn check(nsswitch: &Path) -> Option<Finding> {
    let text = std::fs::read_to_string(nsswitch).ok()?;
    let sources = group_sources(&text);
    if !sources.iter().any(|s| s == "systemd") {
        return None;
    }
    let took = measure_getgrouplist(7)?;
    Some(Finding::info(
        "nss group lookups",
        format!(
            "group: {} in {}: one getgrouplist took {} µs here (median of 7)",
            sources.join(" "),
            nsswitch.display(),
            took.as_micros()
        ),
        "every login looks up the user's primary group, and all its groups when the config names groups ([groups], exempt_groups); the systemd source asks systemd's userdb over varlink at each lookup, which can cost several times what the files do (/usr/share/doc/pam-cgroup/performance.md, \"NSS group lookups\")",
        "nothing, if the time is acceptable; systemd's source resolves the groups of DynamicUser= services, so drop it from the group: line only where no login needs those",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_line_sources() {
        let conf = "# comment group: x\npasswd: files systemd\ngroup:          files [SUCCESS=merge] systemd # dyn\nshadow: files\n";
        assert_eq!(group_sources(conf), vec!["files", "systemd"]);
        assert!(group_sources("passwd: files\n").is_empty());
    }
}
