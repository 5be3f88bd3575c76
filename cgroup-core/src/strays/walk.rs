//! The cgroups outside the customers' fences, walked for the sweep: every cgroup of the
//! cgroup2 hierarchy under its mount (`/sys/fs/cgroup`, `/sys/fs/cgroup/unified` on a hybrid
//! host), except the `users/<user...>` subtrees of this tree, each read for its processes.
//!
//! Why a walk and not /proc alone: a listing of /proc names every process first and reads each
//! one later, so a process that lives ~0.2 ms (a hopper: fork, parent exits, again and again)
//! is always gone by its turn. Here the visitor is handed a cgroup's processes at once, while
//! the hopper's current generation is most likely alive, and may ask for the cgroup to be read
//! again when a process it was handed was gone before it could be told (its child is there).
//!
//! The walk only ever opens cgroup directories (O_DIRECTORY|O_NOFOLLOW below a cgroup2 mount
//! point), takes names as the kernel's bytes (a delegated cgroup may be named anything), skips
//! what vanished meanwhile (ENOENT, ENODEV), and is bounded: `WalkLimits` caps its depth and
//! the cgroups it reads; what lies past a cap is reported, and the /proc listing still sees
//! the processes there that live long enough to be read.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::rc::Rc;

use crate::cgroup_files::PROCS;
use crate::tree::dirfd::CgroupDir;
use crate::tree::{tree_key, Tree, TreeKey};

/// How far and how wide one walk may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkLimits {
    /// Levels below the mount point; the kernel's own limit (cgroup.max.depth) is unbounded
    /// by default, and a delegated subtree (a container's, a user manager's) is made by
    /// whoever it is delegated to.
    pub max_depth: usize,
    /// Cgroups read in one walk.
    pub max_cgroups: usize,
    /// Reads of one cgroup while its visitor finds processes gone before they were told.
    pub max_reads: u32,
}

/// A busy host has a few thousand cgroups outside the fences (systemd units, containers);
/// each read costs some µs, plus the visitor's reads of the processes listed.
pub const SWEEP_LIMITS: WalkLimits = WalkLimits {
    max_depth: 32,
    max_cgroups: 20_000,
    max_reads: 4,
};

/// What the visitor made of one read of a cgroup's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// Every process listed was told (or nothing is to be read again).
    All,
    /// A process listed was gone before it could be told: it may have been a stray that
    /// forked, and its child is in the cgroup; read it again.
    SomeGone,
}

/// How a walk went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WalkReport {
    /// Cgroups whose processes were read.
    pub cgroups: usize,
    /// What could not be read or was left out (a cap reached), for a warning.
    pub problems: Vec<String>,
}

/// Walks the cgroups of `tree`'s cgroup2 mount outside the customers' fences, handing `visit`
/// each one's directory (its path in the kernel's bytes) and its processes as just read,
/// the ones new since the read before first (`Listing`).
pub fn outside_fences(
    tree: &Tree,
    limits: WalkLimits,
    visit: impl FnMut(&Path, &Listing) -> Told,
) -> WalkReport {
    let mut report = WalkReport::default();
    // No users/ yet: no fence to skip, and no key to make. Without the key, no child of
    // users/ can be told a user's: all are walked (a slower sweep, not a blind one).
    let key = match tree.users_dir().exists().then(tree_key) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(e)) => {
            report.problems.push(format!(
                "tree key: {e}; the customers' fences are walked too"
            ));
            None
        }
    };
    match CgroupDir::open(&tree.mount.mount_point) {
        Ok(top) => walk(top, tree, key.as_ref(), limits, visit, &mut report),
        Err(e) => report.problems.push(e.to_string()),
    }
    report
}

/// The walk below `top` (the mount point, opened by the caller: a plain directory in tests).
pub(crate) fn walk(
    top: CgroupDir,
    tree: &Tree,
    key: Option<&TreeKey>,
    limits: WalkLimits,
    mut visit: impl FnMut(&Path, &Listing) -> Told,
    report: &mut WalkReport,
) {
    let users_dir = tree.users_dir();
    let is_fence = |parent: &Path, name: &OsStr| {
        parent == users_dir
            && key
                .zip(name.to_str())
                .is_some_and(|(key, name)| key.classify(name).is_some())
    };
    // Depth first, an explicit stack of names, each opened when its turn comes through its
    // parent's descriptor (shared by its siblings): at most one descriptor per level is open,
    // however many children a cgroup has (a daemon's soft limit is often 1024 files).
    let mut stack: Vec<(Rc<CgroupDir>, Option<OsString>, usize)> = vec![(Rc::new(top), None, 0)];
    let mut capped = false;
    while let Some((parent, name, depth)) = stack.pop() {
        let dir = match name {
            None => parent,
            Some(name) => match parent.open_child(&name) {
                Ok(child) => Rc::new(child),
                Err(e) if gone(&e) => continue,
                Err(e) => {
                    report.problems.push(e.to_string());
                    continue;
                }
            },
        };
        if report.cgroups == limits.max_cgroups {
            capped = true;
            break;
        }
        report.cgroups += 1;
        if !read_processes(&dir, limits.max_reads, &mut visit, report) {
            continue;
        }
        if depth == limits.max_depth {
            if dir
                .entries()
                .is_ok_and(|e| e.iter().any(|(_, is_dir)| *is_dir))
            {
                report.problems.push(format!(
                    "{}: deeper than {} levels, not walked",
                    dir.path().display(),
                    limits.max_depth
                ));
            }
            continue;
        }
        let children = match dir.entries() {
            Ok(entries) => entries,
            Err(e) if gone(&e) => continue,
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        // Reversed onto the stack: visited in name order.
        for (name, _) in children.into_iter().rev().filter(|(_, is_dir)| *is_dir) {
            if !is_fence(dir.path(), &name) {
                stack.push((Rc::clone(&dir), Some(name), depth + 1));
            }
        }
    }
    if capped {
        report.problems.push(format!(
            "more than {} cgroups: the walk stopped there",
            limits.max_cgroups
        ));
    }
}

/// Reads the processes of `dir` and hands them to `visit`, again while it asks (up to
/// `max_reads`); false when the cgroup is gone.
fn read_processes(
    dir: &CgroupDir,
    max_reads: u32,
    visit: &mut impl FnMut(&Path, &Listing) -> Told,
    report: &mut WalkReport,
) -> bool {
    let mut previous: Vec<u32> = Vec::new();
    for _ in 0..max_reads {
        let listed: Vec<u32> = match dir.read(PROCS) {
            Ok(text) => text.lines().filter_map(|l| l.trim().parse().ok()).collect(),
            Err(e) if gone(&e) => return false,
            // A threaded cgroup refuses cgroup.procs: its processes are listed in its threaded
            // domain's, an ancestor read before it.
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => return true,
            Err(e) => {
                report.problems.push(e.to_string());
                return true;
            }
        };
        let listing = Listing::new_first(&listed, &previous);
        if listing.is_empty() || visit(dir.path(), &listing) == Told::All {
            break;
        }
        previous = listed;
    }
    true
}

/// A cgroup's processes as one read of its cgroup.procs listed them, in two parts, each
/// youngest first: the ones the read before did not list, to be told first, and the others.
/// A hopper's current generation must be told before it hops again, not after every older
/// process of a busy cgroup.
///
/// Youngest first alone is not enough: the kernel lists a cgroup's processes by css_set (the
/// set of cgroups a process is in across every hierarchy, the v1 ones of a hybrid host too),
/// each set's in the order they joined it. A process in the same cgroup2 cgroup but other v1
/// cgroups (a CI job's memory cgroup, a container runtime's) is in another set, listed before
/// or after the hopper's as the sets were made: dozens of older processes may come first.
/// The processes a read before listed too were told then; what is new since is where a
/// process that forks and exits is, whatever the order of the sets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Not listed by the read before (all of them at a first read).
    pub new: Vec<u32>,
    /// Listed by the read before too.
    pub known: Vec<u32>,
}

impl Listing {
    /// Splits `listed` (one read, in the kernel's order) by `previous` (the read before).
    pub fn new_first(listed: &[u32], previous: &[u32]) -> Listing {
        // A set: a busy service lists a few hundred processes, read a handful of times.
        let seen: std::collections::HashSet<u32> = previous.iter().copied().collect();
        let (new, known) = listed.iter().rev().partition(|pid| !seen.contains(pid));
        Listing { new, known }
    }

    /// Every process, the new ones first.
    pub fn all(&self) -> impl Iterator<Item = u32> + '_ {
        self.new.iter().chain(&self.known).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.new.is_empty() && self.known.is_empty()
    }
}

/// Removed meanwhile: nothing is left in it.
fn gone(e: &crate::error::Error) -> bool {
    matches!(e.errno(), Some(libc::ENOENT | libc::ENODEV))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::Cgroup2Mount;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    /// A fake cgroup `rel` under `mount`: a directory with a cgroup.procs file listing `pids`,
    /// its ancestors made as cgroups with none.
    fn cgroup(mount: &Path, rel: impl AsRef<Path>, pids: &[u32]) {
        let mut dir = mount.to_path_buf();
        for part in std::iter::once(OsStr::new("")).chain(rel.as_ref().iter()) {
            dir.push(part);
            std::fs::create_dir_all(&dir).unwrap();
            if !dir.join(PROCS).exists() {
                std::fs::write(dir.join(PROCS), "").unwrap();
            }
        }
        let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
        std::fs::write(dir.join(PROCS), text).unwrap();
    }

    fn tree_at(mount: &Path) -> Tree {
        Tree {
            mount: Cgroup2Mount {
                mount_point: mount.to_path_buf(),
                root: PathBuf::from("/"),
            },
            root: mount.join("pam_cgroup"),
        }
    }

    /// Every cgroup visited (relative to the mount) with its processes, and the report.
    fn walked(
        mount: &Path,
        key: Option<&TreeKey>,
        limits: WalkLimits,
    ) -> (Vec<(PathBuf, Vec<u32>)>, WalkReport) {
        let tree = tree_at(mount);
        let mut seen = Vec::new();
        let mut report = WalkReport::default();
        let top = CgroupDir::open_unchecked(mount).unwrap();
        walk(
            top,
            &tree,
            key,
            limits,
            |dir, listing| {
                let rel = dir.strip_prefix(mount).unwrap().to_path_buf();
                seen.push((rel, listing.all().collect()));
                Told::All
            },
            &mut report,
        );
        (seen, report)
    }

    #[test]
    fn the_fences_are_skipped_and_everything_else_is_walked_in_any_bytes() {
        let mount = tempfile::tempdir().unwrap();
        let m = mount.path();
        let key = TreeKey::from_bytes([7; 16]);
        cgroup(m, "", &[1]);
        cgroup(m, "system.slice/php8.2-fpm.service", &[10, 11]);
        // A name in bytes that are not UTF-8 (a delegated subtree's owner chose it).
        cgroup(m, OsStr::from_bytes(b"system.slice/odd-\xff\xfe"), &[12]);
        cgroup(m, "pam_cgroup/unconfined/session-5", &[20]);
        cgroup(m, "pam_cgroup/users", &[]);
        let alice = Path::new("pam_cgroup/users").join(key.dir_name("alice"));
        cgroup(m, alice.join("session-3"), &[30]);
        // users/<user> of an older version: a fence too.
        cgroup(m, "pam_cgroup/users/bob/session-4", &[40]);
        // A child of users/ that is no user's (made by hand): walked.
        cgroup(m, "pam_cgroup/users/not a user!", &[50]);
        // A file that is no cgroup, and a symlink to a fence: neither is followed.
        std::fs::write(m.join("system.slice/notes"), "x").unwrap();
        std::os::unix::fs::symlink(m.join(&alice), m.join("system.slice/link")).unwrap();

        let (seen, report) = walked(m, Some(&key), SWEEP_LIMITS);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let pids: Vec<u32> = seen.iter().flat_map(|(_, p)| p.clone()).collect();
        assert_eq!(pids, [1, 20, 50, 12, 11, 10], "{seen:?}");
        assert!(seen
            .iter()
            .any(|(rel, _)| rel.as_os_str().as_bytes().ends_with(b"odd-\xff\xfe")));
        assert!(!seen
            .iter()
            .any(|(rel, _)| rel.starts_with("pam_cgroup/users/bob")));
        // The mount, pam_cgroup, unconfined, session-5, users, "not a user!", system.slice, odd-,
        // php8.2-fpm.service.
        assert_eq!(report.cgroups, 9);
    }

    #[test]
    fn without_the_key_the_fences_are_walked_too() {
        let mount = tempfile::tempdir().unwrap();
        let m = mount.path();
        cgroup(m, "pam_cgroup/users/bob/session-4", &[40]);
        let (seen, _) = walked(m, None, SWEEP_LIMITS);
        assert!(seen.iter().any(|(_, pids)| pids == &[40]), "{seen:?}");
    }

    #[test]
    fn the_walk_stops_at_its_depth_and_count_caps() {
        let mount = tempfile::tempdir().unwrap();
        let m = mount.path();
        let deep: PathBuf = (0..6).map(|i| format!("d{i}")).collect();
        cgroup(m, &deep, &[99]);
        for i in 0..3 {
            cgroup(m, format!("d0/d1/d2/d3/d4/d5/d6-{i}"), &[]);
        }
        let limits = WalkLimits {
            max_depth: 3,
            ..SWEEP_LIMITS
        };
        let (seen, report) = walked(m, None, limits);
        assert!(seen.iter().all(|(rel, _)| rel.components().count() <= 3));
        assert_eq!(report.cgroups, 4, "the mount and d0..d2");
        assert!(
            report.problems.iter().any(|p| p.contains("deeper than 3")),
            "{:?}",
            report.problems
        );

        let limits = WalkLimits {
            max_cgroups: 5,
            ..SWEEP_LIMITS
        };
        let (_, report) = walked(m, None, limits);
        assert_eq!(report.cgroups, 5);
        assert!(
            report.problems.iter().any(|p| p.contains("more than 5")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn the_processes_a_read_before_did_not_list_come_first_each_part_youngest_first() {
        let first = Listing::new_first(&[1, 2, 3], &[]);
        assert_eq!(
            (first.new.as_slice(), first.known.as_slice()),
            (&[3, 2, 1][..], &[][..])
        );
        // 7 and 9 joined since the read before (a hopper's next generation, a new CGI); the
        // kernel may list them anywhere (css_sets), not only last.
        let again = Listing::new_first(&[1, 7, 2, 3, 9], &[1, 2, 3, 8]);
        assert_eq!(again.new, [9, 7]);
        assert_eq!(again.known, [3, 2, 1]);
        assert_eq!(again.all().collect::<Vec<_>>(), [9, 7, 3, 2, 1]);
        assert!(Listing::new_first(&[], &[1]).is_empty());
    }

    #[test]
    fn a_cgroup_read_again_hands_its_new_processes_first() {
        let mount = tempfile::tempdir().unwrap();
        let m = mount.path();
        cgroup(m, "a", &[10, 11, 12, 13]);
        let tree = tree_at(m);
        let mut handed = Vec::new();
        let mut report = WalkReport::default();
        walk(
            CgroupDir::open_unchecked(m).unwrap(),
            &tree,
            None,
            SWEEP_LIMITS,
            |dir, listing| {
                if !dir.ends_with("a") {
                    return Told::All;
                }
                handed.push(listing.all().collect::<Vec<_>>());
                // 13 (the youngest) is gone before it was told; its child 14 is listed
                // among the older processes, as another css_set's would be.
                let path = dir.join(PROCS);
                std::fs::write(path, "10\n14\n11\n12\n").unwrap();
                if handed.len() == 1 {
                    Told::SomeGone
                } else {
                    Told::All
                }
            },
            &mut report,
        );
        assert_eq!(handed, [vec![13, 12, 11, 10], vec![14, 12, 11, 10]]);
    }

    #[test]
    fn a_cgroup_is_read_again_while_processes_were_gone_before_they_were_told() {
        let mount = tempfile::tempdir().unwrap();
        let m = mount.path();
        cgroup(m, "a", &[5]);
        let tree = tree_at(m);
        let mut reads = 0;
        let mut report = WalkReport::default();
        walk(
            CgroupDir::open_unchecked(m).unwrap(),
            &tree,
            None,
            SWEEP_LIMITS,
            |dir, _| {
                if dir.ends_with("a") {
                    reads += 1;
                    Told::SomeGone
                } else {
                    Told::All
                }
            },
            &mut report,
        );
        assert_eq!(reads, SWEEP_LIMITS.max_reads);
    }
}
