//! Who is logged in: the record of each open PAM session, and `sessions.max`.
//!
//! Each session leaf `users/<user>/session-<id>` carries a mark, the extended attribute
//! `trusted.pam_cgroup.session`, written by root at open: user, PAM service, tty, remote host,
//! start time, and the pid (with its start time) of the process that opened the session (sshd's
//! monitor, su, cron). `trusted.*` attributes are read and written only with CAP_SYS_ADMIN, and
//! the leaf sits in the root-owned `users/<user>`, which the customer cannot write: the
//! customer can neither read, forge, remove nor rename the mark (cgroup2 has no rename).
//!
//! A session is *open* while its opener still runs inside its leaf: the kernel's own record,
//! not a file anybody has to keep right. close_session removes the mark (the opener stays in
//! the leaf until it exits, right after); a crashed sshd takes its pid with it. The start time guards against a recycled pid.
//! So a leaf kept alive by `nohup` processes of a closed session is not an open session, and
//! does not count towards `sessions.max`, even while those processes linger in `login/`.
//!
//! `sessions.max` is race-free: the count and the new leaf's mark are made under one lock per
//! user, a root-only flock in `/run/pam_cgroup/` that no customer can open, let alone hold.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::paths::RUN_DIR;
use crate::state_dir::StateDir;
use crate::tree::dirfd::CgroupDir;

use crate::tree::user_cgroup::SESSION_XATTR;

/// How long a login waits for another login of the same user to finish counting. A login
/// holds the lock for a few milliseconds (one mkdir, one migration, one xattr), so two seconds
/// cover a burst of concurrent logins of one user; longer means the holder is stalled, which
/// only that user's own processes can do (a stopped `su`), and the waiting login is refused.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// What a session leaf's mark records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMark {
    pub user: String,
    pub service: String,
    pub tty: Option<String>,
    pub rhost: Option<String>,
    /// The process that opened the session.
    pub pid: u32,
    /// Its start time (clock ticks since boot, field 22 of /proc/PID/stat), in marks written
    /// by earlier versions: a login no longer reads it. /proc/PID/stat was the one /proc file a
    /// confined login read, and a fresh process pays about 40 µs of kernel time for its first
    /// /proc file (its /proc entries are made on first use): in a burst of logins, a sixth of
    /// what the module adds to the floor's CPU. The PID alone names the opener well enough
    /// because `is_open` also wants it inside the session's leaf: a reused PID there is a
    /// process of that same session (only it and root put processes there), so a session can
    /// at most be counted open while its own processes run, against its own customer's
    /// sessions.max. Who closed a leaf (`CLOSED_XATTR`, read to tell a PAM caller that
    /// outlived its close from a process given its PID) keeps its start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    /// Seconds since the epoch.
    pub started: u64,
}

/// The longest tty or remote host kept (a DNS name is at most 253 bytes).
const MAX_ITEM_CHARS: usize = 255;

/// A PAM item as it is kept: at most `MAX_ITEM_CHARS`, control characters dropped.
pub fn clean_item(item: Option<&str>) -> Option<String> {
    let text: String = item?
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ITEM_CHARS)
        .collect();
    (!text.is_empty()).then_some(text)
}

impl SessionMark {
    /// The mark of a session opened now by `pid`.
    pub fn new(
        user: &str,
        service: &str,
        tty: Option<&str>,
        rhost: Option<&str>,
        pid: u32,
    ) -> SessionMark {
        SessionMark {
            user: user.to_string(),
            service: clean_item(Some(service)).unwrap_or_default(),
            tty: clean_item(tty),
            rhost: clean_item(rhost),
            pid,
            pid_start: None,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    pub fn encode(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    pub fn decode(text: &str) -> Option<SessionMark> {
        toml::from_str(text).ok()
    }
}

/// Start time of a process (field 22 of /proc/PID/stat, after the parenthesised name).
pub fn process_start(pid: u32) -> Option<u64> {
    let stat =
        crate::tree::fs::read_proc_file(std::path::Path::new(&format!("/proc/{pid}/stat"))).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state): field 22 is the 20th of them.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Is the session of `mark`, whose leaf is `leaf` (a path under `mount_point`), still open:
/// its opener alive (same start time, when the mark has one) and inside the leaf?
pub fn is_open(mark: &SessionMark, leaf: &Path, mount_point: &Path) -> bool {
    if mark
        .pid_start
        .is_some_and(|start| process_start(mark.pid) != Some(start))
    {
        return false;
    }
    let Ok(Some(rel)) = crate::tree::fs::cgroup_v2_of(mark.pid) else {
        return false;
    };
    // Exact bytes: the opener may sit in a sub-cgroup the customer named in any bytes (the
    // customer may move it anywhere inside its leaf) and is still this session's.
    let now = mount_point.join(rel.strip_prefix("/").unwrap_or(&rel));
    now.starts_with(leaf)
}

/// One session leaf of a user as found in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundSession {
    /// `session-<id>`
    pub name: String,
    pub path: PathBuf,
    /// `None`: a leaf without a (readable) mark (made before marks existed, or a closed one).
    pub mark: Option<SessionMark>,
    pub open: bool,
}

/// The session leaves of a user cgroup with their marks (read through its descriptor).
pub fn find_sessions(user_dir: &CgroupDir, mount_point: &Path) -> Result<Vec<FoundSession>> {
    let mut out = Vec::new();
    for (name, is_dir) in user_dir.entries()? {
        // users/<user> is root's: every session leaf there has a name root made, in UTF-8.
        let (true, Some(name)) = (is_dir, name.into_string().ok()) else {
            continue;
        };
        if !name.starts_with(crate::tree::SESSION_PREFIX) {
            continue;
        }
        let Ok(leaf) = user_dir.open_child(&name) else {
            continue;
        };
        let mark = leaf
            .get_xattr_large(SESSION_XATTR)
            .and_then(|t| SessionMark::decode(&t));
        // A leaf made ahead for a login to come is no session (crate::tree::spare).
        if mark.is_none() && crate::tree::spare::is_spare(&leaf) {
            continue;
        }
        let open = mark
            .as_ref()
            .is_some_and(|m| is_open(m, leaf.path(), mount_point));
        out.push(FoundSession {
            name,
            path: leaf.path().to_path_buf(),
            mark,
            open,
        });
    }
    Ok(out)
}

/// Open sessions of a user that count towards sessions.max.
pub fn count_open(sessions: &[FoundSession], counts: impl Fn(&str) -> bool) -> u32 {
    let n = sessions
        .iter()
        .filter(|s| s.open && s.mark.as_ref().is_some_and(|m| counts(&m.service)))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Takes the per-user lock under which logins of `user` count sessions and make their leaf.
/// The name must have been validated.
pub fn lock_user(user: &str) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let dir = StateDir::open(Path::new(RUN_DIR), true)
        .map_err(Error::State)?
        .ok_or_else(|| Error::Missing {
            path: RUN_DIR.into(),
        })?;
    dir.lock(&crate::paths::sessions_lock_name(user), LOCK_WAIT)
        .map_err(|source| Error::SessionCountLock {
            user: user.to_string(),
            source,
        })
}

/// One session as `cgroupctl sessions` and `show` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    pub user: String,
    /// The leaf's id (`session-<id>` without the prefix): `cgroupctl kill --session ID`.
    pub id: String,
    pub path: PathBuf,
    /// False for a leaf kept by processes of a closed session (`nohup`), or without a mark.
    pub open: bool,
    pub service: Option<String>,
    /// PAM_TTY when the session opened (sshd sets `ssh` there: it allocates the pty later).
    pub tty: Option<String>,
    /// The terminal the session's processes have now (their controlling tty, from the kernel),
    /// like loginctl's TTY. Shown only: no decision rests on it.
    pub terminal: Option<String>,
    pub rhost: Option<String>,
    pub pid: Option<u32>,
    /// When it opened: RFC 3339 UTC, and seconds since the epoch.
    pub started_at: Option<String>,
    pub started_epoch: Option<u64>,
    pub processes: u64,
    /// memory.current of the leaf, where the memory controller reaches it.
    pub memory_bytes: Option<u64>,
    /// The kernel says the leaf is frozen (`frozen 1` in its cgroup.events: the leaf or the
    /// user cgroup above it was frozen by `cgroupctl freeze` or `suspend`).
    pub frozen: bool,
}

/// The controlling terminal of the oldest process (of `pids`, sorted) that has one.
fn session_terminal(pids: &[u32]) -> Option<String> {
    pids.iter().find_map(|pid| {
        let stat =
            crate::tree::fs::read_proc_file(std::path::Path::new(&format!("/proc/{pid}/stat")))
                .ok()?;
        let rest = stat.get(stat.rfind(')')? + 1..)?;
        // Field 7 (tty_nr) is the 5th after the name.
        let nr: u32 = rest.split_whitespace().nth(4)?.parse().ok()?;
        terminal_name(nr)
    })
}

/// The device name of a tty_nr (/proc/PID/stat): Unix98 ptys and virtual consoles.
pub fn terminal_name(tty_nr: u32) -> Option<String> {
    // The kernel's encoding: major in bits 8-15, minor in bits 0-7 and 20-31.
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        0 => None,
        136..=143 => Some(format!("/dev/pts/{}", (major - 136) * 256 + minor)),
        4 if minor < 64 => Some(format!("/dev/tty{minor}")),
        4 => Some(format!("/dev/ttyS{}", minor - 64)),
        _ => Some(format!("tty {major}:{minor}")),
    }
}

/// The sessions of one user cgroup; closed leaves only with `include_closed`.
pub fn list_user(
    user: &crate::tree::user_cgroup::UserCgroup,
    mount_point: &Path,
    include_closed: bool,
) -> Result<Vec<SessionInfo>> {
    let mut out = Vec::new();
    for found in find_sessions(user.dir(), mount_point)? {
        if !found.open && !include_closed {
            continue;
        }
        let leaf = user.dir().open_child(&found.name).ok();
        let pids = leaf
            .as_ref()
            .map(crate::tree::processes::subtree_pids)
            .unwrap_or_default();
        let processes = pids.len() as u64;
        let terminal = session_terminal(&pids);
        let frozen = leaf
            .as_ref()
            .and_then(|l| crate::tree::freezer::is_frozen(l).ok())
            .unwrap_or(false);
        let memory_bytes = leaf
            .as_ref()
            .filter(|l| l.has("memory.current"))
            .and_then(|l| l.read("memory.current").ok())
            .and_then(|t| t.trim().parse().ok());
        let mark = found.mark.as_ref();
        out.push(SessionInfo {
            user: user.name().to_string(),
            id: found
                .name
                .strip_prefix(crate::tree::SESSION_PREFIX)
                .unwrap_or(&found.name)
                .to_string(),
            path: found.path.clone(),
            open: found.open,
            service: mark.map(|m| m.service.clone()),
            tty: mark.and_then(|m| m.tty.clone()),
            terminal,
            rhost: mark.and_then(|m| m.rhost.clone()),
            pid: mark.map(|m| m.pid),
            started_at: mark.map(|m| crate::time::utc_text(m.started.saturating_mul(1000))),
            started_epoch: mark.map(|m| m.started),
            processes,
            memory_bytes,
            frozen,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_round_trips() {
        let m = SessionMark {
            user: "alice".into(),
            service: "sshd".into(),
            tty: Some("ssh".into()),
            rhost: Some("192.0.2.7".into()),
            pid: 42,
            pid_start: None,
            started: 1_700_000_000,
        };
        assert_eq!(SessionMark::decode(&m.encode()), Some(m.clone()));
        assert!(!m.encode().contains("pid_start"), "{}", m.encode());
        assert_eq!(SessionMark::decode("garbage = ["), None);
        // A mark written by an earlier version names its opener's start time too.
        let old = SessionMark {
            pid_start: Some(123456),
            ..m
        };
        assert_eq!(SessionMark::decode(&old.encode()), Some(old));
    }

    #[test]
    fn items_are_cleaned() {
        assert_eq!(clean_item(Some("a\nb")), Some("ab".into()));
        assert_eq!(clean_item(Some("")), None);
        assert_eq!(clean_item(None), None);
        assert_eq!(clean_item(Some(&"x".repeat(400))).unwrap().len(), 255);
    }

    #[test]
    fn terminal_names() {
        assert_eq!(terminal_name(0), None);
        assert_eq!(terminal_name(136 << 8 | 3).as_deref(), Some("/dev/pts/3"));
        assert_eq!(terminal_name(137 << 8 | 1).as_deref(), Some("/dev/pts/257"));
        assert_eq!(terminal_name(4 << 8 | 1).as_deref(), Some("/dev/tty1"));
    }

    #[test]
    fn own_start_time_is_read() {
        let me = std::process::id();
        assert!(process_start(me).is_some());
        assert_eq!(process_start(me), process_start(me));
    }
}
