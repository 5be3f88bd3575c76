//! Kernel-side checks: the cgroup2 mount, its controllers, and /proc's hidepid.

use std::path::{Path, PathBuf};

use super::{Finding, Inputs};
use crate::cgroup_files;
use crate::config::Config;
use crate::limits::Controller;
use crate::mount::{parse_cgroup2_mounts, Cgroup2Mount};

fn mountinfo(inputs: &Inputs) -> (PathBuf, Option<String>) {
    let path = inputs.proc_root.join("self/mountinfo");
    let text = std::fs::read_to_string(&path).ok();
    (path, text)
}

/// The cgroup2 mount and its controllers. Returns the mounts for the tree checks.
pub(super) fn check_cgroup2(inputs: &Inputs, out: &mut Vec<Finding>) -> Vec<Cgroup2Mount> {
    let (path, text) = mountinfo(inputs);
    let Some(text) = text else {
        out.push(Finding::fail(
            "cgroup2",
            format!("cannot read {}", path.display()),
            "without the mount table nothing about cgroups can be checked",
            "run doctor as root on the host (not in a container without /proc)",
        ));
        return Vec::new();
    };
    let mounts = parse_cgroup2_mounts(&text);
    let Some(first) = mounts.first() else {
        out.push(Finding::fail(
            "cgroup2",
            "no cgroup2 filesystem is mounted",
            "pam_cgroup needs cgroup v2: every login is left unconfined (on_error=open) or refused (on_error=closed)",
            "mount it (mount -t cgroup2 none /sys/fs/cgroup/unified) or boot with systemd.unified_cgroup_hierarchy=1",
        ));
        return mounts;
    };
    out.push(Finding::ok(
        "cgroup2",
        format!("mounted at {}", first.mount_point.display()),
    ));
    out.push(check_controllers(&first.mount_point, &text));
    out.push(check_favordynmods(&first.mount_point, &text));
    mounts
}

/// Does the cgroup2 mount at `mount_point` carry `favordynmods` (its super options)?
pub fn favordynmods(mountinfo: &str, mount_point: &Path) -> Option<bool> {
    let target = mount_point.to_string_lossy();
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let f: Vec<&str> = right.split(' ').collect();
        (f.first() == Some(&"cgroup2") && left.split(' ').nth(4) == Some(target.as_ref())).then(
            || {
                f.get(2)
                    .is_some_and(|o| o.split(',').any(|x| x == "favordynmods"))
            },
        )
    })
}

/// favordynmods: an option with a cost, reported either way (INFO).
fn check_favordynmods(mount_point: &Path, mountinfo: &str) -> Finding {
    let why = "each login moves its process into its leaf once; without favordynmods that write waits for an RCU grace period (~8-12 ms after a quiet moment at HZ=250) while holding the host-wide cgroup mutex; with it the wait goes (in the VM an isolated migration took 0.12x as long), and in exchange every fork and exit on the host takes a slower path, a cost the VM could not resolve: measure fork+exit natively first (/usr/share/doc/pam-cgroup/performance.md, \"favordynmods\")";
    match favordynmods(mountinfo, mount_point) {
        Some(true) => Finding::info(
            "cgroup2 favordynmods",
            format!("{} is mounted with favordynmods", mount_point.display()),
            why,
            "nothing to do",
        ),
        _ => Finding::info(
            "cgroup2 favordynmods",
            format!("{} is mounted without favordynmods", mount_point.display()),
            why,
            "optional (kernel 6.0+), after measuring the fork and exit cost on this host: mount -o remount,favordynmods on the cgroup2 mount point (not kept across a reboot)",
        ),
    }
}

/// v1 hierarchies holding a controller (`cgroup` mounts whose options name it).
fn bound_to_v1<'a>(mountinfo: &str, controllers: &[&'a str]) -> Vec<&'a str> {
    controllers
        .iter()
        .copied()
        .filter(|c| {
            mountinfo.lines().any(|l| {
                l.split_once(" - ").is_some_and(|(_, right)| {
                    let f: Vec<&str> = right.split(' ').collect();
                    f.first() == Some(&"cgroup")
                        && f.get(2).is_some_and(|o| o.split(',').any(|x| x == *c))
                })
            })
        })
        .collect()
}

fn check_controllers(mount_point: &Path, mountinfo: &str) -> Finding {
    let offered =
        std::fs::read_to_string(mount_point.join(cgroup_files::CONTROLLERS)).unwrap_or_default();
    let missing: Vec<&str> = Controller::ALL
        .iter()
        .map(|c| c.name())
        .filter(|c| !offered.split_whitespace().any(|o| o == *c))
        .collect();
    if missing.is_empty() {
        return Finding::ok(
            "controllers",
            format!("cpu, io, memory, pids offered at {}", mount_point.display()),
        );
    }
    let v1 = bound_to_v1(mountinfo, &missing);
    let fix = if v1.is_empty() {
        "enable them in the kernel (CONFIG_MEMCG, CONFIG_CGROUP_PIDS, CONFIG_CFS_BANDWIDTH, CONFIG_BLK_CGROUP)".to_string()
    } else {
        format!(
            "{} are bound to cgroup v1 hierarchies on this hybrid host: boot with systemd.unified_cgroup_hierarchy=1 (or cgroup_no_v1={})",
            v1.join(", "),
            v1.join(",")
        )
    };
    Finding::fail(
        "controllers",
        format!("controllers {} are not available in the cgroup2 hierarchy at {}", missing.join(", "), mount_point.display()),
        "limits that need them (memory.*, cpu.*, pids.*, io.*) are not enforced: logins get in without them",
        fix,
    )
}

/// The `hidepid=` option of the /proc mount, from mountinfo's super options.
pub fn proc_hidepid(mountinfo: &str) -> Option<(String, Option<String>)> {
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let fs: Vec<&str> = right.split(' ').collect();
        if fields.get(4) != Some(&"/proc") || fs.first() != Some(&"proc") {
            continue;
        }
        let opts: Vec<&str> = fs
            .get(2)
            .map(|o| o.split(',').collect())
            .unwrap_or_default();
        let hidepid = opts
            .iter()
            .find_map(|o| o.strip_prefix("hidepid="))
            .unwrap_or("off")
            .to_string();
        let gid = opts
            .iter()
            .find_map(|o| o.strip_prefix("gid="))
            .map(str::to_string);
        return Some((hidepid, gid));
    }
    None
}

pub(super) fn check_hidepid(inputs: &Inputs, config: Option<&Config>, out: &mut Vec<Finding>) {
    let (path, text) = mountinfo(inputs);
    let Some((hidepid, gid)) = text.as_deref().and_then(proc_hidepid) else {
        out.push(Finding::warn(
            "hidepid",
            format!("no /proc mount found in {}", path.display()),
            "matters on shared hosting: whether users can see each other's processes cannot be told",
            "check `findmnt /proc`",
        ));
        return;
    };
    let wanted = config
        .map(|c| c.proc.hidepid.mount_value())
        .unwrap_or("off");
    let turn_on = "set [proc] hidepid = \"invisible\" and group = \"<admins>\" in the config, then `cgroupctl proc-apply` (or mount -o remount,hidepid=invisible,gid=<admins> /proc)";
    let gid_note = gid
        .map(|g| format!(", gid={g} sees all"))
        .unwrap_or_default();
    match (hidepid.as_str(), wanted) {
        ("invisible" | "2" | "ptraceable" | "4", _) => out.push(Finding::ok(
            "hidepid",
            format!("/proc is mounted with hidepid={hidepid}{gid_note}"),
        )),
        // The config asks for hiding and /proc does not have it: not what the admin set up.
        (_, w) if w != "off" => out.push(Finding::fail(
            "hidepid",
            format!("the config asks for [proc] hidepid = \"{w}\" but /proc is mounted with hidepid={hidepid}"),
            "customers see each other's processes, command lines and owners, although the config says they must not",
            "run `cgroupctl proc-apply` (applies [proc] now; the packaged unit applies it at boot)",
        )),
        ("noaccess" | "1", _) => out.push(Finding::warn(
            "hidepid",
            format!("/proc is mounted with hidepid={hidepid}{gid_note} (not from this config)"),
            "matters when customers must not learn which PIDs and owners exist: they cannot read each other's /proc/PID, but still list them",
            turn_on,
        )),
        // The shipped default: off, documented (pam_cgroup.conf(5) [proc]).
        _ => out.push(Finding::info(
            "hidepid",
            "/proc is mounted without hidepid, as the config's [proc] hidepid = \"off\" (the shipped default) says",
            "every user sees every process, its command line and owner: this matters on shared hosting where customers must not see each other",
            turn_on,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidepid_from_mountinfo() {
        let on = "22 1 0:5 / /proc rw,nosuid - proc proc rw,hidepid=invisible,gid=4\n";
        assert_eq!(
            proc_hidepid(on),
            Some(("invisible".into(), Some("4".into())))
        );
        let off = "22 1 0:5 / /proc rw,nosuid - proc proc rw\n";
        assert_eq!(proc_hidepid(off), Some(("off".into(), None)));
        assert_eq!(proc_hidepid("1 2 0:1 / /x rw - ext4 /dev/sda rw\n"), None);
    }

    #[test]
    fn favordynmods_from_mountinfo() {
        let on = "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,favordynmods,memory_recursiveprot\n";
        let off = "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let at = Path::new("/sys/fs/cgroup");
        assert_eq!(favordynmods(on, at), Some(true));
        assert_eq!(favordynmods(off, at), Some(false));
        assert_eq!(favordynmods(on, Path::new("/sys/fs/cgroup/unified")), None);
    }

    #[test]
    fn v1_bound_controllers() {
        let mi = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(bound_to_v1(mi, &["memory", "pids"]), vec!["memory"]);
    }
}
