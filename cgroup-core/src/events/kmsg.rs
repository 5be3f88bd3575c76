//! Who the OOM killer killed. By the time the daemon sees `memory.events oom_kill` move, the
//! victim is gone from /proc, so a snapshot cannot name it; the kernel's log can: every kill
//! logs an `oom-kill:` record with the victim's cgroup (`task_memcg`), comm, pid and uid. The
//! daemon reads /dev/kmsg (root) from its end at start, and attaches the victims whose cgroup
//! is inside the user's to that user's oom_kill event.
//!
//! The victim's comm and a customer's own sub-cgroup names are customer-chosen and may hold
//! `,task=` or `,pid=`: the record is parsed from its end (uid and pid are the kernel's last
//! fields, digits only), and the user is decided by the kernel-made prefix of task_memcg
//! (`.../users/<user>/`), which a customer cannot choose.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

use serde::{Deserialize, Serialize};

/// One process the OOM killer killed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomVictim {
    pub pid: u32,
    pub uid: u32,
    /// The comm (customer-chosen: escape before printing).
    pub comm: String,
    /// The victim's cgroup as the kernel logs it (relative to the cgroup2 mount).
    pub task_memcg: String,
}

/// Parses the text of an `oom-kill:` kernel record.
pub fn parse_oom_kill(text: &str) -> Option<OomVictim> {
    let body = text.trim_end().strip_prefix("oom-kill:")?;
    let (rest, uid) = body.rsplit_once(",uid=")?;
    let (rest, pid) = rest.rsplit_once(",pid=")?;
    let (rest, comm) = rest.rsplit_once(",task=")?;
    let (_, memcg) = rest.split_once("task_memcg=")?;
    Some(OomVictim {
        pid: pid.parse().ok()?,
        uid: uid.parse().ok()?,
        comm: comm.to_string(),
        task_memcg: memcg.to_string(),
    })
}

/// Is the victim's cgroup `users_rel/<user>` or below it? `users_rel`: the users/ directory
/// relative to the cgroup2 mount, starting with `/`.
pub fn belongs_to(v: &OomVictim, users_rel: &str, user: &str) -> bool {
    let own = format!("{users_rel}/{user}");
    v.task_memcg == own || v.task_memcg.starts_with(&format!("{own}/"))
}

/// The victim of one /dev/kmsg record (`PRIO,SEQ,USEC,FLAGS;TEXT` then continuation lines),
/// if it is the kernel's own `oom-kill:` record: facility 0 (PRIO < 8). Records written
/// into /dev/kmsg from user space always get another facility, so none can pose as a kill.
pub fn victim_of_record(record: &str) -> Option<OomVictim> {
    let (head, text) = record.split_once(';')?;
    let prio: u32 = head.split(',').next()?.parse().ok()?;
    if prio >> 3 != 0 {
        return None;
    }
    parse_oom_kill(text.lines().next()?)
}

/// The reader of /dev/kmsg, from where it was opened on.
pub struct Kmsg {
    file: File,
}

impl Kmsg {
    /// Opens /dev/kmsg at its end (only kills from now on are read).
    pub fn open() -> std::io::Result<Kmsg> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")?;
        file.seek(SeekFrom::End(0))?;
        Ok(Kmsg { file })
    }

    /// Every OOM kill logged since the last call (one record per read; EAGAIN: none left;
    /// EPIPE: records were overwritten before we read them, go on with the next).
    pub fn victims(&mut self) -> Vec<OomVictim> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        for _ in 0..10_000 {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend(victim_of_record(&String::from_utf8_lossy(&buf[..n])));
                }
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted =>
                {
                    break
                }
                Err(_) => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernels_record() {
        let t = "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/pam-cgroup.service/tree/users/alice,task_memcg=/system.slice/pam-cgroup.service/tree/users/alice/session-4,task=python3,pid=1234,uid=2001";
        let v = parse_oom_kill(t).unwrap();
        assert_eq!((v.pid, v.uid, v.comm.as_str()), (1234, 2001, "python3"));
        let users = "/system.slice/pam-cgroup.service/tree/users";
        assert!(belongs_to(&v, users, "alice"));
        assert!(!belongs_to(&v, users, "ali"));
        assert!(parse_oom_kill("Memory cgroup out of memory: Killed process 1").is_none());
    }

    #[test]
    fn only_the_kernels_own_records() {
        let text = "oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/t/users/bob/session-1,task=hog,pid=77,uid=2002";
        let kernel = format!("3,812,123456789,-;{text}\n SUBSYSTEM=x\n");
        assert_eq!(victim_of_record(&kernel).unwrap().pid, 77);
        // Written by root into /dev/kmsg: facility user (1), prio 8 + level.
        let injected = format!("12,813,123456790,-;{text}\n");
        assert!(victim_of_record(&injected).is_none());
    }

    #[test]
    fn hostile_names_cannot_forge_pid_uid_or_user() {
        // A sub-cgroup and a comm chosen to look like fields.
        let t = "oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/t/users/bob,task_memcg=/t/users/bob/session-1/x,task_memcg=/t/users/alice,task=y,pid=1,uid=0,pid=77,uid=2002";
        let v = parse_oom_kill(t).unwrap();
        assert_eq!((v.pid, v.uid), (77, 2002));
        assert!(belongs_to(&v, "/t/users", "bob"));
        assert!(!belongs_to(&v, "/t/users", "alice"));
    }
}
