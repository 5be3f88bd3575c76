//! The daemon's sampler: once a second, every user cgroup under users/ is read, compared with
//! its previous sample (`detect`), and each fault gets its snapshot (`snapshot`) at once.
//! Takes the users/ directory and the procfs root as paths so a fake tree can drive it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::config::EventsConfig;
use crate::stats::semantics::EventSemantics;
use crate::tree::TreeKey;

use super::detect::{Reading, UserState};
use super::kmsg::{belongs_to, Kmsg, OomVictim};
use super::snapshot::{take, Sources};
use super::Event;
use super::FaultKind;
use crate::time::now_ms;

pub struct Recorder {
    cfg: EventsConfig,
    proc_root: PathBuf,
    states: BTreeMap<String, UserState>,
    /// The kernel log and users/ relative to the cgroup2 mount (how the log names cgroups).
    kmsg: Option<Kmsg>,
    users_rel: Option<String>,
    /// OOM victims read from the log and not yet attached to an event (kept 30 s).
    victims: Vec<(u64, OomVictim)>,
}

/// How long a logged OOM kill waits for its user's oom_kill counter to move.
const VICTIM_KEEP_MS: u64 = 30_000;

/// What one pass found: the events, and the users whose cgroup could not be read (why).
#[derive(Debug, Default)]
pub struct Pass {
    pub events: Vec<Event>,
    pub unreadable: Vec<(String, String)>,
}

impl Recorder {
    pub fn new(cfg: EventsConfig, proc_root: &Path) -> Recorder {
        Recorder {
            cfg,
            proc_root: proc_root.to_path_buf(),
            states: BTreeMap::new(),
            kmsg: None,
            users_rel: None,
            victims: Vec::new(),
        }
    }

    /// Reads OOM victims from the kernel log (`users_rel`: users/ relative to the cgroup2
    /// mount, e.g. `/system.slice/pam-cgroup.service/tree/users`).
    pub fn with_kernel_log(mut self, kmsg: Kmsg, users_rel: String) -> Recorder {
        self.kmsg = Some(kmsg);
        self.users_rel = Some(users_rel);
        self
    }

    /// Notes an OOM kill the kernel logged (what `with_kernel_log` reads; tests feed it).
    pub fn note_victim(&mut self, time_ms: u64, users_rel: &str, victim: OomVictim) {
        self.users_rel.get_or_insert_with(|| users_rel.to_string());
        self.victims.push((time_ms, victim));
    }

    fn read_victims(&mut self, time_ms: u64) {
        if let Some(k) = self.kmsg.as_mut() {
            self.victims
                .extend(k.victims().into_iter().map(|v| (time_ms, v)));
        }
        self.victims
            .retain(|(t, _)| time_ms.saturating_sub(*t) <= VICTIM_KEEP_MS);
    }

    /// The logged victims of `user`: inside its cgroup by the kernel-made path, and running
    /// as its uid (so a name chosen to look like a path never moves a victim to another user).
    /// The kills in `user`'s cgroup directory `dir_name` (its own or a legacy one).
    fn take_victims(&mut self, user: &str, dir_name: &str) -> Vec<OomVictim> {
        let Some(users_rel) = self.users_rel.as_ref() else {
            return Vec::new();
        };
        let Ok(uid) = crate::nss::lookup_user(user).map(|u| u.uid) else {
            return Vec::new();
        };
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.victims)
            .into_iter()
            .partition(|(_, v)| v.uid == uid && belongs_to(v, users_rel, dir_name));
        self.victims = rest;
        mine.into_iter().map(|(_, v)| v).collect()
    }

    /// A reloaded config: thresholds change, what was seen is kept.
    pub fn set_config(&mut self, cfg: EventsConfig) {
        self.cfg = cfg;
    }

    pub fn config(&self) -> &EventsConfig {
        &self.cfg
    }

    /// One pass over `users_dir` (user cgroups named under `key`) at the current time.
    pub fn sample(&mut self, users_dir: &Path, key: &TreeKey) -> Pass {
        self.sample_at(users_dir, key, now_ms())
    }

    pub fn sample_at(&mut self, users_dir: &Path, key: &TreeKey, time_ms: u64) -> Pass {
        let mut pass = Pass::default();
        self.read_victims(time_ms);
        // (directory name, user, path): a user may have a legacy cgroup beside its own, each
        // with its own counters.
        // With each cgroup's inode: a user cgroup removed and made again between two passes
        // has counters that started over.
        let users: Vec<(String, String, PathBuf, u64)> =
            crate::inventory::child_cgroups_with_inodes(users_dir)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(path, inode)| {
                    let dir_name = path.file_name()?.to_str()?.to_string();
                    let user = key.classify(&dir_name)?.user().to_string();
                    Some((dir_name, user, path, inode))
                })
                .collect();
        // A user whose cgroup went away starts from a new baseline if it comes back. (A set:
        // a search of the list for each state was 10^8 comparisons a pass at 10,000 users.)
        let present: HashSet<&str> = users.iter().map(|(d, _, _, _)| d.as_str()).collect();
        self.states
            .retain(|dir_name, _| present.contains(dir_name.as_str()));
        // How the kernel counts faults: once a pass (it reads the mount table).
        let Some(sem) = users
            .first()
            .map(|(_, _, dir, _)| EventSemantics::detect(dir))
        else {
            return pass;
        };
        for (dir_name, name, dir, inode) in users {
            // What was seen of a cgroup since removed says nothing of the new one's subtree.
            let before = self
                .states
                .get(&dir_name)
                .filter(|s| s.is_other_cgroup(Some(inode)) != Some(true));
            let mut reading = match Reading::counters(&dir, sem, &self.cfg, before) {
                Ok(r) => Reading {
                    cgroup_inode: Some(inode),
                    ..r
                },
                Err(e) if e.errno() == Some(libc::ENOENT) => continue,
                Err(e) => {
                    pass.unreadable.push((name, e.to_string()));
                    continue;
                }
            };
            let Some(state) = self.states.get_mut(&dir_name) else {
                self.states.insert(dir_name, UserState::new(&reading));
                continue;
            };
            let mut faults = state.observe(&reading, time_ms, &self.cfg);
            if faults.is_empty() {
                continue;
            }
            // The limits and usage the events show, read for this user alone. Unreadable
            // (the cgroup went away meanwhile): the events go without them.
            if reading.add_limits(&dir).is_ok() {
                for fault in &mut faults {
                    fault.describe(&reading, &self.cfg);
                }
            }
            for fault in faults {
                let killed = if fault.kind == FaultKind::OomKill {
                    // The record may have come right after the counter moved.
                    self.read_victims(time_ms);
                    self.take_victims(&name, &dir_name)
                } else {
                    Vec::new()
                };
                let processes = take(
                    &Sources {
                        user_dir: &dir,
                        proc_root: &self.proc_root,
                    },
                    self.cfg.top_processes as usize,
                    fault.kind.by_memory(),
                );
                pass.events.push(Event {
                    time_ms,
                    user: name.clone(),
                    kind: fault.kind,
                    delta: fault.delta,
                    limit: fault.limit,
                    usage: fault.usage,
                    processes,
                    killed,
                    from: None,
                });
            }
        }
        pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_tree_counters_become_events_with_snapshots() {
        let tmp = tempfile::tempdir().unwrap();
        let users = tmp.path().join("users");
        let alice = users.join("alice");
        let leaf = alice.join("session-9");
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::create_dir_all(users.join("not a user!")).unwrap();
        let write = |name: &str, text: &str| std::fs::write(alice.join(name), text).unwrap();
        write("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
        write("memory.max", "1048576\n");
        write("memory.current", "1000000\n");
        write("cgroup.procs", "");
        std::fs::write(leaf.join("cgroup.procs"), "4242\n").unwrap();
        let proc_root = tmp.path().join("proc");
        std::fs::create_dir_all(proc_root.join("4242")).unwrap();
        std::fs::write(
            proc_root.join("4242/stat"),
            "4242 (memhog) R 1 1 1 0 -1 0 0 0 0 0 5 5 0 0 20 0 1 0 1 1 256 0",
        )
        .unwrap();
        std::fs::write(proc_root.join("4242/cmdline"), "memhog\0-m\0900M\0").unwrap();
        let mut r = Recorder::new(EventsConfig::default(), &proc_root);
        assert!(
            r.sample_at(&users, &TreeKey::from_bytes([0; 16]), 1000)
                .events
                .is_empty(),
            "baseline"
        );
        write("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
        let pass = r.sample_at(&users, &TreeKey::from_bytes([0; 16]), 2000);
        let kinds: Vec<FaultKind> = pass.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![FaultKind::MemoryMax, FaultKind::Oom, FaultKind::OomKill]
        );
        let e = &pass.events[2];
        assert_eq!((e.user.as_str(), e.delta), ("alice", 1));
        assert_eq!(e.limit.as_deref(), Some("1048576"));
        assert_eq!(e.usage, Some(1_000_000.0));
        assert_eq!(e.processes[0].pid, 4242);
        assert_eq!(e.processes[0].cmdline, "memhog -m 900M");
        assert!(r
            .sample_at(&users, &TreeKey::from_bytes([0; 16]), 3000)
            .events
            .is_empty());
    }

    #[test]
    fn a_quiet_pass_reads_only_what_faults_are_found_in() {
        // Files a pass must not read while nothing happens: each is a directory here, so a
        // read of it fails (EISDIR) and the user would be reported unreadable.
        let tmp = tempfile::tempdir().unwrap();
        let users = tmp.path().join("users");
        let bob = users.join("bob");
        for name in [
            "memory.max",
            "memory.high",
            "memory.current",
            "memory.peak",
            "pids.max",
            "pids.current",
            "cpu.max",
            "io.stat",
            "cpu.pressure",
        ] {
            std::fs::create_dir_all(bob.join(name)).unwrap();
        }
        let write = |name: &str, text: &str| std::fs::write(bob.join(name), text).unwrap();
        write("pids.events", "max 0\n");
        write("pids.events.local", "max 0\n");
        write("cpu.stat", "usage_usec 1\nnr_periods 10\nnr_throttled 0\n");
        let psi = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        write("memory.pressure", psi);
        write("io.pressure", psi);
        let key = TreeKey::from_bytes([0; 16]);
        let mut r = Recorder::new(EventsConfig::default(), &tmp.path().join("proc"));
        for t in [1000, 2000, 3000] {
            let pass = r.sample_at(&users, &key, t);
            assert!(pass.unreadable.is_empty(), "{:?}", pass.unreadable);
            assert!(pass.events.is_empty());
        }
        // A fault: its limit is read then, and unreadable it costs the event nothing.
        write("pids.events", "max 4\n");
        let pass = r.sample_at(&users, &key, 4000);
        assert_eq!(pass.events.len(), 1, "{:?}", pass.unreadable);
        assert_eq!(pass.events[0].kind, FaultKind::PidsMax);
        assert_eq!(pass.events[0].delta, 4);
        assert_eq!(pass.events[0].limit, None);
    }

    #[test]
    fn a_user_whose_processes_did_not_run_is_not_walked_for_refused_forks() {
        // Refused forks counted where they happen (no pids.events.local: Debian 12's 6.1): a
        // pass sums the user's subtree only when the user's CPU time moved since.
        let tmp = tempfile::tempdir().unwrap();
        let users = tmp.path().join("users");
        let carol = users.join("carol");
        let leaf = carol.join("session-4");
        std::fs::create_dir_all(&leaf).unwrap();
        let write =
            |dir: &Path, name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        write(&carol, "pids.events", "max 0\n");
        write(&carol, "cpu.stat", "usage_usec 100\n");
        write(&leaf, "pids.events", "max 0\n");
        let key = TreeKey::from_bytes([0; 16]);
        let mut r = Recorder::new(EventsConfig::default(), &tmp.path().join("proc"));
        if EventSemantics::detect(&carol).memory_hierarchical {
            assert!(
                r.sample_at(&users, &key, 1000).events.is_empty(),
                "baseline"
            );
            // The leaf's count moves while carol's CPU time does not (a refused fork is a
            // process running: only a test makes this): not walked, nothing seen.
            write(&leaf, "pids.events", "max 3\n");
            assert!(r.sample_at(&users, &key, 2000).events.is_empty());
            // Her CPU time moved: walked, the three refused forks found.
            write(&carol, "cpu.stat", "usage_usec 180\n");
            let pass = r.sample_at(&users, &key, 3000);
            assert_eq!(pass.events.len(), 1, "{:?}", pass.unreadable);
            assert_eq!(
                (pass.events[0].kind, pass.events[0].delta),
                (FaultKind::PidsMax, 3)
            );
        }
        // Without cpu.stat every pass walks.
        std::fs::remove_file(carol.join("cpu.stat")).unwrap();
        let mut r = Recorder::new(EventsConfig::default(), &tmp.path().join("proc"));
        assert!(
            r.sample_at(&users, &key, 1000).events.is_empty(),
            "baseline"
        );
        write(&leaf, "pids.events", "max 5\n");
        let pass = r.sample_at(&users, &key, 2000);
        assert_eq!(pass.events.len(), 1, "{:?}", pass.unreadable);
        assert_eq!(
            (pass.events[0].kind, pass.events[0].delta),
            (FaultKind::PidsMax, 2)
        );
    }

    #[test]
    fn a_customers_own_rmdir_of_a_sub_cgroup_with_refused_forks_is_no_event() {
        // Refused forks counted where they happen (Debian 12's 6.1): the user's count is a sum
        // over its subtree, and the customer may remove its own sub-cgroups from a live leaf
        // (root removes them only from a dead one, carrying their counts). The sum drops; that is no fault, and what is left was reported already.
        let tmp = tempfile::tempdir().unwrap();
        let users = tmp.path().join("users");
        let dave = users.join("dave");
        let leaf = dave.join("session-4");
        let (a, b) = (leaf.join("a"), leaf.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let write =
            |dir: &Path, name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        for dir in [&dave, &leaf, &a, &b] {
            write(dir, "pids.events", "max 0\n");
        }
        let key = TreeKey::from_bytes([0; 16]);
        let cfg = EventsConfig {
            repeat_after_secs: 1,
            ..EventsConfig::default()
        };
        let mut r = Recorder::new(cfg, &tmp.path().join("proc"));
        assert!(r.sample_at(&users, &key, 1000).events.is_empty());
        write(&a, "pids.events", "max 5\n");
        write(&b, "pids.events", "max 100\n");
        let pids_max = |pass: Pass| -> Vec<u64> {
            pass.events
                .iter()
                .filter(|e| e.kind == FaultKind::PidsMax)
                .map(|e| e.delta)
                .collect()
        };
        if EventSemantics::detect(&dave).pids_hierarchical {
            // The host's kernel sums for us: the walk is not taken, nothing to show here.
            return;
        }
        assert_eq!(pids_max(r.sample_at(&users, &key, 2000)), vec![105]);
        std::fs::remove_dir_all(&a).unwrap();
        for t in [4000, 6000] {
            assert_eq!(pids_max(r.sample_at(&users, &key, t)), Vec::<u64>::new());
        }
        write(&b, "pids.events", "max 103\n");
        assert_eq!(pids_max(r.sample_at(&users, &key, 8000)), vec![3]);
        // users/dave removed and made again between two passes: its counts are new. (Made
        // beside the old one and renamed: a test file system may reuse a freed inode at once,
        // cgroupfs does not.)
        let new = users.join("dave.new");
        std::fs::create_dir_all(&new).unwrap();
        write(&new, "pids.events", "max 2\n");
        std::fs::remove_dir_all(&dave).unwrap();
        std::fs::rename(&new, &dave).unwrap();
        assert_eq!(pids_max(r.sample_at(&users, &key, 10_000)), vec![2]);
    }

    #[test]
    fn a_threshold_event_keeps_its_measured_share_with_the_limits_read() {
        let tmp = tempfile::tempdir().unwrap();
        let users = tmp.path().join("users");
        let eve = users.join("eve");
        std::fs::create_dir_all(&eve).unwrap();
        let write = |name: &str, text: &str| std::fs::write(eve.join(name), text).unwrap();
        write("memory.current", "5000\n");
        write("memory.max", "9000\n");
        let psi = |avg: &str| format!("some avg10={avg} avg60=0.00 avg300=0.00 total=0\n");
        write("memory.pressure", &psi("0.00"));
        let key = TreeKey::from_bytes([0; 16]);
        let mut r = Recorder::new(EventsConfig::default(), &tmp.path().join("proc"));
        assert!(r.sample_at(&users, &key, 1000).events.is_empty());
        write("memory.pressure", &psi("45.50"));
        let pass = r.sample_at(&users, &key, 2000);
        assert_eq!(pass.events.len(), 1);
        let e = &pass.events[0];
        assert_eq!(e.kind, FaultKind::MemoryPressure);
        assert_eq!(
            e.usage,
            Some(45.5),
            "the share measured, not memory.current"
        );
        assert_eq!(e.limit.as_deref(), Some("20%"));
    }

    #[test]
    fn a_logged_victim_goes_to_its_users_oom_kill_event_only() {
        let tmp = tempfile::tempdir().unwrap();
        let users = tmp.path().join("users");
        // A real user for the uid check: root (uid 0).
        let dir = users.join("root");
        std::fs::create_dir_all(&dir).unwrap();
        let events = |n: u64| format!("low 0\nhigh 0\nmax 0\noom {n}\noom_kill {n}\n");
        std::fs::write(dir.join("memory.events"), events(0)).unwrap();
        let mut r = Recorder::new(EventsConfig::default(), &tmp.path().join("proc"));
        assert!(r
            .sample_at(&users, &TreeKey::from_bytes([0; 16]), 1000)
            .events
            .is_empty());
        let victim = |uid: u32, memcg: &str| OomVictim {
            pid: 99,
            uid,
            comm: "memhog".into(),
            task_memcg: memcg.into(),
        };
        r.note_victim(1500, "/t/users", victim(2001, "/t/users/root/session-1"));
        r.note_victim(1500, "/t/users", victim(0, "/t/users/rootx/session-1"));
        r.note_victim(1500, "/t/users", victim(0, "/t/users/root/session-1"));
        std::fs::write(dir.join("memory.events"), events(1)).unwrap();
        let pass = r.sample_at(&users, &TreeKey::from_bytes([0; 16]), 2000);
        let kill = pass
            .events
            .iter()
            .find(|e| e.kind == FaultKind::OomKill)
            .unwrap();
        assert_eq!(kill.killed.len(), 1, "{:?}", kill.killed);
        assert_eq!((kill.killed[0].uid, kill.killed[0].pid), (0, 99));
        let oom = pass
            .events
            .iter()
            .find(|e| e.kind == FaultKind::Oom)
            .unwrap();
        assert!(oom.killed.is_empty());
    }
}
