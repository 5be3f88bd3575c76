//! `cgroupctl proc-apply [--dry-run]`: remount /proc with the `[proc]` section's
//! `hidepid=` and `gid=`, so that a customer sees only their own processes and the admin group
//! sees all. Run by pam-cgroup.service (ExecStartPre) at every start; idempotent.
//!
//! `hidepid = "off"` (the default) leaves /proc exactly as mounted: pam_cgroup then does not
//! manage the option (an admin may set it in /etc/fstab), so switching from "invisible" back to
//! "off" takes a reboot or `mount -o remount,hidepid=off /proc`.
//!
//! Since Linux 5.8 every procfs mount is its own instance: this changes the /proc of the mount
//! namespace it runs in (the host's, from the unit: the ExecStartPre line has the `+` prefix,
//! so no sandboxing namespace is in the way), not the private /proc of containers or of
//! services with ProtectProc=.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::Group;

use cgroup_core::config::{AdminGroup, Config, ConfigError, HidePid};

use crate::global::GlobalArgs;

const PROC: &str = "/proc";
const MOUNTINFO: &str = "/proc/self/mountinfo";

#[derive(Debug, Args)]
pub struct ProcApplyArgs {
    /// Print the mount options that would be applied, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What /proc is mounted with now, from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcState {
    /// The `hidepid=` super option as the kernel prints it (`invisible`, `ptraceable`, or a
    /// number on old kernels); `None` when absent (= off).
    pub hidepid: Option<String>,
    pub gid: Option<u32>,
}

pub fn run(cli: &GlobalArgs, args: &ProcApplyArgs) -> Result<ExitCode> {
    let config = crate::load::load_config(cli)?;
    let wanted = &config.proc;
    if wanted.hidepid == HidePid::Off {
        println!("[proc] hidepid is off: {PROC} left as mounted");
        return Ok(ExitCode::SUCCESS);
    }
    let gid = resolve_gid(&config)?;
    let options = mount_options(wanted.hidepid, gid);
    let before = current_state()?;
    if args.dry_run {
        println!(
            "would remount {PROC} with {options} (now: {})",
            describe(&before)
        );
        return Ok(ExitCode::SUCCESS);
    }
    remount(&options)?;
    let after = current_state()?;
    if !matches_wanted(&after, wanted.hidepid, gid) {
        bail!(
            "remounted {PROC} with {options}, but the kernel reports {}",
            describe(&after)
        );
    }
    println!("{PROC}: {}", describe(&after));
    Ok(ExitCode::SUCCESS)
}

/// The admin group's gid: a name is looked up now (NSS), so a missing group is an error here,
/// at unit start, and never at a login.
/// A group that does not exist is the config's error (exit code 3), naming the file and key.
pub fn resolve_gid(config: &Config) -> Result<Option<u32>> {
    match &config.proc.admin_group {
        None => Ok(None),
        Some(AdminGroup::Gid(gid)) => Ok(Some(*gid)),
        Some(AdminGroup::Name(name)) => match Group::from_name(name) {
            Ok(Some(group)) => Ok(Some(group.gid.as_raw())),
            Ok(None) => Err(ConfigError::file(
                &config.path,
                format!("proc.group: {name:?}: no such group"),
            )
            .into()),
            Err(e) => Err(anyhow!("proc.group: {name:?}: group lookup failed: {e}")),
        },
    }
}

/// `hidepid=invisible,gid=4`
pub fn mount_options(hidepid: HidePid, gid: Option<u32>) -> String {
    match gid {
        Some(gid) => format!("hidepid={},gid={gid}", hidepid.mount_value()),
        None => format!("hidepid={}", hidepid.mount_value()),
    }
}

/// MS_REMOUNT replaces the per-mount flags with the ones passed: keep the current ones
/// (nosuid, nodev, noexec, ...) or the remount would silently drop them.
fn remount(options: &str) -> Result<()> {
    let st = statvfs(PROC).with_context(|| format!("statvfs {PROC}"))?;
    let have = st.flags();
    let mut flags = MsFlags::MS_REMOUNT;
    let keep = [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    for (st_flag, ms_flag) in keep {
        if have.contains(st_flag) {
            flags |= ms_flag;
        }
    }
    mount(None::<&str>, PROC, None::<&str>, flags, Some(options))
        .with_context(|| format!("mount -o remount,{options} {PROC}"))
}

/// Reads how /proc is mounted now (for `proc-apply` and `doctor`).
pub fn current_state() -> Result<ProcState> {
    let text = std::fs::read_to_string(MOUNTINFO).with_context(|| format!("read {MOUNTINFO}"))?;
    parse_mountinfo(&text, Path::new(PROC))
        .ok_or_else(|| anyhow!("{PROC} is not a procfs mount (read {MOUNTINFO})"))
}

/// The state of the top-most procfs mounted at `at`, from mountinfo text.
pub fn parse_mountinfo(text: &str, at: &Path) -> Option<ProcState> {
    let at = at.to_str()?;
    // A later line for the same mount point is mounted over the earlier ones: it wins.
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let super_options = right.nth(1)?;
            (mount_point == at && fstype == "proc").then(|| state_of(super_options))
        })
        .next_back()
}

fn state_of(super_options: &str) -> ProcState {
    let mut state = ProcState::default();
    for option in super_options.split(',') {
        if let Some(v) = option.strip_prefix("hidepid=") {
            state.hidepid = Some(v.to_string());
        } else if let Some(v) = option.strip_prefix("gid=") {
            state.gid = v.parse().ok();
        }
    }
    state
}

/// Kernels print the word since 5.8 and the number before; accept both.
pub fn matches_wanted(state: &ProcState, hidepid: HidePid, gid: Option<u32>) -> bool {
    let shown = state.hidepid.as_deref().unwrap_or("off");
    let same = match hidepid {
        HidePid::Off => matches!(shown, "off" | "0"),
        HidePid::Invisible => matches!(shown, "invisible" | "2"),
        HidePid::Ptraceable => matches!(shown, "ptraceable" | "4"),
    };
    // Without a configured group, whatever gid= the mount had stays: not ours to judge.
    same && (gid.is_none() || state.gid == gid)
}

pub fn describe(state: &ProcState) -> String {
    let hidepid = state.hidepid.as_deref().unwrap_or("off");
    match state.gid {
        Some(gid) => format!("hidepid={hidepid},gid={gid}"),
        None => format!("hidepid={hidepid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_TEXT: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
23 22 0:22 / /proc/sys/fs/binfmt_misc rw,relatime shared:13 - autofs systemd-1 rw,fd=30
40 22 0:35 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw,gid=4,hidepid=invisible
";

    #[test]
    fn top_most_proc_mount_wins() {
        let s = parse_mountinfo(MOUNTINFO_TEXT, Path::new("/proc")).unwrap();
        assert_eq!(s.hidepid.as_deref(), Some("invisible"));
        assert_eq!(s.gid, Some(4));
        assert!(matches_wanted(&s, HidePid::Invisible, Some(4)));
        assert!(!matches_wanted(&s, HidePid::Invisible, Some(5)));
        assert!(!matches_wanted(&s, HidePid::Ptraceable, None));
    }

    #[test]
    fn plain_proc_is_off() {
        let first = MOUNTINFO_TEXT.lines().next().unwrap();
        let s = parse_mountinfo(first, Path::new("/proc")).unwrap();
        assert_eq!(s, ProcState::default());
        assert_eq!(describe(&s), "hidepid=off");
        assert!(matches_wanted(&s, HidePid::Off, None));
    }

    #[test]
    fn non_proc_mount_point_is_none() {
        assert_eq!(parse_mountinfo(MOUNTINFO_TEXT, Path::new("/sys")), None);
        let tmpfs = "30 1 0:40 / /proc rw - tmpfs tmpfs rw\n";
        assert_eq!(parse_mountinfo(tmpfs, Path::new("/proc")), None);
    }

    #[test]
    fn old_numeric_spelling_matches() {
        let s = ProcState {
            hidepid: Some("2".into()),
            gid: None,
        };
        assert!(matches_wanted(&s, HidePid::Invisible, None));
    }

    #[test]
    fn options_text() {
        assert_eq!(
            mount_options(HidePid::Invisible, Some(4)),
            "hidepid=invisible,gid=4"
        );
        assert_eq!(
            mount_options(HidePid::Ptraceable, None),
            "hidepid=ptraceable"
        );
    }
}
