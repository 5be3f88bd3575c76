//! Who is confined, under which plan, and whether a login may start: the one decision the
//! session hook, the account hook, `apply` (reload, set, the daemon) and the levers share.
//!
//! The chain, in the order it is decided:
//! 1. root by name: never confined, before NSS or the config can stand in its way;
//! 2. a PAM service in `policy.exempt_services`;
//! 3. the name checked, then looked up in NSS;
//! 4. uid 0, `policy.exempt_users`, outside `[min_uid, max_uid]`;
//! 5. the user's groups, looked up only when a rule names groups (`policy.exempt_groups`, a
//!    `[groups]` plan), then `policy.exempt_groups`;
//! 6. for a user manager's session (`systemd-user`), `policy.user_manager`;
//! 7. then, for a confined user: suspended (`[suspend]` in its user file), its plan (limits
//!    and `sessions.max`), and whether it is at that cap.
//!
//! The account hook stops after step 5 (see `Hook::Account`); admin tools start at step 4
//! with a user they looked up themselves (`decide_user`).

use crate::config::{
    Config, EffectiveLimits, Policy, Suspension, UserFile, UserManager, USER_MANAGER_SERVICE,
};
use crate::error::{Error, Result};
use crate::names::validate_user_name;
use crate::nss::{lookup_user, user_groups, UserInfo};
use crate::tree::user_cgroup::GroupAccess;
use crate::tree::user_cgroup::UserCgroup;

/// Which PAM hook asks (admin tools ask `decide_user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `pam_sm_open_session`: every step.
    Session,
    /// `pam_sm_acct_mgmt`: `policy.user_manager` is not consulted there, so a suspended
    /// user's manager is refused by the account part even under `user_manager = "unconfined"`.
    Account,
}

/// Why a user is exempt, if it is (step 4, and with `groups` step 5).
pub fn exemption(policy: &Policy, user: &UserInfo, groups: Option<&[String]>) -> Option<String> {
    if user.uid == 0 {
        return Some("uid 0 is never confined".to_string());
    }
    if policy.exempt_users.iter().any(|u| u == &user.name) {
        return Some("listed in policy.exempt_users".to_string());
    }
    if user.uid < policy.min_uid {
        return Some(format!(
            "uid {} is below policy.min_uid {}",
            user.uid, policy.min_uid
        ));
    }
    if user.uid > policy.max_uid {
        return Some(format!(
            "uid {} is above policy.max_uid {}",
            user.uid, policy.max_uid
        ));
    }
    let groups = groups?;
    policy
        .exempt_groups
        .iter()
        .find(|g| groups.contains(g))
        .map(|g| format!("member of exempt group {g}"))
}

/// Do the user's groups count for anything here? Only an exempt group or a `[groups]` plan
/// names groups; without them the NSS group lookup is skipped.
pub fn groups_needed(policy: &Policy, config: Option<&Config>) -> bool {
    !policy.exempt_groups.is_empty() || config.is_some_and(|c| !c.groups.is_empty())
}

/// The answer for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Never confined, and why.
    Exempt(String),
    /// Confined: the user and the groups that count (empty when no rule names groups), with
    /// the user cgroup's `GroupAccess` when the group lookup already gave it.
    Confined {
        user: UserInfo,
        groups: Vec<String>,
        access: Option<GroupAccess>,
    },
}

/// Steps 1 to 6 for a login of `name` through PAM service `service`. `policy` is the config's,
/// or the fallback policy when no config could be used (`config` is then `None`). A name
/// that fails its check or NSS, and `policy.user_manager = "refuse"`, are errors.
pub fn decide(
    policy: &Policy,
    config: Option<&Config>,
    name: &str,
    service: &str,
    hook: Hook,
) -> Result<Decision> {
    if name == "root" {
        return Ok(Decision::Exempt("root is never confined".into()));
    }
    if policy.exempt_services.iter().any(|s| s == service) {
        return Ok(Decision::Exempt(format!(
            "PAM service {service} is in policy.exempt_services"
        )));
    }
    validate_user_name(name)?;
    let user = lookup_user(name)?;
    let decision = decide_user(policy, config, user)?;
    let Decision::Confined {
        user,
        groups,
        access,
    } = decision
    else {
        return Ok(decision);
    };
    if hook == Hook::Session && service == USER_MANAGER_SERVICE {
        match policy.user_manager {
            UserManager::Fence => {}
            UserManager::Refuse => return Err(Error::UserManagerRefused { user: user.name }),
            UserManager::Unconfined => return Ok(Decision::Exempt(
                "policy.user_manager = \"unconfined\": the user manager stays outside the fence"
                    .into(),
            )),
        }
    }
    Ok(Decision::Confined {
        user,
        groups,
        access,
    })
}

/// Steps 4 and 5 for a user already looked up.
pub fn decide_user(policy: &Policy, config: Option<&Config>, user: UserInfo) -> Result<Decision> {
    if let Some(reason) = exemption(policy, &user, None) {
        return Ok(Decision::Exempt(reason));
    }
    let (groups, access) = if groups_needed(policy, config) {
        let resolved = user_groups(&user)?;
        (resolved.names, Some(resolved.access))
    } else {
        (Vec::new(), None)
    };
    if let Some(reason) = exemption(policy, &user, Some(&groups)) {
        return Ok(Decision::Exempt(reason));
    }
    Ok(Decision::Confined {
        user,
        groups,
        access,
    })
}

/// Step 7's first answer: the suspension written in the user file, if any. It refuses every
/// new login, and `levers::enforce_suspension` keeps what runs frozen.
pub fn suspension(user_file: Option<&UserFile>) -> Option<&Suspension> {
    user_file.and_then(|f| f.suspend.as_ref())
}

/// A suspended user's login: refused with the reason.
pub fn suspended(user: &str, user_file: Option<&UserFile>) -> Result<()> {
    match suspension(user_file) {
        Some(s) => Err(Error::Suspended {
            user: user.to_string(),
            reason: s.reason.clone(),
        }),
        None => Ok(()),
    }
}

/// A confined user's plan: its limits and, for a login through `service`, its sessions.max.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub limits: EffectiveLimits,
    /// sessions.max, when it applies to a login through this service.
    pub cap: Option<u32>,
}

impl Plan {
    pub fn of(
        config: &Config,
        groups: &[String],
        user_file: Option<&UserFile>,
        service: &str,
    ) -> Plan {
        Plan {
            limits: config.effective_limits(groups, user_file),
            cap: cap(config, groups, user_file, service),
        }
    }
}

/// The sessions.max that applies to a login through `service` (uncounted services: none).
pub fn cap(
    config: &Config,
    groups: &[String],
    user_file: Option<&UserFile>,
    service: &str,
) -> Option<u32> {
    if !config.sessions.counts(service) {
        return None;
    }
    config
        .sessions_max_for(groups, user_file)
        .map(|(max, _)| max)
}

/// Open sessions that count towards sessions.max in the user cgroups `cgroups` (the user's
/// own and a legacy one an upgrade left).
pub fn count_open<'a>(
    config: &Config,
    mount_point: &std::path::Path,
    cgroups: impl IntoIterator<Item = &'a UserCgroup>,
) -> Result<u32> {
    let mut open = 0;
    for uc in cgroups {
        let found = crate::sessions::find_sessions(uc.dir(), mount_point)?;
        open += crate::sessions::count_open(&found, |s| config.sessions.counts(s));
    }
    Ok(open)
}

/// The last answer: a login with `open` sessions already open is refused at `max`.
pub fn at_cap(user: &str, open: u32, max: u32) -> Result<()> {
    if open >= max {
        return Err(Error::SessionLimit {
            user: user.to_string(),
            open,
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, uid: u32) -> UserInfo {
        UserInfo {
            name: name.to_string(),
            uid,
            gid: uid,
        }
    }

    #[test]
    fn root_and_exempt_services_are_decided_before_the_name_or_nss() {
        let policy = Policy {
            exempt_services: vec!["cron".into()],
            ..Policy::default()
        };
        for hook in [Hook::Session, Hook::Account] {
            let d = decide(&policy, None, "root", "sshd", hook).unwrap();
            assert_eq!(d, Decision::Exempt("root is never confined".into()));
            // A name that would fail its check: the service decides first.
            let d = decide(&policy, None, "../x", "cron", hook).unwrap();
            assert!(matches!(d, Decision::Exempt(r) if r.contains("exempt_services")));
            assert!(decide(&policy, None, "../x", "sshd", hook).is_err());
        }
    }

    #[test]
    fn groups_count_only_when_a_rule_names_them() {
        let mut policy = Policy::default();
        assert!(!groups_needed(&policy, None));
        policy.exempt_groups = vec!["staff".into()];
        assert!(groups_needed(&policy, None));
        let u = user("alice", 60000);
        assert_eq!(
            exemption(&policy, &u, Some(&["staff".to_string()])),
            Some("member of exempt group staff".into())
        );
        assert_eq!(exemption(&policy, &u, None), None);
        assert_eq!(exemption(&policy, &u, Some(&[])), None);
        assert!(exemption(&policy, &user("x", 0), None).is_some());
    }

    #[test]
    fn the_cap_refuses_at_max_not_before() {
        assert!(at_cap("alice", 1, 2).is_ok());
        assert!(matches!(
            at_cap("alice", 2, 2),
            Err(Error::SessionLimit {
                open: 2,
                max: 2,
                ..
            })
        ));
    }
}
