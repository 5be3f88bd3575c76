//! Where each customer stands, as every verb that lists customers shows it (`list`, `show`,
//! `sessions`, `top` and their JSON): its life-cycle state, plan, usage and limits.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use cgroup_core::config::{Config, Suspension};
use cgroup_core::inventory::{session_and_service_counts, user_cgroups, FoundUserCgroup};
use cgroup_core::levers;
use cgroup_core::nss::{group_names, lookup_user};
use cgroup_core::stats::{read_user_stats, CgroupStats, MaxValue};
use cgroup_core::time::parse_since;
use cgroup_core::tree::dirfd::CgroupDir;
use cgroup_core::tree::Tree;

/// Where a customer is in its life cycle, as every verb that lists customers shows it
/// (`list`, `show`, `sessions`, `top` and their JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifeState {
    /// `suspended` (`cgroupctl suspend`: kept in its user file, logins refused), `frozen`
    /// (`cgroupctl freeze`: what runs is stopped, logins still let in) or `active`.
    pub state: &'static str,
    /// While suspended: the reason, and since when (RFC 3339 UTC and epoch seconds).
    pub suspended_reason: Option<String>,
    pub suspended_at: Option<String>,
    pub suspended_epoch: Option<u64>,
}

/// A user's `[suspend]`, if its file has one. A file that cannot be read is not a suspension
/// here (the verbs that list must still show the rest; `check` reports the file).
pub fn suspension_of(config: &Config, user: &str) -> Option<Suspension> {
    config.load_user_file(user).ok().flatten()?.suspend
}

impl LifeState {
    /// The state of `user`, whose cgroup (if it has one) is `dir`.
    pub fn of(config: &Config, user: &str, dir: Option<&CgroupDir>) -> LifeState {
        if let Some(s) = suspension_of(config, user) {
            let epoch = s
                .since
                .as_deref()
                .and_then(|t| parse_since(t, 0).ok())
                .map(|ms| ms / 1000);
            return LifeState {
                state: "suspended",
                suspended_reason: Some(s.reason),
                suspended_at: s.since,
                suspended_epoch: epoch,
            };
        }
        let frozen = dir.is_some_and(|d| {
            levers::freeze_requested(d).unwrap_or(false) || levers::is_frozen(d).unwrap_or(false)
        });
        LifeState {
            state: if frozen { "frozen" } else { "active" },
            suspended_reason: None,
            suspended_at: None,
            suspended_epoch: None,
        }
    }

    /// The text for a STATE column.
    pub fn cell(&self) -> String {
        self.state.to_string()
    }
}

/// Users suspended in their files (`users/<name>.toml` with `[suspend]`) whatever their
/// cgroup: a suspended customer with no process left must still be listed. Names that are
/// not valid user names are skipped, as in the tree.
pub fn suspended_users(config: &Config) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(config.users_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let user = name.strip_suffix(".toml")?.to_string();
            cgroup_core::names::validate_user_name(&user).ok()?;
            suspension_of(config, &user).map(|_| user)
        })
        .collect();
    out.sort();
    out
}

/// One line of `list`.
#[derive(Debug, Serialize)]
pub struct UserSummary {
    pub user: String,
    pub uid: Option<u32>,
    pub profile: Option<String>,
    /// users/<user>; null for a suspended customer with no cgroup (nothing of it runs).
    pub path: Option<PathBuf>,
    #[serde(flatten)]
    pub life: LifeState,
    pub memory_bytes: Option<u64>,
    pub memory_max: Option<MaxValue>,
    pub cpu_usage_usec: Option<u64>,
    pub pids: Option<u64>,
    pub pids_max: Option<MaxValue>,
    pub sessions: usize,
    pub services: usize,
    #[serde(skip)]
    pub stats: CgroupStats,
}

/// The profile that applies to a user now (from the config, not the live cgroup); `None`
/// when the user is unknown to NSS or its file is broken (list must still show the rest).
pub fn profile_of(config: &Config, user: &str) -> (Option<u32>, Option<String>) {
    let Ok(info) = lookup_user(user) else {
        return (None, None);
    };
    let groups = group_names(&info).unwrap_or_default();
    let file = config.load_user_file(user).ok().flatten();
    (
        Some(info.uid),
        config.effective_limits(&groups, file.as_ref()).profile,
    )
}

pub fn summary(config: &Config, user: &FoundUserCgroup) -> Result<UserSummary> {
    let stats = read_user_stats(&user.path)?;
    let (sessions, services) = session_and_service_counts(&user.path)?;
    let (uid, profile) = profile_of(config, &user.name);
    let dir = CgroupDir::open(&user.path).ok();
    Ok(UserSummary {
        user: user.name.clone(),
        uid,
        profile,
        path: Some(user.path.clone()),
        life: LifeState::of(config, &user.name, dir.as_ref()),
        memory_bytes: stats.memory_current,
        memory_max: stats.memory_max,
        cpu_usage_usec: stats.cpu.map(|c| c.usage_usec),
        pids: stats.pids_current,
        pids_max: stats.pids_max,
        sessions,
        services,
        stats,
    })
}

/// The line of a suspended customer that has no cgroup: nothing runs, nothing is measured.
pub fn summary_without_cgroup(config: &Config, user: &str) -> UserSummary {
    let (uid, profile) = profile_of(config, user);
    UserSummary {
        user: user.to_string(),
        uid,
        profile,
        path: None,
        life: LifeState::of(config, user, None),
        memory_bytes: None,
        memory_max: None,
        cpu_usage_usec: None,
        pids: None,
        pids_max: None,
        sessions: 0,
        services: 0,
        stats: CgroupStats::default(),
    }
}

/// Every customer `list` shows: each user cgroup, and each suspended customer without one,
/// sorted by name.
pub fn all_summaries(config: &Config, tree: &Tree) -> Result<Vec<UserSummary>> {
    let mut out = user_cgroups(tree)?
        .iter()
        .map(|u| summary(config, u))
        .collect::<Result<Vec<_>>>()?;
    for user in suspended_users(config) {
        if !out.iter().any(|s| s.user == user) {
            out.push(summary_without_cgroup(config, &user));
        }
    }
    out.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(out)
}
