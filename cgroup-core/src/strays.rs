//! Processes of confined customers outside their fence ("strays"), found by a walk of the
//! cgroups outside the fences and a listing of /proc (`scan`): shared by the daemon's safety
//! net (its sweep, at start and periodically) and by `cgroupctl doctor`.
//!
//! A process belongs to the customer whose uid is its REAL uid. The effective uid is not
//! enough: a root daemon that only seteuid()s for a moment (sshd reading authorized_keys,
//! a mail server writing a mailbox) is still root's and must not be moved. Nor is the real
//! uid alone: a root process that switches only its real uid for a moment and keeps root as
//! its effective or saved uid (pam_keyinit in sshd's session stack: `setreuid(user, -1)` to
//! make the customer's keyring, then back) can return to root at once and is root's too.
//! Moving it put sshd's privileged monitor into the customer's fence at every login, and
//! into a suspended customer's frozen cgroup, where the login hung instead of being refused.
//!
//! The fence of a customer is `users/<user>/`, whatever is below it. A process of customer B
//! found in customer A's fence is a stray too: A's limits would pay for it, A's private
//! address would be its own, and A (who owns the delegated leaf) could freeze, kill or starve
//! it. The uid decides whose fence a process is in, never the place it happens to be.

use std::collections::HashMap;
use std::path::Path;

use crate::config::Policy;
use crate::error::Result;
use crate::inventory::status_ids;
use crate::nss::{group_names, lookup_uid, UserInfo};
use crate::policy::exemption;
use crate::tree::Tree;

pub mod walk;

/// A process of a confined uid outside that user's fence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stray {
    pub pid: u32,
    /// Real uid.
    pub uid: u32,
    pub user: String,
    /// Its cgroup v2 path as /proc/PID/cgroup shows it.
    pub cgroup: String,
    /// How it got there when the cgroup tells (`systemd unit php8.2-fpm.service`).
    pub origin: Option<String>,
}

/// Who is confined, by uid, through NSS and `[policy]`; answers are kept until `forget`
/// (the daemon forgets at each sweep and reload, so a changed passwd or policy is seen).
pub struct Confinement {
    policy: Policy,
    known: HashMap<u32, Option<UserInfo>>,
    /// When set, every other uid counts as never confined: tests and benches that share a
    /// host with other trees act on their own users only.
    only: Option<Vec<u32>>,
}

impl Confinement {
    pub fn new(policy: Policy) -> Confinement {
        Confinement {
            policy,
            known: HashMap::new(),
            only: None,
        }
    }

    /// Acts on these uids only (empty: on every uid).
    pub fn only(mut self, uids: &[u32]) -> Confinement {
        self.only = (!uids.is_empty()).then(|| uids.to_vec());
        self
    }

    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
        self.forget();
    }

    pub fn forget(&mut self) {
        self.known.clear();
    }

    /// Without NSS: uids no policy could confine (root, below min_uid, above max_uid).
    pub fn never_confined(&self, uid: u32) -> bool {
        uid == 0
            || uid < self.policy.min_uid
            || uid > self.policy.max_uid
            || self.only.as_ref().is_some_and(|only| !only.contains(&uid))
    }

    /// The confined user of `uid`; `None` for root, exempt users and groups, uids below
    /// min_uid and uids NSS does not know. An NSS failure is an error and is not remembered.
    pub fn confined(&mut self, uid: u32) -> Result<Option<UserInfo>> {
        if self.never_confined(uid) {
            return Ok(None);
        }
        if let Some(known) = self.known.get(&uid) {
            return Ok(known.clone());
        }
        let answer = match lookup_uid(uid)? {
            Some(user) => {
                let groups = group_names(&user)?;
                exemption(&self.policy, &user, Some(&groups))
                    .is_none()
                    .then_some(user)
            }
            None => None,
        };
        self.known.insert(uid, answer.clone());
        Ok(answer)
    }
}

/// A process's owner (see the module's rule: its real uid, or root while any of its real,
/// effective and saved uids is still root's) and cgroup v2 path (`None` once it has exited).
pub fn ruid_and_cgroup(proc_root: &Path, pid: u32) -> Option<(u32, String)> {
    let dir = proc_root.join(pid.to_string());
    let status = crate::tree::fs::read_proc_file(&dir.join("status")).ok()?;
    let owner = owner_of(&status_ids(&status, "Uid:")?)?;
    let cgroup = cgroup_v2_line(&crate::tree::fs::read_proc_file(&dir.join("cgroup")).ok()?)?;
    Some((owner, cgroup))
}

/// The owner of a process from its `Uid:` line (real, effective, saved, filesystem): root
/// while it can still be root again (its real, effective or saved uid is 0), else its real uid.
fn owner_of(uids: &[u32]) -> Option<u32> {
    let (real, effective, saved) = (*uids.first()?, *uids.get(1)?, *uids.get(2)?);
    Some(if real == 0 || effective == 0 || saved == 0 {
        0
    } else {
        real
    })
}

fn cgroup_v2_line(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|rel| rel.trim().to_string())
}

/// Is the cgroup `cgroup` (as /proc/PID/cgroup shows it) inside a cgroup of `user` (its own,
/// or a legacy one an upgrade left while its sessions live)?
pub fn inside_fence(tree: &Tree, cgroup: &str, user: &str) -> bool {
    matches!(tree.user_of(&tree.path_of(cgroup)), Ok(Some((u, _, _))) if u == user)
}

/// The systemd unit a cgroup path names (its deepest `.service` or `.scope` component).
pub fn unit_of(cgroup: &str) -> Option<&str> {
    cgroup
        .rsplit('/')
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
}

/// How a process came to be in `cgroup`, when its path tells.
pub fn origin_of(cgroup: &str) -> Option<String> {
    unit_of(cgroup).map(|unit| format!("systemd unit {unit}"))
}

/// The service cgroup the safety net files a process under: the systemd service that started
/// it (`php8.2-fpm.service` -> `php8.2-fpm`), else the command name of its parent (what
/// switched it to the customer's uid), else its own; every candidate made a valid name.
pub fn service_name(cgroup: &str, parent_comm: Option<&str>, comm: Option<&str>) -> String {
    let from_unit = unit_of(cgroup)
        .and_then(|u| u.strip_suffix(".service"))
        .map(|u| u.replace('@', "-"));
    let candidates = [from_unit.as_deref(), parent_comm, comm];
    let name = candidates.into_iter().flatten().find_map(as_service_name);
    name.unwrap_or_else(|| FALLBACK_SERVICE.to_string())
}

/// The service of a process whose origin tells nothing usable.
pub const FALLBACK_SERVICE: &str = "setuid";

/// `text` as a service name: characters outside the allowed set become '_'; `None` when even
/// that is not a valid, unreserved name.
fn as_service_name(text: &str) -> Option<String> {
    let cleaned: String = text
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(crate::names::MAX_NAME_LEN)
        .collect();
    let cleaned = cleaned.trim_start_matches(['-', '.']).to_string();
    crate::service::check_service_name(&cleaned)
        .is_ok()
        .then_some(cleaned)
}

/// What the safety net reads of a process in /proc/PID/stat, in one read: a stray found is
/// stopped on what this says (a hopper forks again within ~0.2 ms), so nothing else is read
/// before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    /// The command name (inside parentheses in the file, and may itself contain ") ").
    pub comm: String,
    /// `R`, `S`, `T`, `Z`...
    pub state: char,
}

impl ProcStat {
    /// Stopped (`T`, or `t` under a tracer)?
    pub fn stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }

    /// Exited, a zombie not yet reaped (a pidfd still calls it alive)?
    pub fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// /proc/PID/stat of `pid`; `None` once it is gone.
pub fn proc_stat(proc_root: &Path, pid: u32) -> Option<ProcStat> {
    stat_in(&proc_root.join(pid.to_string()))
}

/// What a process runs as now, once its main thread may have exited: `None` when every
/// thread has.
pub struct Running {
    /// The main thread's stat, or a running thread's when the main one exited.
    pub stat: ProcStat,
    /// Where that running thread is, when the main thread exited (see `running`).
    pub thread_cgroup: Option<String>,
}

/// The process `pid` as it runs now. A main thread that calls pthread_exit() (or the exit
/// syscall) while other threads go on leaves a zombie leader: /proc/PID/stat says `Z`, and
/// /proc/PID/cgroup stays where the leader exited while the threads run, and are moved, on.
/// A write of PID to cgroup.procs moves those threads; cgroup.procs of the cgroup the leader
/// exited in keeps listing PID. Such a process is told by a running thread of it, its stat
/// and its cgroup; `None` once none runs.
pub fn running(proc_root: &Path, pid: u32) -> Option<Running> {
    let dir = proc_root.join(pid.to_string());
    let stat = stat_in(&dir)?;
    if !stat.exited() {
        return Some(Running {
            stat,
            thread_cgroup: None,
        });
    }
    let tasks = std::fs::read_dir(dir.join("task")).ok()?;
    tasks
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_str() != Some(&pid.to_string()))
        .find_map(|entry| {
            let task = entry.path();
            let stat = stat_in(&task).filter(|s| !s.exited())?;
            let text = crate::tree::fs::read_proc_file(&task.join("cgroup")).ok()?;
            Some(Running {
                stat,
                thread_cgroup: Some(cgroup_v2_line(&text)?),
            })
        })
}

/// The stat file in a /proc directory of a process or of one of its threads.
fn stat_in(dir: &Path) -> Option<ProcStat> {
    let stat = crate::tree::fs::read_proc_file(&dir.join("stat")).ok()?;
    let open = stat.find('(')?;
    // The comm may hold ") T ": the fields follow the last ')'.
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let mut fields = stat.get(close + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(ProcStat { ppid, comm, state })
}

/// The parent pid and command name of a process, from /proc/PID/stat.
pub fn parent_and_comm(proc_root: &Path, pid: u32) -> Option<(u32, String)> {
    proc_stat(proc_root, pid).map(|s| (s.ppid, s.comm))
}

/// Is the process stopped (`T`, or `t` under a tracer)?
pub fn stopped(proc_root: &Path, pid: u32) -> bool {
    proc_stat(proc_root, pid).is_some_and(|s| s.stopped())
}

/// What one look at a process told.
pub enum Sighting {
    Stray(Stray),
    /// Root's, an exempt user's, one inside its fence: left alone.
    Other,
    /// Exited before it could be read: it may have been a stray that forked.
    Gone,
}

/// Is the process `pid` a stray? An NSS failure for its uid calls it `Other` and is added to
/// `problems` (once).
pub fn sighting(
    proc_root: &Path,
    tree: &Tree,
    who: &mut Confinement,
    pid: u32,
    problems: &mut Vec<String>,
) -> Sighting {
    let Some((uid, cgroup)) = ruid_and_cgroup(proc_root, pid) else {
        return Sighting::Gone;
    };
    if who.never_confined(uid) {
        return Sighting::Other;
    }
    let user = match who.confined(uid) {
        Ok(Some(user)) => user,
        Ok(None) => return Sighting::Other,
        Err(e) => {
            let text = e.to_string();
            if !problems.contains(&text) {
                problems.push(text);
            }
            return Sighting::Other;
        }
    };
    if inside_fence(tree, &cgroup, &user.name) {
        return Sighting::Other;
    }
    // A zombie waits for its parent to reap it: nothing runs, nothing can be moved. What it
    // forked before it exited is in the same cgroup, read again (`Gone`). One whose main
    // thread alone exited runs on where its threads are, and is listed (and drained) where
    // the main thread exited: `cgroup` stays that one.
    match running(proc_root, pid) {
        None => return Sighting::Gone,
        Some(Running {
            thread_cgroup: Some(thread_cgroup),
            ..
        }) if inside_fence(tree, &thread_cgroup, &user.name) => return Sighting::Other,
        Some(_) => {}
    }
    Sighting::Stray(Stray {
        pid,
        uid,
        user: user.name,
        origin: origin_of(&cgroup),
        cgroup,
    })
}

/// Every process of a confined uid outside its fence, as `cgroupctl doctor` reports them; an
/// NSS failure for one uid skips that uid's processes and is returned beside, with what the
/// walk could not read.
///
/// Two looks, each finding what the other cannot. The walk of the cgroups outside the fences
/// (`walk`) reads each process as soon as its cgroup lists it: it finds one that lives a
/// millisecond (a hopper's generation), which the listing of /proc never does. The listing
/// finds what the walk cannot see: a process in a cgroup this mount does not show (a cgroup
/// namespace) or past the walk's caps, and one of customer B inside customer A's fence (the
/// fences are not walked: that is where every customer's processes are).
pub fn scan(proc_root: &Path, tree: &Tree, who: &mut Confinement) -> (Vec<Stray>, Vec<String>) {
    let mut strays = Vec::new();
    let mut problems = Vec::new();
    let walked = walk::outside_fences(tree, walk::SWEEP_LIMITS, |_, listing| {
        let mut told = walk::Told::All;
        for pid in listing.all() {
            match sighting(proc_root, tree, who, pid, &mut problems) {
                Sighting::Stray(stray) => strays.push(stray),
                Sighting::Other => {}
                Sighting::Gone => told = walk::Told::SomeGone,
            }
        }
        told
    });
    problems.extend(walked.problems);
    let (listed, listing_problems) = scan_listed(proc_root, tree, who);
    strays.extend(listed);
    for p in listing_problems {
        if !problems.contains(&p) {
            problems.push(p);
        }
    }
    strays.sort_by_key(|s| s.pid);
    strays.dedup_by_key(|s| s.pid);
    (strays, problems)
}

/// The strays found by a listing of /proc: every pid listed, then each read (see `scan` for
/// what this misses).
pub fn scan_listed(
    proc_root: &Path,
    tree: &Tree,
    who: &mut Confinement,
) -> (Vec<Stray>, Vec<String>) {
    let mut strays = Vec::new();
    let mut problems = Vec::new();
    let Ok(pids) = pids(proc_root) else {
        problems.push(format!("{}: cannot be listed", proc_root.display()));
        return (strays, problems);
    };
    for pid in pids {
        if let Sighting::Stray(stray) = sighting(proc_root, tree, who, pid, &mut problems) {
            strays.push(stray);
        }
    }
    strays.sort_by_key(|s| s.pid);
    (strays, problems)
}

/// Every process in `proc_root` (its numeric entries).
pub fn pids(proc_root: &Path) -> std::io::Result<Vec<u32>> {
    Ok(std::fs::read_dir(proc_root)?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect())
}

/// The children of every thread of `pid` (/proc/PID/task/*/children).
pub fn children(proc_root: &Path, pid: u32) -> Vec<u32> {
    let tasks = proc_root.join(pid.to_string()).join("task");
    let Ok(entries) = std::fs::read_dir(&tasks) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in entries.flatten() {
        let Ok(text) = crate::tree::fs::read_proc_file(&task.path().join("children")) else {
            continue;
        };
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_found_deepest_first() {
        assert_eq!(
            unit_of("/system.slice/php8.2-fpm.service"),
            Some("php8.2-fpm.service")
        );
        assert_eq!(
            unit_of("/user.slice/user-1000.slice/user@1000.service/app.slice/run-x.scope"),
            Some("run-x.scope")
        );
        assert_eq!(unit_of("/"), None);
        assert_eq!(unit_of("/pam_cgroup/unconfined/session-3"), None);
    }

    #[test]
    fn services_are_named_after_the_unit_then_the_parent() {
        assert_eq!(
            service_name("/system.slice/php8.2-fpm.service", Some("php-fpm8.2"), None),
            "php8.2-fpm"
        );
        assert_eq!(
            service_name("/system.slice/getty@tty1.service", None, None),
            "getty-tty1"
        );
        // A scope (a login) names no service: the parent's command does.
        assert_eq!(
            service_name("/user.slice/session-4.scope", Some("suexec"), Some("php")),
            "suexec"
        );
        assert_eq!(
            service_name("/", Some("php-fpm: pool"), None),
            "php-fpm__pool"
        );
        // Names that cannot be used fall through.
        assert_eq!(service_name("/", Some("session-9"), Some("..")), "setuid");
        assert_eq!(service_name("/", Some("cgroup.x"), Some("cron")), "cron");
    }

    #[test]
    fn stat_lines_with_odd_command_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("42");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("stat"), "42 (a) b (c) S 7 42 42 0 -1\n").unwrap();
        assert_eq!(
            parent_and_comm(dir.path(), 42),
            Some((7, "a) b (c".to_string()))
        );
    }

    #[test]
    fn a_process_named_in_bytes_that_are_not_utf8_is_still_read() {
        // A customer's CGI named "\xff\xfe.cgi", in a sub-cgroup named "odd-\xff": status and
        // stat carry the name unescaped, /proc/PID/cgroup the cgroup name as made.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("42");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(
            p.join("status"),
            b"Name:\t\xff\xfe.cgi\nUid:\t2001\t2001\t2001\t2001\n".as_slice(),
        )
        .unwrap();
        std::fs::write(p.join("cgroup"), b"0::/system.slice/odd-\xff\n".as_slice()).unwrap();
        std::fs::write(p.join("stat"), b"42 (\xff\xfe.cgi) S 7 42\n".as_slice()).unwrap();
        let (uid, cgroup) = ruid_and_cgroup(dir.path(), 42).expect("read in spite of the name");
        assert_eq!(uid, 2001);
        assert!(cgroup.starts_with("/system.slice/odd-"), "{cgroup}");
        let (ppid, comm) = parent_and_comm(dir.path(), 42).expect("stat read");
        assert_eq!(ppid, 7);
        assert!(comm.ends_with(".cgi"), "{comm}");
    }

    #[test]
    fn a_process_whose_main_thread_exited_is_told_by_a_running_thread() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("42");
        for (task, state, cgroup) in [("42", "Z", "/"), ("43", "Z", "/"), ("44", "S", "/x")] {
            let t = p.join("task").join(task);
            std::fs::create_dir_all(&t).unwrap();
            std::fs::write(t.join("stat"), format!("{task} (w) {state} 7 42\n")).unwrap();
            std::fs::write(t.join("cgroup"), format!("0::{cgroup}\n")).unwrap();
        }
        std::fs::write(p.join("stat"), "42 (main) Z 7 42\n").unwrap();
        let thread = running(dir.path(), 42).expect("a thread runs");
        assert_eq!(thread.stat.state, 'S');
        assert_eq!(thread.thread_cgroup.as_deref(), Some("/x"));
        // Every thread exited: nothing runs.
        std::fs::write(p.join("task/44/stat"), "44 (w) Z 7 42\n").unwrap();
        assert!(running(dir.path(), 42).is_none());
        // A main thread that runs is the process.
        std::fs::write(p.join("stat"), "42 (main) R 7 42\n").unwrap();
        let main = running(dir.path(), 42).expect("runs");
        assert_eq!((main.stat.state, main.thread_cgroup), ('R', None));
    }

    #[test]
    fn stopped_processes_are_told_by_their_state() {
        let dir = tempfile::tempdir().unwrap();
        for (pid, line) in [
            (1, "1 (x) T 0 1 1 0 -1\n"),
            (2, "2 (a) T (b) S 0 2 2 0 -1\n"),
            (3, "3 (t) t 0 3 3 0 -1\n"),
        ] {
            let p = dir.path().join(pid.to_string());
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("stat"), line).unwrap();
        }
        assert!(stopped(dir.path(), 1));
        // The comm may hold ") T ": the state follows the last ')'.
        assert!(!stopped(dir.path(), 2));
        assert!(stopped(dir.path(), 3));
        assert!(!stopped(dir.path(), 4), "gone");
        assert!(proc_stat(dir.path(), 4).is_none_or(|s| s.exited()));
        assert!(!proc_stat(dir.path(), 1).is_none_or(|s| s.exited()));
    }

    #[test]
    fn a_process_that_can_be_root_again_is_roots() {
        // A customer's process: every uid the customer's.
        assert_eq!(owner_of(&[2001, 2001, 2001, 2001]), Some(2001));
        // pam_keyinit in a root sshd: setreuid(2001, -1) keeps root as effective and saved uid.
        assert_eq!(owner_of(&[2001, 0, 0, 0]), Some(0));
        // A root daemon's seteuid(2001): real and saved uid still root.
        assert_eq!(owner_of(&[0, 2001, 0, 2001]), Some(0));
        // setresuid(2001, 2001, 0): can switch back through the saved uid.
        assert_eq!(owner_of(&[2001, 2001, 0, 2001]), Some(0));
        // A customer running another customer's setuid program: the real uid decides.
        assert_eq!(owner_of(&[2001, 2002, 2002, 2002]), Some(2001));
        assert_eq!(owner_of(&[2001, 2001]), None);
    }

    #[test]
    fn root_and_system_uids_never_reach_nss() {
        let who = Confinement::new(Policy::default());
        assert!(who.never_confined(0));
        assert!(who.never_confined(999));
        assert!(!who.never_confined(1000));
    }
}
