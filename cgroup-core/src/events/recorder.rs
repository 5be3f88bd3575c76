//! The daemon's sampler: once a second, every user cgroup under users/ is read, compared with
//! its previous sample (`detect`), and each fault gets its snapshot (`snapshot`) at once.
//! Takes the users/ directory and the procfs root as paths so a fake tree can drive it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::EventsConfig;
use crate::names::validate_user_name;

use super::detect::{Reading, UserState};
use super::snapshot::{take, Sources};
use super::when::now_ms;
use super::Event;

pub struct Recorder {
    cfg: EventsConfig,
    proc_root: PathBuf,
    states: BTreeMap<String, UserState>,
}

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
        }
    }

    /// A reloaded config: thresholds change, what was seen is kept.
    pub fn set_config(&mut self, cfg: EventsConfig) {
        self.cfg = cfg;
    }

    pub fn config(&self) -> &EventsConfig {
        &self.cfg
    }

    /// One pass over `users_dir` at the current time.
    pub fn sample(&mut self, users_dir: &Path) -> Pass {
        self.sample_at(users_dir, now_ms())
    }

    pub fn sample_at(&mut self, users_dir: &Path, time_ms: u64) -> Pass {
        let mut pass = Pass::default();
        let users: Vec<(String, PathBuf)> = crate::inventory::child_cgroups(users_dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|path| {
                let name = path.file_name()?.to_str()?.to_string();
                validate_user_name(&name).ok()?;
                Some((name, path))
            })
            .collect();
        // A user whose cgroup went away starts from a new baseline if it comes back.
        self.states
            .retain(|name, _| users.iter().any(|(n, _)| n == name));
        for (name, dir) in users {
            let reading = match Reading::read(&dir) {
                Ok(r) => r,
                Err(e) if e.errno() == Some(libc::ENOENT) => continue,
                Err(e) => {
                    pass.unreadable.push((name, e.to_string()));
                    continue;
                }
            };
            let Some(state) = self.states.get_mut(&name) else {
                self.states.insert(name, UserState::new(&reading));
                continue;
            };
            for fault in state.observe(&reading, time_ms, &self.cfg) {
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
                });
            }
        }
        pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::FaultKind;

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
        assert!(r.sample_at(&users, 1000).events.is_empty(), "baseline");
        write("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
        let pass = r.sample_at(&users, 2000);
        let kinds: Vec<FaultKind> = pass.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![FaultKind::MemoryMax, FaultKind::Oom, FaultKind::OomKill]
        );
        let e = &pass.events[2];
        assert_eq!((e.user.as_str(), e.delta), ("alice", 1));
        assert_eq!(e.limit.as_deref(), Some("1048576"));
        assert_eq!(e.processes[0].pid, 4242);
        assert_eq!(e.processes[0].cmdline, "memhog -m 900M");
        assert!(r.sample_at(&users, 3000).events.is_empty());
    }
}
