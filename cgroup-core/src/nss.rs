//! User and group resolution through NSS (local files, LDAP, SSSD alike), via nix's wrappers
//! of getpwnam_r, getgrouplist and getgrgid_r.

use std::ffi::CString;

use nix::errno::Errno;
use nix::unistd::{Gid, Group, User};

use crate::error::{Error, Result};
use crate::tree::user_cgroup::GroupAccess;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl UserInfo {
    /// How the user's cgroup is opened to the user, from its primary group in NSS
    /// (`GroupAccess::decide`). Another user whose primary gid is the same group is not seen
    /// here (that would need an enumeration of every user at each login); `cgroupctl doctor`
    /// reports such users.
    pub fn group_access(&self) -> GroupAccess {
        let group = Group::from_gid(Gid::from_raw(self.gid)).ok().flatten();
        self.access_from(group.as_ref())
    }

    fn access_from(&self, group: Option<&Group>) -> GroupAccess {
        GroupAccess::decide(
            &self.name,
            self.gid,
            group.map(|g| (g.name.as_str(), g.mem.as_slice())),
        )
    }
}

/// The user's groups as one login resolves them: their names, and how the user cgroup is
/// opened to the user (`UserInfo::group_access`) from the primary group's entry that the
/// names' lookup already fetched, so a login asks NSS for each group once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGroups {
    pub names: Vec<String>,
    pub access: GroupAccess,
}

/// Looks a user up by name. The name must have been validated.
///
/// getpwnam_r tells the two failures apart, and so does this: when every NSS source answered
/// NOTFOUND it returns 0 with no entry (nix: `Ok(None)`, here `UnknownUser`); when the last
/// source consulted reported UNAVAIL or TRYAGAIN (sssd not running, nsswitch.conf naming a
/// missing module) it returns the errno that source set (nix: `Err`, here
/// `UserDbUnavailable`), so the log says the database is down rather than the user unknown.
pub fn lookup_user(name: &str) -> Result<UserInfo> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok(UserInfo {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }),
        Ok(None) => Err(Error::UnknownUser {
            user: name.to_string(),
            reason: "no such user in the passwd database (every NSS source answered NOTFOUND; \
                     SSSD answers so too for an entry it never cached while its directory is \
                     offline)"
                .to_string(),
        }),
        Err(errno) => Err(Error::UserDbUnavailable {
            user: name.to_string(),
            reason: format!("getpwnam_r: {}", errno.desc()),
            errno: Some(errno as i32),
        }),
    }
}

/// Looks a user up by uid: `Ok(None)` when NSS knows no such uid, an error when the
/// database could not answer (see `lookup_user`).
pub fn lookup_uid(uid: u32) -> Result<Option<UserInfo>> {
    match User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(found) => Ok(found.map(|u| UserInfo {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })),
        Err(errno) => Err(Error::UserDbUnavailable {
            user: format!("uid {uid}"),
            reason: format!("getpwuid_r: {}", errno.desc()),
            errno: Some(errno as i32),
        }),
    }
}

/// Names of every group of the user (primary and supplementary). Groups without a name in
/// NSS are skipped: they cannot match a configured name anyway.
pub fn group_names(user: &UserInfo) -> Result<Vec<String>> {
    user_groups(user).map(|g| g.names)
}

/// The user's group names (`group_names`) and its `GroupAccess`, with one getgrgid per gid.
pub fn user_groups(user: &UserInfo) -> Result<UserGroups> {
    let cname = CString::new(user.name.as_bytes()).map_err(|_| Error::UnknownUser {
        user: user.name.clone(),
        reason: "name contains NUL".to_string(),
    })?;
    let gids = grouplist(&cname, user.gid).map_err(|e| {
        if crate::process_limits::is_resource_errno(e as i32) {
            Error::UserDbUnavailable {
                user: user.name.clone(),
                reason: format!("getgrouplist: {}", e.desc()),
                errno: Some(e as i32),
            }
        } else {
            Error::UnknownUser {
                user: user.name.clone(),
                reason: format!("getgrouplist failed: {e}"),
            }
        }
    })?;
    let mut names = Vec::with_capacity(gids.len());
    // The primary group's entry, when NSS knows it (else the access is shared, as
    // `UserInfo::group_access` decides it).
    let mut access = None;
    for gid in gids {
        match Group::from_gid(Gid::from_raw(gid)) {
            Ok(Some(group)) => {
                if gid == user.gid && access.is_none() {
                    access = Some(user.access_from(Some(&group)));
                }
                if !names.contains(&group.name) {
                    names.push(group.name);
                }
            }
            // Out of files or memory: the plan and the exemption would be decided on a
            // partial list, and the cause may be the caller's own rlimits.
            Err(e) if crate::process_limits::is_resource_errno(e as i32) => {
                return Err(Error::UserDbUnavailable {
                    user: user.name.clone(),
                    reason: format!("getgrgid_r({gid}): {}", e.desc()),
                    errno: Some(e as i32),
                });
            }
            // A gid without a name, or a source that does not answer for it: the group
            // cannot match a configured name.
            Ok(None) | Err(_) => {}
        }
    }
    Ok(UserGroups {
        names,
        access: access.unwrap_or_else(|| user.access_from(None)),
    })
}

/// getgrouplist(3) into a buffer of 64 gids, grown to the count glibc reports when that is
/// too small. nix's wrapper sizes its limit with sysconf(_SC_NGROUPS_MAX), which glibc
/// answers by reading /proc/sys/kernel/ngroups_max: a file open and read at every login for
/// a bound the kernel fixes at 65536 anyway (the bound used here).
fn grouplist(name: &std::ffi::CStr, gid: u32) -> std::result::Result<Vec<u32>, Errno> {
    const KERNEL_NGROUPS_MAX: usize = 65536;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut count = libc::c_int::try_from(groups.len()).map_err(|_| Errno::EINVAL)?;
        // SAFETY: `groups` holds `count` writable gids and `name` is NUL-terminated;
        // getgrouplist writes at most `count` entries and stores the total in `count`.
        let ret =
            unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        let count = usize::try_from(count).unwrap_or(0);
        if ret >= 0 {
            groups.truncate(count.min(groups.len()));
            return Ok(groups);
        }
        // Too small: glibc says how many there are; grow at least twofold either way.
        let wanted = count.max(groups.len() * 2);
        if groups.len() > KERNEL_NGROUPS_MAX {
            return Err(Errno::EINVAL);
        }
        groups.resize(wanted.min(KERNEL_NGROUPS_MAX + 1), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_list_and_access_match_the_separate_lookups() {
        let user = lookup_user("root").unwrap();
        let name = CString::new("root").unwrap();
        let mut ours = grouplist(&name, user.gid).unwrap();
        let mut nix: Vec<u32> = nix::unistd::getgrouplist(&name, Gid::from_raw(user.gid))
            .unwrap()
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        ours.sort_unstable();
        nix.sort_unstable();
        assert_eq!(ours, nix);
        assert!(ours.contains(&user.gid), "the primary group is listed");
        let groups = user_groups(&user).unwrap();
        assert_eq!(groups.access, user.group_access());
        assert_eq!(groups.names, group_names(&user).unwrap());
    }
}
