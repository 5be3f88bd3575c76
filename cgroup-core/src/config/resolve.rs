//! Effective limits of one user: `[limits]` < profile (from a plan group, or named in the user
//! file) < the user file's own keys. Each value remembers where it came from, for
//! `cgroupctl check --user`.

use std::collections::BTreeMap;
use std::fmt;

use super::{Config, UserFile};
use crate::limits::{Limit, LimitKey, SessionsMax};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitSource {
    /// `[limits]` of the global file.
    Default,
    /// `[profiles.NAME]`, chosen through NSS group `group` (`None`: named by the user file).
    Profile { name: String, group: Option<String> },
    /// The user's own file.
    UserFile,
}

impl fmt::Display for LimitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitSource::Default => f.write_str("default"),
            LimitSource::Profile {
                name,
                group: Some(g),
            } => write!(f, "profile {name} (group {g})"),
            LimitSource::Profile { name, group: None } => {
                write!(f, "profile {name} (user file)")
            }
            LimitSource::UserFile => f.write_str("user file"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLimit {
    pub limit: Limit,
    pub source: LimitSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EffectiveLimits {
    /// The profile that applies, if any.
    pub profile: Option<String>,
    pub limits: BTreeMap<LimitKey, ResolvedLimit>,
}

impl Config {
    /// The profile a user's groups select: the first line of `[groups]` naming a group the
    /// user belongs to wins (file order), so the result never depends on NSS's group order.
    pub fn profile_for_groups<'a>(&'a self, user_groups: &[String]) -> Option<(&'a str, &'a str)> {
        self.groups
            .iter()
            .find(|(group, _)| user_groups.iter().any(|g| g == group))
            .map(|(group, profile)| (group.as_str(), profile.as_str()))
    }

    /// A user's `sessions.max` and where it comes from, with the precedence of the other
    /// limits: `[limits]` < profile < user file. `None`: no cap.
    pub fn sessions_max_for(
        &self,
        user_groups: &[String],
        user_file: Option<&UserFile>,
    ) -> Option<(u32, LimitSource)> {
        let mut out: Option<(SessionsMax, LimitSource)> =
            self.sessions_max.map(|c| (c, LimitSource::Default));
        let chosen: Option<(String, Option<String>)> =
            match user_file.and_then(|u| u.profile.clone()) {
                Some(name) => Some((name, None)),
                None => self
                    .profile_for_groups(user_groups)
                    .map(|(g, p)| (p.to_string(), Some(g.to_string()))),
            };
        if let Some((name, group)) = chosen {
            if let Some(cap) = self.profile_sessions_max.get(&name) {
                out = Some((*cap, LimitSource::Profile { name, group }));
            }
        }
        if let Some(cap) = user_file.and_then(|f| f.sessions_max) {
            out = Some((cap, LimitSource::UserFile));
        }
        out.and_then(|(cap, source)| cap.0.map(|n| (n, source)))
    }

    /// Resolves a user's limits from its group names and its (optional) user file.
    pub fn effective_limits(
        &self,
        user_groups: &[String],
        user_file: Option<&UserFile>,
    ) -> EffectiveLimits {
        let mut out = EffectiveLimits::default();
        for (key, limit) in &self.limits {
            out.limits.insert(
                *key,
                ResolvedLimit {
                    limit: limit.clone(),
                    source: LimitSource::Default,
                },
            );
        }
        let chosen: Option<(String, Option<String>)> =
            match user_file.and_then(|u| u.profile.clone()) {
                Some(name) => Some((name, None)),
                None => self
                    .profile_for_groups(user_groups)
                    .map(|(g, p)| (p.to_string(), Some(g.to_string()))),
            };
        if let Some((name, group)) = chosen {
            if let Some(profile) = self.profiles.get(&name) {
                for (key, limit) in profile {
                    out.limits.insert(
                        *key,
                        ResolvedLimit {
                            limit: limit.clone(),
                            source: LimitSource::Profile {
                                name: name.clone(),
                                group: group.clone(),
                            },
                        },
                    );
                }
            }
            out.profile = Some(name);
        }
        if let Some(file) = user_file {
            for (key, limit) in &file.limits {
                out.limits.insert(
                    *key,
                    ResolvedLimit {
                        limit: limit.clone(),
                        source: LimitSource::UserFile,
                    },
                );
            }
        }
        out
    }
}
