//! What `cgroupctl me` shows a customer: its own limits, usage and recent faults, and nothing
//! of anybody else. The daemon builds it for the uid the kernel gives for the peer of its
//! socket (SO_PEERCRED); the customer sends nothing, so it cannot choose a path, a user or a
//! file for the daemon to read. Every path here is users/<name of that uid>/ plus fixed file
//! names; snapshot processes are kept only when they are the customer's own (a root process,
//! such as sshd's privileged half, can sit in a customer's session leaf).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::cgroup_files;
use crate::names::validate_user_name;
use crate::stats::{read_optional, read_user_stats, CgroupStats};

use super::Event;

/// The limit files shown (fixed names: nothing here comes from the customer).
pub const LIMIT_FILES: [&str; 8] = [
    "memory.max",
    "memory.high",
    "memory.swap.max",
    "pids.max",
    "cpu.max",
    "cpu.weight",
    "io.max",
    cgroup_files::MAX_DESCENDANTS,
];

/// The most recent events a customer is shown.
pub const MAX_EVENTS: usize = 50;

#[derive(Debug, Serialize)]
pub struct MeAnswer {
    pub user: String,
    pub uid: u32,
    /// users/<user> exists: the customer is confined by pam_cgroup.
    pub confined: bool,
    pub limits: BTreeMap<String, String>,
    pub usage: Option<CgroupStats>,
    /// The customer's recent faults, oldest first, with only its own processes.
    pub events: Vec<Event>,
    /// Why something is missing (no history yet, a read error), in words for the customer.
    pub note: Option<String>,
}

/// The answer for `user` (resolved from the peer's uid by the caller), whose cgroup is
/// `user_dir` (`Tree::user_dir`; `None` when it cannot be named). `recent`: its last events
/// from the history database (`history::events::of_customer`, at most `MAX_EVENTS`), `None`
/// when the database could not be read.
pub fn answer(
    user_dir: Option<&Path>,
    user: &str,
    uid: u32,
    recent: Option<Vec<Event>>,
) -> MeAnswer {
    let mut me = MeAnswer {
        user: user.to_string(),
        uid,
        confined: false,
        limits: BTreeMap::new(),
        usage: None,
        events: Vec::new(),
        note: None,
    };
    let Some(dir) = user_dir.filter(|_| validate_user_name(user).is_ok()) else {
        me.note = Some("your user name cannot name a cgroup".to_string());
        return me;
    };
    if dir.is_dir() {
        me.confined = true;
        for name in LIMIT_FILES {
            if let Ok(Some(text)) = read_optional(&dir.join(name)) {
                me.limits.insert(name.to_string(), text.trim().to_string());
            }
        }
        me.usage = read_user_stats(dir).ok();
    }
    match recent {
        Some(events) => {
            // The caller asked for this user's; checked again, and the snapshot's processes
            // of other uids (root's sshd half in a session leaf) never shown.
            let mine: Vec<Event> = events.into_iter().filter(|e| e.user == user).collect();
            let skip = mine.len().saturating_sub(MAX_EVENTS);
            me.events = mine
                .into_iter()
                .skip(skip)
                .map(|mut e| {
                    e.processes.retain(|p| p.uid == Some(uid));
                    e.killed.retain(|k| k.uid == uid);
                    e
                })
                .collect();
        }
        None => me.note = Some("the fault history cannot be read right now".to_string()),
    }
    me
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{FaultKind, ProcessInfo};

    fn ev(user: &str, uids: &[u32]) -> Event {
        Event {
            time_ms: 1,
            user: user.into(),
            kind: FaultKind::OomKill,
            delta: 1,
            limit: None,
            usage: None,
            processes: uids
                .iter()
                .map(|u| ProcessInfo {
                    pid: *u,
                    comm: format!("p{u}"),
                    cmdline: String::new(),
                    uid: Some(*u),
                    rss_bytes: 0,
                    cpu_usec: 0,
                    cpu_percent: None,
                    cgroup: String::new(),
                })
                .collect(),
            killed: Vec::new(),
            from: None,
        }
    }

    #[test]
    fn only_the_peers_events_and_processes() {
        let tmp = tempfile::tempdir().unwrap();
        let users = tmp.path().join("users");
        std::fs::create_dir_all(users.join("alice")).unwrap();
        std::fs::write(users.join("alice/pids.max"), "64\n").unwrap();
        let all = vec![ev("alice", &[1001, 0]), ev("bob", &[1002])];
        let me = answer(Some(&users.join("alice")), "alice", 1001, Some(all.clone()));
        assert!(me.confined);
        assert_eq!(me.limits["pids.max"], "64");
        assert_eq!(me.events.len(), 1);
        assert_eq!(me.events[0].processes.len(), 1);
        assert_eq!(me.events[0].processes[0].uid, Some(1001));
        let bob = answer(Some(&users.join("bob")), "bob", 1002, Some(all));
        assert!(!bob.confined);
        assert!(bob.events.iter().all(|e| e.user == "bob"));
        let json = serde_json::to_string(&bob).unwrap();
        assert!(!json.contains("alice") && !json.contains("1001"), "{json}");
        let unread = answer(Some(&users.join("bob")), "bob", 1002, None);
        assert!(unread.events.is_empty() && unread.note.is_some());
    }
}
