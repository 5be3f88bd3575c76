//! `[policy]`: what happens on failure and who is never confined.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};

/// What a failure does to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Log and let the session in (unconfined): availability first.
    #[default]
    Open,
    /// Refuse the session: isolation first. Root and exempt users still get in.
    Closed,
}

impl FromStr for OnError {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(OnError::Open),
            "closed" => Ok(OnError::Closed),
            other => Err(format!("{other:?}: expected \"open\" or \"closed\"")),
        }
    }
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnError::Open => "open",
            OnError::Closed => "closed",
        })
    }
}

/// What the session of a user's service manager (user@UID.service, PAM service
/// `systemd-user`) gets for a confined user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserManager {
    /// The manager runs in a delegated leaf of the user's fence (`users/<user>/manager-<id>`),
    /// and everything it starts with it: `systemd-run --user`, enabled and lingering units,
    /// D-Bus activated services, inside the plan's limits and the private-IP rules.
    #[default]
    Fence,
    /// The manager's session is refused: a confined user has no user manager.
    Refuse,
    /// The manager stays where systemd put it (user.slice), outside the fence: anything the
    /// customer starts through it escapes the plan's limits and the private-IP rules. An
    /// explicit choice that `cgroupctl doctor` reports.
    Unconfined,
}

/// The PAM service systemd opens for a user's service manager.
pub const USER_MANAGER_SERVICE: &str = "systemd-user";

impl FromStr for UserManager {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fence" => Ok(UserManager::Fence),
            "refuse" => Ok(UserManager::Refuse),
            "unconfined" => Ok(UserManager::Unconfined),
            other => Err(format!(
                "{other:?}: expected \"fence\", \"refuse\" or \"unconfined\""
            )),
        }
    }
}

impl fmt::Display for UserManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UserManager::Fence => "fence",
            UserManager::Refuse => "refuse",
            UserManager::Unconfined => "unconfined",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub on_error: OnError,
    pub exempt_users: Vec<String>,
    pub exempt_groups: Vec<String>,
    /// PAM services whose sessions are never confined. Default: none. (The user manager's
    /// service, `systemd-user`, is decided by `user_manager`; listing it here leaves every
    /// user manager unconfined, which doctor reports.)
    pub exempt_services: Vec<String>,
    /// What a confined user's service manager gets (`UserManager`).
    pub user_manager: UserManager,
    /// Users with a uid below are not confined (system accounts).
    pub min_uid: u32,
    /// Users with a uid above are not confined: `nobody` (65534) and systemd's dynamic users
    /// (DynamicUser=, 61184-65519), which daemons switch to and which are nobody's customers.
    /// Default 60000, Debian's UID_MAX for accounts made by useradd/adduser.
    pub max_uid: u32,
    /// The daemon moves every process whose real uid becomes a confined customer's (a root
    /// daemon's setuid: PHP-FPM workers, suexec, runuser) into that customer's fence. On by
    /// default: off leaves those paths outside the fence, a choice `doctor` reports.
    pub safety_net: bool,
}

pub const DEFAULT_MIN_UID: u32 = 1000;
pub const DEFAULT_MAX_UID: u32 = 60000;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            on_error: OnError::Open,
            exempt_users: vec!["root".to_string()],
            exempt_groups: Vec::new(),
            exempt_services: Vec::new(),
            user_manager: UserManager::Fence,
            min_uid: DEFAULT_MIN_UID,
            max_uid: DEFAULT_MAX_UID,
            safety_net: true,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    on_error: Option<Spanned<String>>,
    exempt_users: Option<Vec<String>>,
    exempt_groups: Option<Vec<String>>,
    exempt_services: Option<Vec<String>>,
    user_manager: Option<Spanned<String>>,
    min_uid: Option<Spanned<i64>>,
    max_uid: Option<Spanned<i64>>,
    safety_net: Option<bool>,
}

impl RawPolicy {
    pub(super) fn validate(&self, src: &Source<'_>) -> Result<Policy, ConfigError> {
        let mut policy = Policy::default();
        if let Some(v) = &self.on_error {
            policy.on_error = match v.get_ref().parse() {
                Ok(o) => o,
                Err(reason) => return src.error(v.span(), "policy.on_error", reason),
            };
        }
        if let Some(users) = &self.exempt_users {
            policy.exempt_users = users.clone();
        }
        if let Some(groups) = &self.exempt_groups {
            policy.exempt_groups = groups.clone();
        }
        if let Some(services) = &self.exempt_services {
            policy.exempt_services = services.clone();
        }
        if let Some(v) = &self.user_manager {
            policy.user_manager = match v.get_ref().parse() {
                Ok(m) => m,
                Err(reason) => return src.error(v.span(), "policy.user_manager", reason),
            };
        }
        if let Some(v) = &self.min_uid {
            policy.min_uid = match u32::try_from(*v.get_ref()) {
                Ok(uid) => uid,
                Err(_) => {
                    return src.error(v.span(), "policy.min_uid", "must be from 0 to 4294967295")
                }
            };
        }
        if let Some(v) = &self.max_uid {
            policy.max_uid = match u32::try_from(*v.get_ref()) {
                Ok(uid) if uid >= policy.min_uid => uid,
                _ => {
                    return src.error(
                        v.span(),
                        "policy.max_uid",
                        "must be from policy.min_uid to 4294967295",
                    )
                }
            };
        }
        if let Some(on) = self.safety_net {
            policy.safety_net = on;
        }
        Ok(policy)
    }
}

impl Policy {
    /// The policy to follow when the config file cannot be used.
    ///
    /// Key by key: what can still be read of the broken file's `[policy]` (`text`, see
    /// `salvage`), else what the last valid config said (`last_good`, kept by `last_good`),
    /// else the defaults. A broken file only ever adds to the exemptions of the defaults
    /// (root) and never lowers `min_uid` below the default: it fails towards letting admins
    /// in. `user_manager` is never read from a broken file: a typo there must not let user
    /// managers out of the fence. `text` is `None` when the file is missing or not trusted.
    pub fn fallback(text: Option<&str>, last_good: Option<&Policy>) -> Policy {
        let mut policy = last_good.cloned().unwrap_or_default();
        let Some(section) = text.map(super::salvage::policy_table) else {
            return policy;
        };
        let defaults = Policy::default();
        if let Some(o) = section
            .get("on_error")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
        {
            policy.on_error = o;
        }
        let strings = |key: &str| -> Option<Vec<String>> {
            section.get(key)?.as_array().map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
        };
        let with_defaults = |mut base: Vec<String>, extra: Vec<String>| {
            for name in extra {
                if !base.contains(&name) {
                    base.push(name);
                }
            }
            base
        };
        if let Some(users) = strings("exempt_users") {
            policy.exempt_users = with_defaults(defaults.exempt_users.clone(), users);
        }
        if let Some(groups) = strings("exempt_groups") {
            policy.exempt_groups = groups;
        }
        if let Some(services) = strings("exempt_services") {
            policy.exempt_services = with_defaults(defaults.exempt_services.clone(), services);
        }
        if let Some(uid) = section
            .get("min_uid")
            .and_then(|v| v.as_integer())
            .and_then(|v| u32::try_from(v).ok())
        {
            // A broken file never lowers the floor below the default: fail towards exempting.
            policy.min_uid = uid.max(DEFAULT_MIN_UID);
        }
        if let Some(uid) = section
            .get("max_uid")
            .and_then(|v| v.as_integer())
            .and_then(|v| u32::try_from(v).ok())
        {
            // Nor raises the ceiling above the default.
            policy.max_uid = uid.min(DEFAULT_MAX_UID);
        }
        policy
    }
}
