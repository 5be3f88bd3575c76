//! Every process of a confined customer is in its fence: the safety net's state (the
//! `[policy]` switch and the daemon that runs it) and any process of a confined uid found
//! outside `users/<user>/` (the same scan as the daemon's sweep: a walk of the cgroups outside the
//! fences, then a listing of /proc; `strays::scan`).

use std::path::Path;

use crate::config::Config;
use crate::mount::Cgroup2Mount;
use crate::strays::{self, Confinement, Stray};
use crate::tree::Tree;

use super::{Finding, Inputs};

/// Strays listed in full before the rest are counted.
const LISTED: usize = 10;

pub(super) fn check(
    inputs: &Inputs,
    config: &Config,
    mounts: &[Cgroup2Mount],
    out: &mut Vec<Finding>,
) {
    let daemon = running_daemon(&inputs.proc_root, &inputs.config);
    out.push(safety_net_finding(config.policy.safety_net, daemon));
    let Ok(tree) = Tree::locate_in(mounts, config.tree.root.as_deref()) else {
        return;
    };
    let mut who = Confinement::new(config.policy.clone());
    let (found, problems) = strays::scan(&inputs.proc_root, &tree, &mut who);
    for p in problems {
        out.push(Finding::warn(
            "fence",
            format!("some processes could not be checked: {p}"),
            "matters while NSS cannot answer: a process whose user cannot be resolved cannot be told confined or not",
            "check NSS (nsswitch.conf, sssd) and run doctor again",
        ));
    }
    out.push(strays_finding(&found));
}

fn safety_net_finding(on: bool, daemon: Option<u32>) -> Finding {
    match (on, daemon) {
        (true, Some(pid)) => Finding::ok(
            "safety-net",
            format!("on; the daemon runs (pid {pid}) and moves processes switched to a customer's uid into its fence"),
        ),
        (true, None) => Finding::fail(
            "safety-net",
            "on, but `cgroupctl daemon` is not running",
            "a process a root daemon switches to a customer's uid (PHP-FPM, suexec, runuser) stays outside the customer's fence: its limits, private IP and levers",
            "systemctl enable --now pam-cgroup (the packaged unit runs `cgroupctl daemon`)",
        ),
        (false, _) => Finding::warn(
            "safety-net",
            "off ([policy] safety_net = false)",
            "matters as soon as a root daemon switches to a customer's uid (PHP-FPM, suexec, runuser): that process stays where the daemon runs, outside the customer's fence, limits and private IP",
            "remove safety_net = false from [policy] (or set it to true) and reload the daemon",
        ),
    }
}

fn strays_finding(found: &[Stray]) -> Finding {
    if found.is_empty() {
        return Finding::ok(
            "fence",
            "every process of a confined user is inside its fence",
        );
    }
    let mut listed: Vec<String> = found
        .iter()
        .take(LISTED)
        .map(|s| {
            let origin = s
                .origin
                .as_deref()
                .map(|o| format!(", from {o}"))
                .unwrap_or_default();
            format!("pid {} ({}) in {}{origin}", s.pid, s.user, s.cgroup)
        })
        .collect();
    if found.len() > LISTED {
        listed.push(format!("and {} more", found.len() - LISTED));
    }
    Finding::fail(
        "fence",
        format!(
            "{} process(es) of confined users outside their fence: {}",
            found.len(),
            listed.join("; ")
        ),
        "they run outside the customer's limits and private-IP rules and out of reach of suspend, freeze and kill",
        "start `cgroupctl daemon` (its safety net moves them), or move one with `cgroupctl classify PID --user USER`",
    )
}

/// The pid of a running `cgroupctl daemon` of the config `config`, if any: root's. Anybody
/// may run a process whose command line reads `cgroupctl daemon` (`exec -a`), so a customer's
/// would make doctor say the safety net runs while the daemon is down. (Not the owner of
/// /proc/PID: a process that makes itself non-dumpable shows it as root's.)
fn running_daemon(proc_root: &Path, config: &Path) -> Option<u32> {
    for pid in strays::pids(proc_root).ok()? {
        let Ok(cmdline) = std::fs::read(proc_root.join(pid.to_string()).join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if is_daemon_of(&args, config) && is_roots(proc_root, pid) {
            return Some(pid);
        }
    }
    None
}

/// Is the process root's by its real uid (`status`, which its owner cannot change)?
fn is_roots(proc_root: &Path, pid: u32) -> bool {
    let status = proc_root.join(pid.to_string()).join("status");
    crate::tree::fs::read_proc_file(&status)
        .ok()
        .and_then(|s| crate::inventory::status_ids(&s, "Uid:"))
        .is_some_and(|ids| ids[0] == 0)
}

/// Is this command line `cgroupctl [--config PATH] daemon ...` of `config`?
fn is_daemon_of(args: &[&[u8]], config: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let is_cgroupctl = args
        .first()
        .and_then(|a| a.rsplit(|b| *b == b'/').next())
        .is_some_and(|name| name == b"cgroupctl");
    let Some(verb) = args.iter().position(|a| *a == b"daemon") else {
        return false;
    };
    let global = &args[1..verb];
    let given = global
        .iter()
        .position(|a| *a == b"--config")
        .and_then(|i| global.get(i + 1).copied())
        .or_else(|| global.iter().find_map(|a| a.strip_prefix(b"--config=")))
        .unwrap_or(crate::config::DEFAULT_CONFIG_PATH.as_bytes());
    is_cgroupctl && given == config.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn the_safety_net_off_or_without_its_daemon_is_reported() {
        assert_eq!(safety_net_finding(true, Some(7)).status, Status::Ok);
        assert_eq!(safety_net_finding(true, None).status, Status::Fail);
        assert_eq!(safety_net_finding(false, Some(7)).status, Status::Warn);
    }

    #[test]
    fn daemons_are_told_by_their_config() {
        let conf = Path::new("/etc/pam_cgroup/config.toml");
        let line =
            |s: &'static str| -> Vec<&'static [u8]> { s.split(' ').map(str::as_bytes).collect() };
        assert!(is_daemon_of(
            &line("/usr/bin/cgroupctl daemon --listen x"),
            conf
        ));
        assert!(is_daemon_of(
            &line("cgroupctl --config /etc/pam_cgroup/config.toml daemon"),
            conf
        ));
        assert!(!is_daemon_of(
            &line("cgroupctl --config /tmp/c.toml daemon"),
            conf
        ));
        assert!(!is_daemon_of(&line("cgroupctl show daemon-x"), conf));
        assert!(!is_daemon_of(&line("/usr/bin/vim daemon"), conf));
    }

    #[test]
    fn a_customers_process_named_like_the_daemon_is_not_the_daemon() {
        let proc_root = tempfile::tempdir().unwrap();
        for (pid, uid) in [(41, 2001), (42, 0)] {
            let dir = proc_root.path().join(pid.to_string());
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("cmdline"), b"cgroupctl\0daemon\0").unwrap();
            std::fs::write(
                dir.join("status"),
                format!("Name:\tsleep\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
            )
            .unwrap();
        }
        let conf = Path::new(crate::config::DEFAULT_CONFIG_PATH);
        // `exec -a cgroupctl sleep inf daemon` by a customer: not the daemon; root's is.
        assert_eq!(running_daemon(proc_root.path(), conf), Some(42));
        std::fs::remove_dir_all(proc_root.path().join("42")).unwrap();
        assert_eq!(running_daemon(proc_root.path(), conf), None);
    }

    #[test]
    fn strays_are_listed_with_their_origin() {
        let f = strays_finding(&[Stray {
            pid: 42,
            uid: 1001,
            user: "alice".into(),
            cgroup: "/system.slice/php8.2-fpm.service".into(),
            origin: Some("systemd unit php8.2-fpm.service".into()),
        }]);
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains(
            "pid 42 (alice) in /system.slice/php8.2-fpm.service, from systemd unit php8.2-fpm.service"
        ));
        assert_eq!(strays_finding(&[]).status, Status::Ok);
    }
}
