//! A user's top processes at the moment of an event: every pid in the cgroup.procs of
//! users/<user> and its descendants, read from /proc, the largest (memory faults) or the
//! busiest (the others) kept.
//!
//! A process gone between cgroup.procs and /proc is skipped. Bounded: at most MAX_CGROUPS
//! cgroups and MAX_PIDS pids are looked at, and a command line is read up to MAX_CMDLINE
//! bytes, so a customer with a huge tree or argv cannot make a snapshot slow. Its comm, command
//! line and cgroup path are then cut by their size as stored (`cut`: a control byte is six
//! bytes of JSON), so a customer's names cannot make an event large either.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::cut::{cap_process, cut_to_json, MAX_PATH_JSON};
use super::ProcessInfo;
use crate::cgroup_files;

/// The bytes of /proc/PID/cmdline read (what is kept is `cut::MAX_COMMAND_JSON` of JSON).
pub const MAX_CMDLINE: usize = 512;
const MAX_CGROUPS: usize = 4096;
const MAX_PIDS: usize = 65_536;

/// Where a snapshot reads from: the user cgroup and procfs (a fake tree in tests).
#[derive(Debug, Clone)]
pub struct Sources<'a> {
    pub user_dir: &'a Path,
    pub proc_root: &'a Path,
}

struct Clock {
    page_size: u64,
    ticks_per_sec: u64,
}

impl Clock {
    fn new() -> Clock {
        // SAFETY: sysconf only reads a system constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        // SAFETY: as above.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Clock {
            page_size: u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096),
            ticks_per_sec: u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100),
        }
    }
}

/// Every (pid, cgroup relative to the user dir) under the user cgroup.
fn pids_of(user_dir: &Path) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut pending: Vec<PathBuf> = vec![user_dir.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = pending.pop() {
        seen += 1;
        if seen > MAX_CGROUPS || out.len() >= MAX_PIDS {
            break;
        }
        // Cut once here, not for each of its pids: a path of long names, copied to every
        // pid, would cost memory for nothing.
        let rel = dir
            .strip_prefix(user_dir)
            .map(|p| cut_to_json(p.display().to_string(), MAX_PATH_JSON))
            .unwrap_or_default();
        if let Ok(text) = std::fs::read_to_string(dir.join(cgroup_files::PROCS)) {
            out.extend(
                text.lines()
                    .filter_map(|l| l.trim().parse::<u32>().ok())
                    .map(|pid| (pid, rel.clone())),
            );
        }
        if let Ok(children) = crate::inventory::child_cgroups(&dir) {
            pending.extend(children);
        }
    }
    out.truncate(MAX_PIDS);
    out
}

/// /proc/PID/stat: comm, CPU time (utime + stime) in ticks, RSS in pages. The comm is in
/// parentheses and may itself hold ") ": the fields start after the last ')'.
pub fn parse_stat(text: &str) -> Option<(String, u64, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15, rss 24.
    let field = |n: usize| rest.get(n - 3)?.parse::<u64>().ok();
    let cpu = field(14)?.saturating_add(field(15)?);
    let rss = field(24)?;
    Some((comm, cpu, rss))
}

fn read_cmdline(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(MAX_CMDLINE as u64).read_to_end(&mut buf);
    }
    while buf.last() == Some(&0) {
        buf.pop();
    }
    let text: Vec<u8> = buf
        .iter()
        .map(|b| if *b == 0 { b' ' } else { *b })
        .collect();
    String::from_utf8_lossy(&text).into_owned()
}

/// How long the busiest processes are measured: total CPU time would put a long-lived idle
/// process (sshd's privileged half after a slow key exchange) above a loop that just started.
pub const CPU_WINDOW: std::time::Duration = std::time::Duration::from_millis(300);

fn ticks_of(proc_root: &Path, pid: u32) -> Option<u64> {
    // Never strict UTF-8: the name in stat is whatever the process chose (`read_proc_file`).
    let stat =
        crate::tree::fs::read_proc_file(&proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&stat).map(|(_, ticks, _)| ticks)
}

/// The `top` largest (`by_memory`) or busiest processes of the user. Busiest: CPU used during
/// `CPU_WINDOW` (the snapshot takes that long), then total CPU time.
pub fn take(src: &Sources<'_>, top: usize, by_memory: bool) -> Vec<ProcessInfo> {
    take_with_window(src, top, by_memory, CPU_WINDOW)
}

pub fn take_with_window(
    src: &Sources<'_>,
    top: usize,
    by_memory: bool,
    window: std::time::Duration,
) -> Vec<ProcessInfo> {
    let clock = Clock::new();
    let pids = pids_of(src.user_dir);
    let before: std::collections::HashMap<u32, u64> = if by_memory {
        Default::default()
    } else {
        let m = pids
            .iter()
            .filter_map(|(pid, _)| Some((*pid, ticks_of(src.proc_root, *pid)?)))
            .collect();
        std::thread::sleep(window);
        m
    };
    let mut procs: Vec<ProcessInfo> = pids
        .into_iter()
        .filter_map(|(pid, cgroup)| {
            let dir = src.proc_root.join(pid.to_string());
            let stat = crate::tree::fs::read_proc_file(&dir.join("stat")).ok()?;
            let (comm, ticks, pages) = parse_stat(&stat)?;
            let uid = std::fs::metadata(&dir).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.uid()
            });
            let recent = before.get(&pid).map(|t0| {
                let used = ticks.saturating_sub(*t0) as f64 / clock.ticks_per_sec as f64;
                let secs = window.as_secs_f64().max(0.001);
                (used * 1000.0 / secs).round() / 10.0
            });
            Some(ProcessInfo {
                pid,
                uid,
                cpu_percent: recent,
                comm,
                cmdline: read_cmdline(&dir.join("cmdline")),
                rss_bytes: pages.saturating_mul(clock.page_size),
                cpu_usec: ticks.saturating_mul(1_000_000) / clock.ticks_per_sec,
                cgroup,
            })
        })
        .collect();
    procs.sort_by(|a, b| {
        let key = |p: &ProcessInfo| {
            let recent = (p.cpu_percent.unwrap_or(0.0) * 10.0) as u64;
            if by_memory {
                (p.rss_bytes, p.cpu_usec, 0)
            } else {
                (recent, p.cpu_usec, p.rss_bytes)
            }
        };
        key(b).cmp(&key(a)).then(a.pid.cmp(&b.pid))
    });
    procs.truncate(top);
    procs.iter_mut().for_each(cap_process);
    procs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_comm() {
        let line = "42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 12345 10000000 300 18446744073709551615";
        let (comm, cpu, rss) = parse_stat(line).unwrap();
        assert_eq!(comm, "a) b) (c");
        assert_eq!(cpu, 300);
        assert_eq!(rss, 300);
    }

    #[test]
    fn takes_the_largest_from_a_fake_tree() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("users/alice");
        let leaf = user.join("session-1");
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::write(user.join("cgroup.procs"), "").unwrap();
        std::fs::write(leaf.join("cgroup.procs"), "10\n11\n12\n").unwrap();
        let proc_root = dir.path().join("proc");
        for (pid, comm, rss, utime) in [
            (10, "sh", 100, 1),
            (11, "hog\x1b[2J", 5000, 2),
            (12, "cron", 10, 900),
        ] {
            let d = proc_root.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("stat"),
                format!("{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 {utime} 0 0 0 20 0 1 0 1 1 {rss} 0"),
            )
            .unwrap();
            std::fs::write(d.join("cmdline"), format!("{comm}\0--flag\0")).unwrap();
        }
        let src = Sources {
            user_dir: &user,
            proc_root: &proc_root,
        };
        let top = take(&src, 2, true);
        assert_eq!(top.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![11, 10]);
        assert_eq!(top[0].comm, "hog\x1b[2J");
        assert_eq!(top[0].cmdline, "hog\x1b[2J --flag");
        assert_eq!(top[0].cgroup, "session-1");
        let busiest = take_with_window(&src, 1, false, std::time::Duration::ZERO);
        assert_eq!(busiest[0].pid, 12);
        assert!(busiest[0].cpu_usec > 0);
    }

    #[test]
    fn control_char_names_and_argv_are_cut_by_their_stored_size() {
        use crate::events::cut::{CUT_MARK, MAX_COMMAND_JSON, MAX_COMM_JSON, MAX_PATH_JSON};
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("users/mallory");
        // Sub-cgroups named with 255 control bytes each (6 bytes of JSON apiece), two deep.
        let name = std::ffi::OsStr::from_bytes(&[1u8; 255]);
        let leaf = user.join(name).join(name);
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::write(user.join("cgroup.procs"), "").unwrap();
        std::fs::write(leaf.join("cgroup.procs"), "30\n").unwrap();
        let proc_dir = dir.path().join("proc/30");
        std::fs::create_dir_all(&proc_dir).unwrap();
        let comm = "\x01".repeat(15);
        std::fs::write(
            proc_dir.join("stat"),
            format!("30 ({comm}) R 1 1 1 0 -1 0 0 0 0 0 5 0 0 0 20 0 1 0 1 1 10 0"),
        )
        .unwrap();
        // An argv of control bytes, longer than what is read of it.
        std::fs::write(proc_dir.join("cmdline"), [2u8; 4096]).unwrap();
        let src = Sources {
            user_dir: &user,
            proc_root: &dir.path().join("proc"),
        };
        let top = take(&src, 1, true);
        assert_eq!(top.len(), 1);
        let p = &top[0];
        let stored = |text: &str| serde_json::to_string(text).unwrap().len() - 2;
        assert!(stored(&p.cgroup) <= MAX_PATH_JSON, "{}", stored(&p.cgroup));
        assert!(
            stored(&p.cmdline) <= MAX_COMMAND_JSON,
            "{}",
            stored(&p.cmdline)
        );
        assert!(p.cgroup.starts_with('\x01') && p.cgroup.ends_with(CUT_MARK));
        assert!(p.cmdline.starts_with('\x02') && p.cmdline.ends_with(CUT_MARK));
        // Cut no shorter than it must be: one more escaped byte would not fit with the mark.
        assert!(stored(&p.cmdline) + 6 > MAX_COMMAND_JSON);
        // A real comm (15 bytes) is whole, even when every byte is escaped.
        assert_eq!(p.comm, comm);
        assert!(stored(&p.comm) <= MAX_COMM_JSON);
        // The whole process, numbers and keys with it, stays near the sum of the caps.
        let whole = serde_json::to_string(p).unwrap().len();
        assert!(
            whole <= MAX_PATH_JSON + MAX_COMMAND_JSON + MAX_COMM_JSON + 200,
            "{whole}"
        );
    }

    #[test]
    fn busiest_is_what_used_cpu_during_the_window_not_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("users/alice");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(user.join("cgroup.procs"), "20\n21\n").unwrap();
        let proc_root = dir.path().join("proc");
        let stat = |pid: u32, utime: u64| {
            let d = proc_root.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("stat"),
                format!("{pid} (p{pid}) R 1 1 1 0 -1 0 0 0 0 0 {utime} 0 0 0 20 0 1 0 1 1 10 0"),
            )
            .unwrap();
        };
        stat(20, 500); // old and idle: 5 s of CPU long ago
        stat(21, 1); // a loop that just started
        let writer = {
            let proc_root = proc_root.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                std::fs::write(
                    proc_root.join("21/stat"),
                    "21 (p21) R 1 1 1 0 -1 0 0 0 0 0 31 0 0 0 20 0 1 0 1 1 10 0",
                )
                .unwrap();
            })
        };
        let src = Sources {
            user_dir: &user,
            proc_root: &proc_root,
        };
        let top = take_with_window(&src, 2, false, std::time::Duration::from_millis(400));
        writer.join().unwrap();
        assert_eq!(top[0].pid, 21);
        assert!(top[0].cpu_percent.unwrap() > 0.0);
        assert_eq!(top[1].cpu_percent, Some(0.0));
    }
}
