//! What `list`, `show` and `stats` share: the config and tree, and one user's summary.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use cgroup_core::config::last_good::{self, Broken, Keep};
use cgroup_core::config::{Config, Suspension};
use cgroup_core::events::when::parse_since;
use cgroup_core::inventory::{session_and_service_counts, user_cgroups, UserCgroup};
use cgroup_core::levers;
use cgroup_core::nss::{group_names, lookup_user};
use cgroup_core::stats::{read_user_stats, CgroupStats, MaxValue};
use cgroup_core::tree::dirfd::CgroupDir;
use cgroup_core::tree::Tree;

use crate::Cli;

/// The config path made absolute: user files are found next to it, and a bare `config.toml`
/// has an empty parent directory that cannot be checked.
pub fn config_path(cli: &Cli) -> PathBuf {
    std::path::absolute(&cli.config).unwrap_or_else(|_| cli.config.clone())
}

/// Loads the config and locates its tree. A broken file is met with its last good copy, as
/// logins meet it, and one line on stderr says so; with no good copy ever kept, the file's
/// error (exit 3).
pub fn load(cli: &Cli) -> Result<(Config, Tree)> {
    let (config, tree, _) = load_keeping(cli, Keep::Settled)?;
    Ok((config, tree))
}

/// The config in use, as `load` finds it (for verbs that need no tree).
pub fn load_config(cli: &Cli) -> Result<Config> {
    Ok(load_in_use(cli, Keep::Settled)?.0)
}

/// `load`, keeping a good file as the last good one as `keep` says (when root), and telling
/// whether the file was broken.
pub fn load_keeping(cli: &Cli, keep: Keep) -> Result<(Config, Tree, Option<Broken>)> {
    let (config, broken) = load_in_use(cli, keep)?;
    let tree = Tree::locate(&config).context("locate the cgroup tree")?;
    Ok((config, tree, broken))
}

fn load_in_use(cli: &Cli, keep: Keep) -> Result<(Config, Option<Broken>)> {
    let loaded =
        last_good::load(&config_path(cli), Keep::as_root(keep)).map_err(|none| none.error)?;
    if let Some(broken) = &loaded.broken {
        eprintln!(
            "cgroupctl: {}",
            cgroup_core::config_fallback::broken_line(broken, "config")
        );
    }
    Ok((loaded.config, loaded.broken))
}

/// The user cgroups to report: all, or the one named (which must exist).
pub fn selected_users(tree: &Tree, only: Option<&str>) -> Result<Vec<UserCgroup>> {
    let all = user_cgroups(tree)?;
    match only {
        None => Ok(all),
        Some(name) => {
            cgroup_core::names::validate_user_name(name)?;
            let found: Vec<UserCgroup> = all.into_iter().filter(|u| u.name == name).collect();
            if found.is_empty() {
                return Err(no_cgroup(tree, name));
            }
            Ok(found)
        }
    }
}

/// Why a user has no cgroup, in words that tell an unknown name from root and from a user
/// who has not logged in.
fn no_cgroup(tree: &Tree, name: &str) -> anyhow::Error {
    match lookup_user(name) {
        Err(e) => anyhow::Error::from(e).context(format!("no such user: {name}")),
        Ok(u) if u.uid == 0 => anyhow::anyhow!(
            "{name} is uid 0, which pam_cgroup never confines: it has no cgroup"
        ),
        Ok(_) => anyhow::anyhow!(
            "user {name} has no cgroup under {} (not logged in since boot, or exempt: cgroupctl check --user {name} says which)",
            tree.users_dir().display()
        ),
    }
}

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

pub fn summary(config: &Config, user: &UserCgroup) -> Result<UserSummary> {
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
