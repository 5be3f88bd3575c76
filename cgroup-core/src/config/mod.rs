//! The configuration contract of DESIGN.md: one global TOML file, profiles (plans), NSS
//! group -> profile, and per-user files `users/<user>.toml` next to the global file.
//! Unknown keys are refused; every error names the file, line, column and key.

mod events;
mod file;
mod history;
pub mod last_good;
mod policy;
mod proc;
mod resolve;
mod salvage;
mod user;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::limits::{
    parse_limit, LeafCaps, Limit, LimitKey, RawValue, SessionsMax, SESSIONS_MAX_KEY,
};

pub use crate::error::{line_col, ConfigError};
pub use events::EventsConfig;
pub use file::{read_secure, read_secure_stamped, Follow, MAX_CONFIG_BYTES};
pub use history::HistoryConfig;
pub use policy::{OnError, Policy, UserManager, USER_MANAGER_SERVICE};
pub use proc::{AdminGroup, HidePid, ProcConfig};
pub use resolve::{EffectiveLimits, LimitSource, ResolvedLimit};
pub use user::{Suspension, UserFile, MAX_REASON_CHARS, SUSPEND_TABLE};

pub use crate::paths::{DEFAULT_CONFIG_PATH, DEFAULT_ROOT_NAME};
/// Per leaf: what a customer may build in one session or service leaf.
pub const DEFAULT_MAX_DESCENDANTS: u32 = 64;
pub const DEFAULT_MAX_DEPTH: u32 = 4;

/// `[tree]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeConfig {
    /// Absolute path inside a cgroup2 mount; `None`: `<cgroup2 mount>/pam_cgroup`.
    pub root: Option<PathBuf>,
    /// cgroup.max.descendants of each delegated leaf: the cgroups a customer may make in one
    /// session or service leaf. The user cgroup's own count is not capped (see
    /// `tree::user_cgroup::UserCgroup::write_caps`).
    pub max_descendants: u32,
    /// cgroup.max.depth of each delegated leaf (the user cgroup's is this plus 2).
    pub max_depth: u32,
    /// The daemon keeps one session leaf made ahead (its caps and `login/` written, still
    /// root's) for each user who logged in, and a login takes it instead of making its own:
    /// the login's open then takes the host-wide `cgroup_mutex` once (its migration) instead
    /// of five times. Off by default: one empty leaf per user is kept between logins.
    pub spare_leaves: bool,
}

impl TreeConfig {
    /// What the tree writes on each leaf (and, from the depth, on the user cgroup).
    pub fn leaf_caps(&self) -> LeafCaps {
        LeafCaps {
            max_descendants: self.max_descendants,
            max_depth: self.max_depth,
        }
    }
}

/// `[private_ip]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateIpConfig {
    pub enabled: bool,
    pub min_gid: u32,
    pub ports: RangeInclusive<u16>,
}

impl Default for PrivateIpConfig {
    fn default() -> Self {
        PrivateIpConfig {
            enabled: false,
            min_gid: 2000,
            ports: 8000..=8299,
        }
    }
}

/// `[sessions]`: how `sessions.max` counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsConfig {
    /// PAM services whose sessions `sessions.max` neither counts nor refuses. Default: cron
    /// and atd. A job is started by the customer's own crontab, not by a person logging in: a
    /// long job would use up the customer's logins, and a refused job is lost without anybody
    /// seeing the message.
    pub uncounted_services: Vec<String>,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            uncounted_services: vec!["cron".to_string(), "atd".to_string()],
        }
    }
}

impl SessionsConfig {
    /// Does a session of this PAM service count towards (and get refused by) sessions.max?
    /// Never the user manager's: it is no login, and refusing it at the cap would only stop
    /// the customer's own services.
    pub fn counts(&self, service: &str) -> bool {
        service != USER_MANAGER_SERVICE && !self.uncounted_services.iter().any(|s| s == service)
    }
}

/// A validated global configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub tree: TreeConfig,
    pub policy: Policy,
    /// `[limits]`: defaults for every confined user.
    pub limits: BTreeMap<LimitKey, Limit>,
    /// `[profiles.NAME]`
    pub profiles: BTreeMap<String, BTreeMap<LimitKey, Limit>>,
    /// `[groups]`: NSS group -> profile, in file order (the first matching line wins).
    pub groups: Vec<(String, String)>,
    pub private_ip: PrivateIpConfig,
    /// `[proc]`: hidepid for /proc, applied by `cgroupctl proc-apply`.
    pub proc: ProcConfig,
    /// `sessions.max` of `[limits]`.
    pub sessions_max: Option<SessionsMax>,
    /// `sessions.max` of each profile that sets it.
    pub profile_sessions_max: BTreeMap<String, SessionsMax>,
    /// `[sessions]`
    pub sessions: SessionsConfig,
    /// `[events]`: the daemon's fault events.
    pub events: EventsConfig,
    /// `[history]`: the daemon's usage history.
    pub history: HistoryConfig,
}

// ---- the file's shape, as serde sees it -------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    tree: RawTree,
    #[serde(default)]
    policy: policy::RawPolicy,
    #[serde(default)]
    limits: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    profiles: BTreeMap<String, BTreeMap<String, Spanned<toml::Value>>>,
    #[serde(default)]
    groups: IndexMap<String, Spanned<String>>,
    #[serde(default)]
    private_ip: RawPrivateIp,
    #[serde(default)]
    proc: proc::RawProc,
    #[serde(default)]
    sessions: RawSessions,
    #[serde(default)]
    events: events::RawEvents,
    #[serde(default)]
    history: history::RawHistory,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessions {
    uncounted_services: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTree {
    root: Option<Spanned<String>>,
    max_descendants: Option<Spanned<i64>>,
    max_depth: Option<Spanned<i64>>,
    #[serde(default)]
    spare_leaves: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrivateIp {
    #[serde(default)]
    enabled: bool,
    min_gid: Option<Spanned<i64>>,
    ports: Option<Spanned<String>>,
}

/// Context for errors: the file and its text.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub(crate) fn error<T>(
        &self,
        span: std::ops::Range<usize>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::at(
            self.path,
            self.text,
            Some(span),
            Some(key.into()),
            reason,
        ))
    }

    /// Validates a table of limit keys -> values.
    pub(crate) fn limits(
        &self,
        section: &str,
        table: &BTreeMap<String, Spanned<toml::Value>>,
    ) -> Result<BTreeMap<LimitKey, Limit>, ConfigError> {
        let mut out = BTreeMap::new();
        for (key, value) in table {
            if key == SESSIONS_MAX_KEY {
                // Not a cgroup file: read by `sessions_max`.
                continue;
            }
            let dotted = if section.is_empty() {
                key.clone()
            } else {
                format!("{section}.{key}")
            };
            let raw = match RawValue::from_toml(value.get_ref()) {
                Ok(raw) => raw,
                Err(reason) => return self.error(value.span(), dotted, reason),
            };
            match parse_limit(key, &raw) {
                Ok(limit) => {
                    out.insert(limit.key, limit);
                }
                Err(e) => return self.error(value.span(), dotted, e.reason),
            }
        }
        Ok(out)
    }
}

impl Source<'_> {
    /// `sessions.max` of a table of limits, if it sets it.
    pub(crate) fn sessions_max(
        &self,
        section: &str,
        table: &BTreeMap<String, Spanned<toml::Value>>,
    ) -> Result<Option<SessionsMax>, ConfigError> {
        let Some(value) = table.get(SESSIONS_MAX_KEY) else {
            return Ok(None);
        };
        let dotted = if section.is_empty() {
            SESSIONS_MAX_KEY.to_string()
        } else {
            format!("{section}.{SESSIONS_MAX_KEY}")
        };
        let parsed = RawValue::from_toml(value.get_ref())
            .and_then(|raw| crate::limits::sessions::parse(&raw));
        match parsed {
            Ok(v) => Ok(Some(v)),
            Err(reason) => self.error(value.span(), dotted, reason),
        }
    }
}

fn bounded_u32(
    src: &Source<'_>,
    value: &Spanned<i64>,
    key: &str,
    range: RangeInclusive<i64>,
) -> Result<u32, ConfigError> {
    let v = *value.get_ref();
    if !range.contains(&v) {
        return src.error(
            value.span(),
            key,
            format!("must be from {} to {}", range.start(), range.end()),
        );
    }
    u32::try_from(v).or_else(|_| src.error(value.span(), key, "out of range"))
}

/// Parses `"8000-8299"` or `"8080"`.
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{s:?} is not a port (1-65535)"))
    };
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(text)?;
            (p, p)
        }
    };
    if first > last {
        return Err(format!("{text:?}: the first port is above the last"));
    }
    Ok(first..=last)
}

impl Config {
    /// Parses and validates config text; `path` is used in errors and to find user files.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
        let src = Source { path, text };

        let root = match &raw.tree.root {
            None => None,
            Some(r) => {
                let p = PathBuf::from(r.get_ref());
                if let Err(reason) = crate::paths::check_root_syntax(&p) {
                    return src.error(r.span(), "tree.root", reason);
                }
                Some(p)
            }
        };
        let max_descendants = match &raw.tree.max_descendants {
            Some(v) => bounded_u32(&src, v, "tree.max_descendants", 2..=1_000_000)?,
            None => DEFAULT_MAX_DESCENDANTS,
        };
        let max_depth = match &raw.tree.max_depth {
            Some(v) => bounded_u32(&src, v, "tree.max_depth", 1..=64)?,
            None => DEFAULT_MAX_DEPTH,
        };

        let policy = raw.policy.validate(&src)?;
        let limits = src.limits("limits", &raw.limits)?;
        let sessions_max = src.sessions_max("limits", &raw.limits)?;
        let mut profiles = BTreeMap::new();
        let mut profile_sessions_max = BTreeMap::new();
        for (name, table) in &raw.profiles {
            let section = format!("profiles.{name}");
            profiles.insert(name.clone(), src.limits(&section, table)?);
            if let Some(cap) = src.sessions_max(&section, table)? {
                profile_sessions_max.insert(name.clone(), cap);
            }
        }
        let sessions = SessionsConfig {
            uncounted_services: raw
                .sessions
                .uncounted_services
                .clone()
                .unwrap_or_else(|| SessionsConfig::default().uncounted_services),
        };
        let mut groups = Vec::new();
        for (group, profile) in &raw.groups {
            if !profiles.contains_key(profile.get_ref()) {
                return src.error(
                    profile.span(),
                    format!("groups.{group}"),
                    format!(
                        "no profile named {:?} ([profiles.{}] is missing)",
                        profile.get_ref(),
                        profile.get_ref()
                    ),
                );
            }
            groups.push((group.clone(), profile.get_ref().clone()));
        }

        let mut private_ip = PrivateIpConfig {
            enabled: raw.private_ip.enabled,
            ..PrivateIpConfig::default()
        };
        if let Some(v) = &raw.private_ip.min_gid {
            // The address is 127.0.0.0 | gid: the gid must fit in the low 24 bits.
            private_ip.min_gid = bounded_u32(&src, v, "private_ip.min_gid", 1..=0xff_ffff)?;
        }
        if let Some(p) = &raw.private_ip.ports {
            private_ip.ports = match parse_port_range(p.get_ref()) {
                Ok(r) => r,
                Err(reason) => return src.error(p.span(), "private_ip.ports", reason),
            };
        }

        let proc = raw.proc.validate(&src)?;
        let events = raw.events.validate(&src)?;
        let history = raw.history.validate(&src)?;

        Ok(Config {
            path: path.to_path_buf(),
            tree: TreeConfig {
                root,
                max_descendants,
                max_depth,
                spare_leaves: raw.tree.spare_leaves,
            },
            policy,
            limits,
            profiles,
            groups,
            private_ip,
            proc,
            sessions_max,
            profile_sessions_max,
            sessions,
            events,
            history,
        })
    }

    /// Reads and validates the global file (root-owned, not group/world-writable).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_secure(path, Follow::Symlinks, false)?
            .ok_or_else(|| ConfigError::file(path, "does not exist"))?;
        Self::parse(path, &text)
    }

    /// The directory of per-user files: `<config dir>/users`.
    pub fn users_dir(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or_else(|| Path::new("/"))
            .join("users")
    }

    /// Path of one user's file. The name must have been validated.
    pub fn user_file_path(&self, user: &str) -> PathBuf {
        self.users_dir().join(format!("{user}.toml"))
    }

    /// `users/<user>.toml` as used: the file if it exists and parses, else its last good copy
    /// (`last_good::load_user`; kept when this process is root and the file has settled).
    /// An error only when neither can be used.
    pub fn load_user_file(&self, user: &str) -> Result<Option<UserFile>, ConfigError> {
        last_good::load_user(
            self,
            user,
            last_good::Keep::as_root(last_good::Keep::Settled),
        )
        .map(|loaded| loaded.file)
    }

    /// Reads and parses `users/<user>.toml` itself, if it exists: its own error when it is
    /// broken (`cgroupctl check`, `doctor`).
    pub fn load_user_file_strict(&self, user: &str) -> Result<Option<UserFile>, ConfigError> {
        let path = self.user_file_path(user);
        match self.read_user_text(user)? {
            None => Ok(None),
            Some(text) => UserFile::parse(&path, &text, self).map(Some),
        }
    }

    /// The text of `users/<user>.toml` if it exists (read as `read_secure` reads).
    pub(crate) fn read_user_text(&self, user: &str) -> Result<Option<String>, ConfigError> {
        crate::names::validate_user_name(user)
            .map_err(|e| ConfigError::file(&self.user_file_path("_"), format!("refused: {e}")))?;
        read_secure(&self.user_file_path(user), Follow::NoSymlinks, true)
    }
}

#[cfg(test)]
mod tests;
