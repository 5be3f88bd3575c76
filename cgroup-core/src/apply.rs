//! Applying the configuration to a live user cgroup without a new login: what `cgroupctl set`,
//! `reload` and the daemon's SIGHUP do. It runs the same preparation as a login
//! (`user_apply::prepare_user_cgroup`: ownership, controllers, subtree caps), writes the
//! effective limits, resets limits the config no longer sets to the kernel's defaults (the
//! config is the single source of truth), and reports every file whose value changed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::cgroup_files;
use crate::config::{Config, EffectiveLimits};
use crate::error::Result;
use crate::limits::{Controller, LimitKey};
use crate::nss::UserInfo;
use crate::policy::{self, Decision};
use crate::tree::stamp::Stamp;
use crate::tree::user_cgroup::UserCgroup;
use crate::tree::Tree;
use crate::user_apply::{desired_fingerprint, prepare_user_cgroup};

/// Files a reload may change besides the limits: the root-owned subtree caps.
const CAP_FILES: &[&str] = &[cgroup_files::MAX_DESCENDANTS, cgroup_files::MAX_DEPTH];

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Written, and the value differs from before.
    Changed,
    /// Written (or already right), same value.
    Unchanged,
    /// The config sets it, but its controller is not enabled here: not applied.
    Unavailable,
    /// The config no longer sets it: back to the kernel's default.
    Reset,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub file: String,
    /// Value before (`None`: the file does not exist here).
    pub old: Option<String>,
    /// Value after; for `Unavailable`, the value the config asks for.
    pub new: Option<String>,
    pub status: ChangeStatus,
    /// The controller a limit needs, for `Unavailable`.
    pub controller: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    pub user: String,
    pub path: PathBuf,
    /// Why the user is not confined, when it is not (nothing was touched then).
    pub exempt: Option<String>,
    /// The user had no live cgroup and `create` was false: nothing was touched.
    pub live: bool,
    pub profile: Option<String>,
    pub files: Vec<FileChange>,
}

impl ApplyReport {
    pub fn changed(&self) -> impl Iterator<Item = &FileChange> {
        self.files
            .iter()
            .filter(|f| matches!(f.status, ChangeStatus::Changed | ChangeStatus::Reset))
    }
}

/// The kernel's value of a limit file in a fresh cgroup, written to undo a limit the config no
/// longer sets. io.max is per device: see `reset_lines`.
fn default_value(key: LimitKey) -> Option<&'static str> {
    match key {
        LimitKey::MemoryMax | LimitKey::MemoryHigh | LimitKey::MemorySwapMax => Some("max"),
        LimitKey::MemoryLow => Some("0"),
        LimitKey::CpuMax => Some("max 100000"),
        LimitKey::CpuWeight => Some("100"),
        LimitKey::PidsMax => Some("max"),
        LimitKey::IoWeight => Some("default 100"),
        LimitKey::IoMax => None,
    }
}

/// Lines that bring a limit file from `current` back to the kernel default.
fn reset_lines(key: LimitKey, current: &str) -> Vec<String> {
    match default_value(key) {
        Some(v) => vec![v.to_string()],
        // io.max shows one line per limited device; "MAJ:MIN rbps=max ..." lifts them.
        None => current
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(|dev| format!("{dev} rbps=max wbps=max riops=max wiops=max"))
            .collect(),
    }
}

/// Normalized text of a file for comparison and display (lines joined by "; ").
fn normalize(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn snapshot(dir: Option<&UserCgroup>) -> Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    let names = LimitKey::ALL
        .iter()
        .map(|k| k.file_name())
        .chain(CAP_FILES.iter().copied());
    for name in names {
        let value = match dir {
            Some(d) if d.has(name) => Some(normalize(&d.read(name)?)),
            _ => None,
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// Applies `config` to the cgroup of `user`. With `create` false a user without a live cgroup
/// is left alone (its next login applies the config).
pub fn apply_user(
    tree: &Tree,
    config: &Config,
    user: &UserInfo,
    create: bool,
) -> Result<ApplyReport> {
    apply_user_open(tree, config, user, create).map(|(report, _)| report)
}

/// `apply_user`, handing back the user cgroup it applied (none when it touched nothing), so
/// that the caller does not open it again.
pub fn apply_user_open(
    tree: &Tree,
    config: &Config,
    user: &UserInfo,
    create: bool,
) -> Result<(ApplyReport, Option<UserCgroup>)> {
    let dir = tree.user_dir(&user.name)?;
    let (exempt, groups) = match policy::decide_user(&config.policy, Some(config), user.clone())? {
        // The report still names the plan the user would have.
        Decision::Exempt(reason) => (Some(reason), crate::nss::group_names(user)?),
        Decision::Confined { groups, .. } => (None, groups),
    };
    let user_file = config.load_user_file(&user.name)?;
    let effective = config.effective_limits(&groups, user_file.as_ref());
    let mut report = ApplyReport {
        user: user.name.clone(),
        path: dir.clone(),
        exempt,
        live: dir.is_dir(),
        profile: effective.profile.clone(),
        files: Vec::new(),
    };
    if report.exempt.is_some() {
        return Ok((report, None));
    }
    if !report.live && !create {
        // No cgroup of its own yet, but a legacy `users/<user>` a 0.1.0 customer owns is
        // taken back now (the package's reload at upgrade), not at the user's next login.
        if let Some(legacy) = UserCgroup::open_legacy(tree, &user.name)? {
            legacy.secure(tree, user.group_access())?;
            write_effective(&legacy, &effective)?;
        }
        return Ok((report, None));
    }
    let existing = UserCgroup::open(tree, &user.name)?;
    let before = snapshot(existing.as_ref())?;
    let user_cgroup = match existing {
        Some(u) => u,
        None => UserCgroup::open_or_create(tree, &user.name)?,
    };
    let access = user.group_access();
    // A failure half way must not leave a stamp that says "applied".
    user_cgroup.clear_stamp()?;
    prepare_user_cgroup(tree, config, user, &user_cgroup, access)?;
    report.live = true;
    let available = user_cgroup.available_controllers()?;
    let mut unavailable = Vec::new();
    let mut skipped = Vec::new();
    for key in LimitKey::ALL {
        let controller: Controller = key.controller();
        let wanted = effective.limits.get(&key).map(|r| &r.limit);
        if !available.contains(&controller) {
            if let Some(limit) = wanted {
                skipped.push(key);
                unavailable.push(FileChange {
                    file: key.file_name().to_string(),
                    old: before.get(key.file_name()).cloned().flatten(),
                    new: Some(limit.lines.join("; ")),
                    status: ChangeStatus::Unavailable,
                    controller: Some(controller.name().to_string()),
                });
            }
            continue;
        }
        let lines = match wanted {
            Some(limit) => limit.lines.clone(),
            None => {
                let current = user_cgroup.read(key.file_name())?;
                reset_lines(key, &current)
            }
        };
        for line in &lines {
            user_cgroup.write(key.file_name(), line)?;
        }
    }
    // A legacy `users/<user>` still holding sessions from before an upgrade follows too
    // (`user_apply::apply_user_cgroup` says why).
    if let Some(legacy) = UserCgroup::open_legacy(tree, &user.name)? {
        write_effective(&legacy, &effective)?;
    }
    // What a login would have written: its fast path now knows this is applied, and a later
    // change of the config (even one written with `set --no-apply`) is seen as a change.
    user_cgroup.set_stamp(&Stamp {
        fingerprint: desired_fingerprint(config, user, access, &effective),
        skipped,
    });
    let after = snapshot(Some(&user_cgroup))?;
    for (file, new) in &after {
        let old = before.get(file).cloned().flatten();
        let key = LimitKey::from_file_name(file);
        if key
            .map(|k| !available.contains(&k.controller()))
            .unwrap_or(false)
        {
            continue;
        }
        let status = if old == *new {
            ChangeStatus::Unchanged
        } else if key
            .map(|k| !effective.limits.contains_key(&k))
            .unwrap_or(false)
        {
            ChangeStatus::Reset
        } else {
            ChangeStatus::Changed
        };
        report.files.push(FileChange {
            file: file.clone(),
            old,
            new: new.clone(),
            status,
            controller: None,
        });
    }
    report.files.extend(unavailable);
    report.files.sort_by(|a, b| a.file.cmp(&b.file));
    Ok((report, Some(user_cgroup)))
}

/// Every limit of `effective` written to `dir`, the others reset to the kernel's default, where
/// `dir`'s controllers allow.
fn write_effective(dir: &UserCgroup, effective: &EffectiveLimits) -> Result<()> {
    let available = dir.available_controllers()?;
    for key in LimitKey::ALL {
        if !available.contains(&key.controller()) {
            continue;
        }
        let lines = match effective.limits.get(&key) {
            Some(limit) => limit.limit.lines.clone(),
            None => reset_lines(key, &dir.read(key.file_name())?),
        };
        for line in &lines {
            dir.write(key.file_name(), line)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets() {
        assert_eq!(reset_lines(LimitKey::MemoryMax, "1024\n"), vec!["max"]);
        assert_eq!(
            reset_lines(LimitKey::IoMax, "8:0 rbps=1 wbps=max riops=max wiops=max\n"),
            vec!["8:0 rbps=max wbps=max riops=max wiops=max"]
        );
        assert!(reset_lines(LimitKey::IoMax, "").is_empty());
    }

    #[test]
    fn normalized_text() {
        assert_eq!(normalize("8:0 a\n8:16 b\n"), "8:0 a; 8:16 b");
        assert_eq!(normalize("max\n"), "max");
    }
}
