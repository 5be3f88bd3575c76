//! Config checks: validity, file permissions, user files; then the tree it names: the root,
//! delegation of each user cgroup, and the private-IP programs.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use std::collections::BTreeMap;

use super::Finding;
use crate::cgroup_files;
use crate::config::last_good::{self, Keep};
use crate::config::Config;
use crate::inventory::user_cgroups;
use crate::limits::{Limit, LimitKey};
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

/// Every check of the config files themselves and of what they say (`cgroupctl check` runs
/// these; doctor runs them first): permissions, validity (file:line:col: key), whether the
/// last good copy is in use, user files, the tree root's place, the user managers' policy,
/// plan groups, and limits that cannot do what they say. Returns the config in use (the
/// file's, or its last good copy) for the checks of the live system that follow.
pub(super) fn check_config(
    path: &Path,
    mounts: &[Cgroup2Mount],
    keep: Keep,
    out: &mut Vec<Finding>,
) -> Option<Config> {
    let dir = path.parent().unwrap_or_else(|| Path::new("/"));
    let problems: Vec<String> = [path, dir]
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
            "the config decides every login's limits and exemptions: the module refuses a file others could have written and uses the last good config instead",
            format!("chown root:root {0} {1}; chmod go-w {0} {1}", path.display(), dir.display()),
        ));
    }
    let config = match last_good::load(path, keep) {
        Ok(loaded) => match loaded.broken {
            None => {
                out.push(Finding::ok(
                    "config",
                    format!("{} is valid", path.display()),
                ));
                loaded.config
            }
            Some(broken) => {
                out.push(Finding::fail(
                    "config",
                    broken.error.to_string(),
                    format!(
                        "logins, `cgroupctl reload` and the daemon use the last good config (kept in {}) until the file is fixed: the change being made does not apply",
                        broken.kept.display()
                    ),
                    format!("correct {}, then `cgroupctl check` and `cgroupctl reload`", path.display()),
                ));
                loaded.config
            }
        },
        Err(none) => {
            let policy = none.fallback_policy();
            let kept = none
                .kept_error
                .as_deref()
                .map(|e| format!(" (the kept copy is refused: {e})"))
                .unwrap_or_default();
            out.push(Finding::fail(
                "config",
                none.error.to_string(),
                format!(
                    "no good config was ever kept{kept}: confined logins follow on_error={} (open: let in unconfined; closed: refused)",
                    policy.on_error
                ),
                format!("correct {}, then check it with `cgroupctl check`", path.display()),
            ));
            return None;
        }
    };
    check_user_files(&config, keep, out);
    check_tree_root(&config, mounts, out);
    check_user_manager(&config, out);
    check_plan_groups(&config, out);
    let cpus = online_cpus();
    for finding in limit_findings(&config, cpus) {
        out.push(finding);
    }
    Some(config)
}

/// Where the tree root is: inside a cgroup2 mount, or no login can be placed.
fn check_tree_root(config: &Config, mounts: &[Cgroup2Mount], out: &mut Vec<Finding>) {
    if mounts.is_empty() {
        // Not the config's fault (doctor's cgroup2 check FAILs it on a host); a WARN so that
        // the file can be checked where no cgroup2 is mounted (a chroot, a build).
        out.push(Finding::warn(
            "tree-root",
            "no cgroup2 filesystem is mounted here: where the tree root lies cannot be told",
            "matters on a host that runs logins: without cgroup2 every confined login follows on_error",
            "run the check on the host itself; mount cgroup2 (mount -t cgroup2 none /sys/fs/cgroup) if it is missing there",
        ));
        return;
    }
    match Tree::locate_in(mounts, config.tree.root.as_deref()) {
        Ok(tree) => out.push(Finding::ok(
            "tree-root",
            format!(
                "{} is inside the cgroup2 mount at {}",
                tree.root.display(),
                tree.mount.mount_point.display()
            ),
        )),
        Err(e) => out.push(Finding::fail(
            "tree-root",
            e.to_string(),
            "no login can be placed in a cgroup: every confined login follows on_error",
            "set [tree] root to a path inside the cgroup2 mount",
        )),
    }
}

/// `[groups]` lines whose NSS group does not exist: they select a plan for nobody.
fn check_plan_groups(config: &Config, out: &mut Vec<Finding>) {
    if config.groups.is_empty() {
        return;
    }
    let mut missing = Vec::new();
    let mut unknown = Vec::new();
    for (group, profile) in &config.groups {
        match nix::unistd::Group::from_name(group) {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(format!("{group} (-> {profile})")),
            Err(e) => unknown.push(format!("{group}: {e}")),
        }
    }
    if !missing.is_empty() {
        // A WARN, not a FAIL: a fleet shares one config while a group may exist on some
        // hosts only, or be made before its first customer; the line harms nobody else.
        out.push(Finding::warn(
            "plan-groups",
            format!("[groups] names groups NSS does not know: {}", missing.join(", ")),
            "matters if customers are meant to be on these plans: nobody gets them, and those customers get the plan of a later [groups] line or the [limits] defaults (a typo in a group name looks exactly like this)",
            "correct the group name in [groups], or create the group (groupadd / your directory)",
        ));
    }
    if !unknown.is_empty() {
        out.push(Finding::warn(
            "plan-groups",
            format!("cannot look up [groups] groups: {}", unknown.join("; ")),
            "whether the plans reach anybody cannot be told while NSS fails",
            "check NSS (nsswitch.conf, sssd) and run the check again",
        ));
    }
    if missing.is_empty() && unknown.is_empty() {
        out.push(Finding::ok(
            "plan-groups",
            format!("the {} groups of [groups] exist", config.groups.len()),
        ));
    }
}

/// CPUs online on this host.
fn online_cpus() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u64::try_from(n).ok().filter(|n| *n > 0)
}

/// A limit set a user can end up with: its name, the limits, and the keys it sets itself.
type LimitSet = (String, BTreeMap<LimitKey, Limit>, Vec<LimitKey>);

/// The limit sets a user can end up with: `[limits]`, each plan over it, each user file over
/// its named plan (or the defaults).
fn limit_sets(config: &Config) -> Vec<LimitSet> {
    let mut sets = vec![(
        "[limits]".to_string(),
        config.limits.clone(),
        config.limits.keys().copied().collect(),
    )];
    for (name, profile) in &config.profiles {
        let mut merged = config.limits.clone();
        merged.extend(profile.iter().map(|(k, v)| (*k, v.clone())));
        sets.push((
            format!("[profiles.{name}]"),
            merged,
            profile.keys().copied().collect(),
        ));
    }
    for user in last_good::user_file_names(config) {
        if let Ok(Some(file)) = config.load_user_file_strict(&user) {
            if file.limits.is_empty() {
                continue;
            }
            let mut merged = config.limits.clone();
            if let Some(p) = file.profile.as_ref().and_then(|p| config.profiles.get(p)) {
                merged.extend(p.iter().map(|(k, v)| (*k, v.clone())));
            }
            merged.extend(file.limits.iter().map(|(k, v)| (*k, v.clone())));
            sets.push((
                format!("users/{user}.toml"),
                merged,
                file.limits.keys().copied().collect(),
            ));
        }
    }
    sets
}

fn bytes_of(limit: Option<&Limit>) -> Option<u64> {
    limit?.lines.first()?.parse().ok()
}

/// Limits that parse but cannot do what they say: memory.high at or above memory.max (it
/// never acts: the OOM killer comes first) and cpu.max above the host's CPUs (it never
/// binds here). WARNs: the first is harmless, the second may be meant for a bigger host of
/// a fleet sharing the file.
pub(super) fn limit_findings(config: &Config, cpus: Option<u64>) -> Vec<Finding> {
    let mut high = Vec::new();
    let mut cpu = Vec::new();
    // A set is reported for what it sets itself: a plan that only inherits the defaults'
    // problem is the defaults' line.
    for (name, set, own) in limit_sets(config) {
        let sets = |keys: &[LimitKey]| keys.iter().any(|k| own.contains(k));
        if let (true, Some(h), Some(m)) = (
            sets(&[LimitKey::MemoryHigh, LimitKey::MemoryMax]),
            bytes_of(set.get(&LimitKey::MemoryHigh)),
            bytes_of(set.get(&LimitKey::MemoryMax)),
        ) {
            if h >= m {
                high.push(format!("{name}: memory.high {h} >= memory.max {m}"));
            }
        }
        if let (true, Some(cpus), Some(limit)) =
            (sets(&[LimitKey::CpuMax]), cpus, set.get(&LimitKey::CpuMax))
        {
            let mut words = limit
                .lines
                .first()
                .map(|l| l.split(' '))
                .into_iter()
                .flatten();
            let quota = words.next().and_then(|q| q.parse::<u64>().ok());
            let period = words.next().and_then(|p| p.parse::<u64>().ok());
            if let (Some(q), Some(p)) = (quota, period.filter(|p| *p > 0)) {
                if q > p.saturating_mul(cpus) {
                    cpu.push(format!(
                        "{name}: cpu.max {}% > {}% ({cpus} CPUs)",
                        q * 100 / p,
                        cpus * 100
                    ));
                }
            }
        }
    }
    let mut out = Vec::new();
    if high.is_empty() {
        out.push(Finding::ok(
            "memory-high",
            "memory.high is below memory.max wherever both are set",
        ));
    } else {
        out.push(Finding::warn(
            "memory-high",
            high.join("; "),
            "memory.high never acts at or above memory.max: such a user is OOM-killed at memory.max without being slowed down first",
            "set memory.high below memory.max (about 90% of it), or remove it",
        ));
    }
    if cpu.is_empty() {
        out.push(Finding::ok(
            "cpu-max",
            "no cpu.max is above this host's CPUs",
        ));
    } else {
        out.push(Finding::warn(
            "cpu-max",
            cpu.join("; "),
            "a cpu.max above the host's CPUs never binds here: such a plan is not limited by cpu.max on this host (fine only if the file is shared with bigger hosts)",
            "lower cpu.max to at most 100% per CPU of this host",
        ));
    }
    out
}

fn check_user_files(config: &Config, keep: Keep, out: &mut Vec<Finding>) {
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
        match config.load_user_file_strict(user) {
            Err(e) => {
                // What logins of this user get meanwhile.
                let kept = match last_good::load_user(config, user, Keep::Never) {
                    Ok(l) if l.broken.is_some() => "the last good copy is used",
                    _ => "no good copy was kept: its logins follow on_error",
                };
                bad.push(format!("{e} ({kept})"));
            }
            Ok(Some(f)) => {
                // Good: kept as its last good copy (as `keep` says).
                let _ = last_good::load_user(config, user, keep);
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
            "the change being made does not apply: that user's logins use the last good copy of its file, or follow on_error when none was kept",
            "correct the file (or `cgroupctl set USER KEY=VALUE`, which validates), and keep it root-owned 0600",
        ));
    }
}

pub(super) fn check_tree(config: &Config, mounts: &[Cgroup2Mount], out: &mut Vec<Finding>) {
    if mounts.is_empty() {
        return;
    }
    // A root outside every cgroup2 mount is the tree-root check's FAIL.
    let Ok(tree) = Tree::locate_in(mounts, config.tree.root.as_deref()) else {
        return;
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
        for cap in [cgroup_files::MAX_DESCENDANTS, cgroup_files::MAX_DEPTH] {
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
        let access = info.group_access();
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
            // init's marker (a link unpinned by hand since): logins still trust it.
            if crate::private_ip::marked_attached(&tree.root).unwrap_or(false) {
                "users' services can bind and reach each other's loopback addresses, and logins still let customers in: init's marker in the fence map says all six are attached"
            } else {
                "users' services can bind and reach each other's loopback addresses, and the module follows on_error at every login"
            },
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

/// The traffic counters (`cgroupctl stats` network columns) are installed with the policy;
/// they only count, so their absence is a WARN (logins and private IPs do not depend on them).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn findings(text: &str, cpus: u64) -> Vec<Finding> {
        let config = Config::parse(Path::new("/nonexistent/config.toml"), text).unwrap();
        limit_findings(&config, Some(cpus))
    }

    fn status(found: &[Finding], check: &str) -> (Status, String) {
        let f = found.iter().find(|f| f.check == check).unwrap();
        (f.status, f.summary.clone())
    }

    #[test]
    fn memory_high_at_or_above_max_is_a_warning_per_plan() {
        let text = "[limits]\n\"memory.max\" = \"1G\"\n[profiles.pro]\n\"memory.high\" = \"2G\"\n[profiles.ok]\n\"memory.high\" = \"512M\"\n";
        let (s, summary) = status(&findings(text, 2), "memory-high");
        assert_eq!(s, Status::Warn);
        assert!(summary.contains("[profiles.pro]"), "{summary}");
        assert!(!summary.contains("[profiles.ok]"), "{summary}");
        let (s, _) = status(
            &findings("[limits]\n\"memory.high\" = \"1G\"\n", 2),
            "memory-high",
        );
        assert_eq!(s, Status::Ok, "memory.high alone is fine");
    }

    #[test]
    fn cpu_max_above_the_host_is_a_warning() {
        let text = "[limits]\n\"cpu.max\" = \"100%\"\n[profiles.big]\n\"cpu.max\" = \"5000%\"\n";
        let (s, summary) = status(&findings(text, 2), "cpu-max");
        assert_eq!(s, Status::Warn);
        assert!(
            summary.contains("[profiles.big]: cpu.max 5000% > 200% (2 CPUs)"),
            "{summary}"
        );
        assert_eq!(status(&findings(text, 64), "cpu-max").0, Status::Ok);
        let (s, _) = status(&findings("[limits]\n\"cpu.max\" = \"max\"\n", 2), "cpu-max");
        assert_eq!(s, Status::Ok, "no quota is no claim");
    }
}
