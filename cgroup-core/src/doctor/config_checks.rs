//! Config checks: validity, file permissions, user files; then the tree it names: the root,
//! delegation of each user cgroup, and the private-IP programs.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Finding, Inputs};
use crate::config::Config;
use crate::inventory::user_cgroups;
use crate::limits::LimitKey;
use crate::mount::Cgroup2Mount;
use crate::names::validate_user_name;
use crate::tree::{delegate_files, Tree};

/// Owner and mode problems of a config file or directory (what `read_secure` would refuse).
fn permission_problem(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.uid() != 0 {
        return Some(format!(
            "{} is owned by uid {}, not root",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "{} is writable by group or others (mode {:o})",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    None
}

pub(super) fn check_config(inputs: &Inputs, out: &mut Vec<Finding>) -> Option<Config> {
    let path = &inputs.config;
    let dir = path.parent().unwrap_or_else(|| Path::new("/"));
    let problems: Vec<String> = [path.as_path(), dir]
        .iter()
        .filter_map(|p| permission_problem(p))
        .collect();
    if problems.is_empty() {
        if path.exists() {
            out.push(Finding::ok(
                "config-permissions",
                format!(
                    "{} and its directory are root-owned, not group/world-writable",
                    path.display()
                ),
            ));
        }
    } else {
        out.push(Finding::fail(
            "config-permissions",
            problems.join("; "),
            "the config decides every login's limits and exemptions: the module refuses a file others could have written, so confined logins follow on_error",
            format!("chown root:root {0} {1}; chmod go-w {0} {1}", path.display(), dir.display()),
        ));
    }
    let config = match Config::load(path) {
        Ok(c) => {
            out.push(Finding::ok(
                "config",
                format!("{} is valid", path.display()),
            ));
            c
        }
        Err(e) => {
            out.push(Finding::fail(
                "config",
                e.to_string(),
                "confined logins cannot be confined: they get in unconfined (on_error=open) or are refused (closed)",
                format!("correct {}, then check it with `cgroupctl check`", path.display()),
            ));
            return None;
        }
    };
    check_user_files(&config, out);
    Some(config)
}

fn check_user_files(config: &Config, out: &mut Vec<Finding>) {
    let dir = config.users_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut bad = Vec::new();
    let mut readable = Vec::new();
    let mut suspended = Vec::new();
    let mut count = 0;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml") && !n.starts_with('.'))
        .collect();
    names.sort();
    for name in names {
        let user = name.trim_end_matches(".toml");
        if validate_user_name(user).is_err() {
            bad.push(format!("{name}: not a valid user name, ignored"));
            continue;
        }
        count += 1;
        if let Ok(m) = std::fs::symlink_metadata(dir.join(&name)) {
            if m.mode() & 0o044 != 0 {
                readable.push(format!("{name} ({:o})", m.mode() & 0o7777));
            }
        }
        match config.load_user_file(user) {
            Err(e) => bad.push(e.to_string()),
            Ok(Some(f)) => {
                if let Some(s) = f.suspend {
                    suspended.push(format!("{user} ({})", s.reason));
                }
            }
            Ok(None) => {}
        }
    }
    if !suspended.is_empty() {
        out.push(Finding::info(
            "suspended",
            format!("suspended users: {}", suspended.join(", ")),
            "every login of these users is refused with the reason; their processes are frozen (or were killed)",
            "`cgroupctl resume USER` lifts a suspension",
        ));
    }
    if !readable.is_empty() {
        out.push(Finding::warn(
            "user-files-readable",
            format!(
                "user files readable by group or others in {}: {}",
                dir.display(),
                readable.join(", ")
            ),
            "matters wherever customers have a shell: any of them can read these customers' limits and suspension reasons",
            format!(
                "chmod {:o} {}/*.toml (`cgroupctl set` and `suspend` write {:o})",
                crate::userfile_edit::USER_FILE_MODE,
                dir.display(),
                crate::userfile_edit::USER_FILE_MODE
            ),
        ));
    }
    if bad.is_empty() {
        out.push(Finding::ok(
            "user-files",
            format!("{count} user files in {} are valid", dir.display()),
        ));
    } else {
        out.push(Finding::fail(
            "user-files",
            bad.join("; "),
            "a user whose file is refused is not confined as planned (the login follows on_error)",
            "correct the file (or `cgroupctl set USER KEY=VALUE`, which validates), and keep it root-owned 0600",
        ));
    }
}

pub(super) fn check_tree(config: &Config, mounts: &[Cgroup2Mount], out: &mut Vec<Finding>) {
    if mounts.is_empty() {
        return;
    }
    let tree = match Tree::locate_in(mounts, config.tree.root.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            out.push(Finding::fail(
                "tree",
                e.to_string(),
                "no login can be placed in a cgroup",
                "set [tree] root to a path inside the cgroup2 mount",
            ));
            return;
        }
    };
    if !tree.root.is_dir() {
        out.push(Finding::warn(
            "tree",
            format!("tree root {} does not exist yet", tree.root.display()),
            "matters only with private IPs enabled: the tree is created at the first confined login, and until then `cgroupctl init` has nothing to attach the programs to",
            "start `cgroupctl daemon` (the packaged unit) or log in once as a confined user",
        ));
    } else {
        out.push(Finding::ok(
            "tree",
            format!("tree root {}", tree.root.display()),
        ));
        check_delegation(&tree, out);
    }
    check_private_ip(config, &tree, out);
    check_user_manager(config, out);
}

/// Where confined customers' user managers (systemd --user) run: a path out of the fence
/// unless they are fenced or refused.
fn check_user_manager(config: &Config, out: &mut Vec<Finding>) {
    use crate::config::{UserManager, USER_MANAGER_SERVICE};
    let exempted = config
        .policy
        .exempt_services
        .iter()
        .any(|s| s == USER_MANAGER_SERVICE);
    match (config.policy.user_manager, exempted) {
        (UserManager::Unconfined, _) | (_, true) => out.push(Finding::fail(
            "user-manager",
            if exempted {
                format!("policy.exempt_services lists {USER_MANAGER_SERVICE}: user managers run outside the fence")
            } else {
                "policy.user_manager = \"unconfined\": user managers run outside the fence".to_string()
            },
            "anything a customer starts through its user manager (systemd-run --user, enabled or lingering units) escapes its plan's limits, the private-IP rules and the levers",
            "remove the setting: user_manager = \"fence\" (the default) keeps managers in users/<user>/manager-*, \"refuse\" gives confined users none",
        )),
        (UserManager::Fence, false) => out.push(Finding::ok(
            "user-manager",
            "user managers of confined users run in their fence (users/<user>/manager-*)",
        )),
        (UserManager::Refuse, false) => out.push(Finding::ok(
            "user-manager",
            "user managers of confined users are refused (policy.user_manager = \"refuse\")",
        )),
    }
}

/// The tree's ownership (DESIGN.md, "The tree"): `users/` root's 0711; each user cgroup
/// root's and never delegated (0750 root:<gid>, or 0711 root:root for a shared primary group);
/// limits and caps root-owned everywhere, the leaves' included.
fn check_delegation(tree: &Tree, out: &mut Vec<Finding>) {
    use crate::tree::user_cgroup::{GroupAccess, USERS_MODE, USER_MODE, USER_MODE_SHARED_GROUP};
    let Ok(users) = user_cgroups(tree) else {
        return;
    };
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let mut shared = Vec::new();
    // Primary gids of the users with a cgroup: two users with one primary group read each
    // other's cgroups.
    let mut primary_gid_sharers: std::collections::BTreeMap<u32, Vec<String>> =
        std::collections::BTreeMap::new();
    for u in &users {
        if let Ok(Some(pw)) = nix::unistd::User::from_name(&u.name) {
            primary_gid_sharers
                .entry(pw.gid.as_raw())
                .or_default()
                .push(u.name.clone());
        }
    }
    if let Ok(m) = std::fs::metadata(tree.users_dir()) {
        if m.uid() != 0 || m.mode() & 0o7777 != USERS_MODE {
            warns.push(format!(
                "{} is {}:{} {:o}, not root:root {:o}: customers can list each other",
                tree.users_dir().display(),
                m.uid(),
                m.gid(),
                m.mode() & 0o7777,
                USERS_MODE
            ));
        }
    }
    let root_owned = |dir: &std::path::Path, what: &str, fails: &mut Vec<String>| {
        let owner = |name: &str| std::fs::metadata(dir.join(name)).ok().map(|m| m.uid());
        for key in LimitKey::ALL {
            if owner(key.file_name()).is_some_and(|o| o != 0) {
                fails.push(format!("{what}/{} is not root-owned", key.file_name()));
            }
        }
        for cap in ["cgroup.max.descendants", "cgroup.max.depth"] {
            if owner(cap).is_some_and(|o| o != 0) {
                fails.push(format!("{what}/{cap} is not root-owned"));
            }
        }
    };
    for u in &users {
        root_owned(&u.path, &u.name, &mut fails);
        for leaf in crate::inventory::first_level_leaves(&u.path) {
            let rel = leaf
                .strip_prefix(&u.path)
                .map(|r| format!("{}/{}", u.name, r.display()))
                .unwrap_or_default();
            root_owned(&leaf, &rel, &mut fails);
        }
        let Ok(Some(pw)) = nix::unistd::User::from_name(&u.name) else {
            warns.push(format!("{}: no such user in NSS", u.name));
            continue;
        };
        let info = crate::nss::UserInfo {
            name: u.name.clone(),
            uid: pw.uid.as_raw(),
            gid: pw.gid.as_raw(),
        };
        let access = GroupAccess::of(&info);
        if access == GroupAccess::Shared {
            shared.push(format!(
                "{} (gid {}: {})",
                u.name,
                info.gid,
                why_shared(&info)
            ));
        } else if let Some(other) = primary_gid_sharers
            .get(&info.gid)
            .and_then(|names| names.iter().find(|n| **n != u.name))
        {
            // Not seen at login (that would enumerate every user): the other user's
            // processes run with this gid and read the user cgroup.
            shared.push(format!(
                "{} (gid {}: also the primary group of {other}, who can read {}'s cgroup)",
                u.name, info.gid, u.name
            ));
        }
        let Ok(meta) = std::fs::metadata(&u.path) else {
            continue;
        };
        let (want_gid, want_mode) = match access {
            GroupAccess::Private { gid } => (gid, USER_MODE),
            GroupAccess::Shared => (0, USER_MODE_SHARED_GROUP),
        };
        let delegated_file = delegate_files().iter().any(|f| {
            std::fs::metadata(u.path.join(f))
                .ok()
                .is_some_and(|m| m.uid() != 0)
        });
        if meta.uid() != 0 || delegated_file {
            warns.push(format!(
                "{}: owned by the user (a 0.1.0 tree): the user can move its processes out of their leaves",
                u.name
            ));
        } else if meta.gid() != want_gid || meta.mode() & 0o7777 != want_mode {
            warns.push(format!(
                "{}: {}:{} {:o}, expected root:{want_gid} {want_mode:o}",
                u.name,
                meta.uid(),
                meta.gid(),
                meta.mode() & 0o7777
            ));
        }
    }
    if !fails.is_empty() {
        out.push(Finding::fail(
            "delegation",
            fails.join("; "),
            "a user owning its resource files or caps can raise its own limits",
            "chown root those files (`cgroupctl reload` re-applies the limits; the module never delegates them)",
        ));
    } else if !warns.is_empty() {
        out.push(Finding::warn(
            "delegation",
            warns.join("; "),
            "matters on a host with customers: they may read each other's cgroups or leave their leaves",
            "`cgroupctl reload` takes user cgroups back and re-secures them; remove cgroups of deleted users with rmdir once empty",
        ));
    } else {
        out.push(Finding::ok(
            "delegation",
            format!(
                "{} user cgroups root-owned, leaves delegated, limits and caps root-owned",
                users.len()
            ),
        ));
    }
    // A user with a legacy cgroup beside its own is listed once.
    shared.dedup();
    if !shared.is_empty() {
        out.push(Finding::warn(
            "shared-groups",
            format!("primary group not a user-private group: {}", shared.join(", ")),
            "matters where customers share a primary group or their group has other members: such user cgroups are made root-only (0711, files 0600) so no other member reads them, and the customer reads its figures through `cgroupctl me`",
            "give each customer its own primary group with no other members (useradd -U, adduser's default); share web files through another group",
        ));
    }
}

/// Why a user's primary group does not count as its private group.
fn why_shared(user: &crate::nss::UserInfo) -> String {
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(user.gid)) {
        Ok(Some(g)) if g.name != user.name => {
            format!("group {} is not named like the user", g.name)
        }
        Ok(Some(g)) => format!(
            "group {} also lists {}",
            g.name,
            g.mem
                .iter()
                .filter(|m| **m != user.name)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Ok(None) => "no such group in NSS".to_string(),
        Err(e) => format!("group lookup failed: {e}"),
    }
}

fn check_private_ip(config: &Config, tree: &Tree, out: &mut Vec<Finding>) {
    if !config.private_ip.enabled {
        out.push(Finding::ok(
            "private-ip",
            "private IPs are disabled in the config",
        ));
        return;
    }
    match crate::private_ip::missing_programs(&tree.root) {
        Ok(missing) if missing.is_empty() => out.push(Finding::ok(
            "private-ip",
            format!("all policy programs attached at {}", tree.root.display()),
        )),
        Ok(missing) => out.push(Finding::fail(
            "private-ip",
            format!("private IPs are enabled but programs {} are not attached at {}", missing.join(", "), tree.root.display()),
            "users' services can bind and reach each other's loopback addresses, and the module follows on_error at every login",
            "run `cgroupctl init` (attaches and pins the programs)",
        )),
        Err(e) => out.push(Finding::fail(
            "private-ip",
            format!("cannot query the programs at {}: {e}", tree.root.display()),
            "whether private IPs are enforced cannot be told",
            "run doctor as root (BPF_PROG_QUERY needs CAP_NET_ADMIN)",
        )),
    }
    check_fence_map(tree, out);
    check_traffic_counters(tree, out);
    check_private_addresses(config, tree, out);
}

/// The traffic counters (issue 16) are installed with the policy; they only count, so their
/// absence is a WARN (logins and private IPs do not depend on them).
fn check_traffic_counters(tree: &Tree, out: &mut Vec<Finding>) {
    let attached =
        crate::private_ip::attached_programs_of(&tree.root, &crate::private_ip::NET_HOOKS);
    match attached {
        Ok(hooks) if hooks.iter().all(|a| !a.ours.is_empty()) => out.push(Finding::ok(
            "traffic-counters",
            format!("traffic counters attached at {}", tree.root.display()),
        )),
        Ok(_) => out.push(Finding::warn(
            "traffic-counters",
            format!("the traffic counters are not attached at {}", tree.root.display()),
            "matters if you bill or watch customers' bandwidth: network counters are absent from stats and metrics (programs of an older version may be attached)",
            "run `cgroupctl init` (attaches them next to the private-IP programs; counts kept in the pinned map continue)",
        )),
        Err(e) => out.push(Finding::warn(
            "traffic-counters",
            format!("cannot query the traffic counters at {}: {e}", tree.root.display()),
            "whether traffic is counted cannot be told",
            "run doctor as root (BPF_PROG_QUERY needs CAP_NET_ADMIN)",
        )),
    }
}

/// The fence map the programs read (which cgroup is whose fence): without it (programs of
/// 0.1.0 still attached after an upgrade) logins follow on_error.
fn check_fence_map(tree: &Tree, out: &mut Vec<Finding>) {
    match crate::private_ip::fence_map_pin(tree) {
        Ok(pin) if pin.exists() => out.push(Finding::ok(
            "private-ip-fences",
            format!("fence map pinned at {}", pin.display()),
        )),
        Ok(pin) => out.push(Finding::fail(
            "private-ip-fences",
            format!("the fence map {} is missing", pin.display()),
            "the programs cannot tell whose fence a process is in (programs of 0.1.0, which judged by gid, may still be attached); logins follow on_error",
            "run `cgroupctl init` (swaps the programs in place and fills the map)",
        )),
        Err(e) => out.push(Finding::fail(
            "private-ip-fences",
            format!("cannot name the fence map: {e}"),
            "whether private IPs are enforced cannot be told",
            "check [tree] root",
        )),
    }
}

/// Confined users whose primary gid gives no private address (below min_gid, or too large):
/// their binds and connects on the port range are refused.
fn check_private_addresses(config: &Config, tree: &Tree, out: &mut Vec<Finding>) {
    let Ok(users) = crate::inventory::user_cgroups(tree) else {
        return;
    };
    let mut without = Vec::new();
    for u in users.into_iter().filter(|u| !u.legacy) {
        if let Ok(info) = crate::nss::lookup_user(&u.name) {
            if let Err(reason) =
                crate::private_ip::private_address(info.gid, config.private_ip.min_gid)
            {
                without.push(format!("{} (gid {} {reason})", u.name, info.gid));
            }
        }
    }
    if without.is_empty() {
        out.push(Finding::ok(
            "private-ip-addresses",
            "every user cgroup's user has a private address",
        ));
    } else {
        out.push(Finding::warn(
            "private-ip-addresses",
            format!("users without a private address: {}", without.join(", ")),
            "their services cannot listen on the port range, and their localhost on the range reaches nothing",
            "give them a primary group with a gid >= [private_ip] min_gid, or lower min_gid",
        ));
    }
}
