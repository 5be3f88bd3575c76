//! login-bench: times PAM sessions in-process, the way a busy sshd or cron opens them:
//! pam_start_confdir, pam_open_session, pam_close_session, pam_end, in a loop, warm-up
//! excluded. With --raw-floor it instead times the bare syscalls the job needs, as the
//! single-writer tree does them (DESIGN.md): open = mkdir `session-<i>/`, its two caps, mkdir
//! `login/`, the pid into `login/cgroup.procs`, the session mark (a trusted xattr), the files of
//! /sys/kernel/cgroup/delegate and the directory chowned to the user; close = the session
//! mark removed (the process stays in its leaf until it exits; the previous session's leaf is
//! removed after the next open moved the process out, untimed, as the daemon would). With --nss it adds what resolving the user costs and
//! no module can avoid: getpwnam_r of --user, and getgrouplist when --nss-groups (a config
//! whose plans or exemptions name groups), through the host's NSS configuration.
//! With --fork each session runs in a child process of its own that exits after it, as sshd
//! runs each connection's PAM in a process of its own (the parent resolves the user first, as
//! sshd has before a session opens; --raw-floor: the parent removes the exited child's leaf,
//! untimed): no session meets a process an earlier one left in its leaf.
//! Prints one JSON object with the median, p90 and p99 of each phase in microseconds, in wall
//! time and (`*_cpu`) in the thread's CPU time (user + system): on a loaded host a process
//! waiting for a CPU inflates the wall time of whatever it was doing, not its CPU time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::{fchown, getgrouplist, unlinkat, Gid, Uid, UnlinkatFlags, User};
use serde::Serialize;

use pam_cgroup_tests::pam_client::{PamTransaction, PAM_SUCCESS};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    confdir: Option<PathBuf>,
    #[arg(long, default_value = "bench")]
    service: String,
    #[arg(long, default_value = "root")]
    user: String,
    #[arg(long, default_value_t = 300)]
    iterations: usize,
    #[arg(long, default_value_t = 30)]
    warmup: usize,
    /// Time the raw syscalls instead, with leaves made in this cgroup directory.
    #[arg(long)]
    raw_floor: Option<PathBuf>,
    /// With --raw-floor: also resolve --user through NSS in each open (getpwnam_r).
    #[arg(long)]
    nss: bool,
    /// With --nss: also list the user's groups (getgrouplist).
    #[arg(long)]
    nss_groups: bool,
    /// Each session in a child process of its own (see the top of this file).
    #[arg(long)]
    fork: bool,
}

/// Runs `session` in a child process when `fork` (its figures come back through a pipe; the
/// child exits after it), else here. This binary has one thread, so the child may do anything.
fn in_process_of_its_own<const N: usize>(
    fork: bool,
    session: impl FnOnce() -> [u128; N],
) -> [u128; N] {
    if !fork {
        return session();
    }
    let (rx, tx) = nix::unistd::pipe().unwrap();
    // SAFETY: one thread in this process (see above).
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            drop(rx);
            let figures = session();
            let bytes: Vec<u8> = figures.iter().flat_map(|f| f.to_le_bytes()).collect();
            let mut out = std::fs::File::from(tx);
            let code = i32::from(out.write_all(&bytes).is_err());
            drop(out);
            // SAFETY: _exit ends the child without running the parent's exit handlers twice.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(tx);
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::fs::File::from(rx), &mut bytes).unwrap();
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            assert!(
                matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
                "a session's process: {status:?}"
            );
            assert_eq!(
                bytes.len(),
                N * 16,
                "a session's process sent {} bytes",
                bytes.len()
            );
            let mut figures = [0u128; N];
            for (f, chunk) in figures.iter_mut().zip(bytes.chunks_exact(16)) {
                *f = u128::from_le_bytes(chunk.try_into().unwrap());
            }
            figures
        }
    }
}

#[derive(Debug, Serialize)]
struct Stats {
    median_us: f64,
    p90_us: f64,
    p99_us: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    iterations: usize,
    failures: usize,
    open: Stats,
    close: Stats,
    /// pam_start + pam_end (loading the stack's modules); absent for the raw floor.
    start_end: Option<Stats>,
    open_cpu: Stats,
    close_cpu: Stats,
    start_end_cpu: Option<Stats>,
}

/// CPU time of this thread (user + system) in nanoseconds.
fn cpu_now() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn stats(mut samples: Vec<u128>) -> Stats {
    samples.sort_unstable();
    let at = |p: f64| {
        let idx = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[idx] as f64 / 1000.0
    };
    Stats {
        median_us: at(0.5),
        p90_us: at(0.9),
        p99_us: at(0.99),
    }
}

fn own_cgroup_dir(mount: &std::path::Path) -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let rel = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    mount.join(rel.trim_start_matches('/'))
}

/// The kernel's list of delegated files (what the module chowns to the user).
fn delegate_files() -> Vec<CString> {
    std::fs::read_to_string("/sys/kernel/cgroup/delegate")
        .unwrap_or_else(|_| "cgroup.procs\ncgroup.threads\ncgroup.subtree_control\n".into())
        .split_whitespace()
        .map(|n| CString::new(n).unwrap())
        .collect()
}

/// What NSS resolution of the user costs: getpwnam_r, then getgrouplist if asked.
fn resolve(user: &str, groups: bool) -> (u32, u32) {
    let u = User::from_name(user).unwrap().expect("bench user exists");
    if groups {
        let name = CString::new(user).unwrap();
        let list = getgrouplist(&name, u.gid).unwrap();
        assert!(!list.is_empty());
    }
    (u.uid.as_raw(), u.gid.as_raw())
}

fn write_at(dir: RawFd, name: &str, data: &str) {
    let fd = openat(
        Some(dir),
        name,
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    // SAFETY: openat just returned this descriptor; nobody else owns it.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(data.as_bytes()).unwrap();
}

fn remove_leaf(parent: &OwnedFd, name: &str) {
    for dir in [format!("{name}/login"), name.to_string()] {
        unlinkat(
            Some(parent.as_raw_fd()),
            dir.as_str(),
            UnlinkatFlags::RemoveDir,
        )
        .unwrap();
    }
}

fn raw_floor(parent: &std::path::Path, args: &Args) -> Report {
    let mount = cgroup_core::mount::primary_cgroup2().unwrap().mount_point;
    let home = own_cgroup_dir(&mount);
    let dflags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let parent_fd = openat(None, parent, dflags, Mode::empty()).unwrap();
    // SAFETY: openat just returned this descriptor; nobody else owns it.
    let parent_fd = unsafe { OwnedFd::from_raw_fd(parent_fd) };
    let home_procs = home.join("cgroup.procs");
    let delegated = delegate_files();
    let (uid, gid) = resolve(&args.user, false);
    let xattr = CString::new("trusted.pam_cgroup.bench").unwrap();
    let (mut open, mut close) = (Vec::new(), Vec::new());
    let (mut open_cpu, mut close_cpu) = (Vec::new(), Vec::new());
    for i in 0..args.warmup + args.iterations {
        let name = format!("session-{i}");
        let [t_open, t_close, c_open, c_close] = in_process_of_its_own(args.fork, || {
            // The pid of the process this session places (the child's, with --fork).
            let pid = format!("{}\n", std::process::id());
            let mark = format!(
                "user = {:?}\nservice = \"bench\"\npid = {}\n",
                args.user,
                std::process::id()
            );
            let c0 = cpu_now();
            let t0 = Instant::now();
            if args.nss {
                resolve(&args.user, args.nss_groups);
            }
            mkdirat(
                Some(parent_fd.as_raw_fd()),
                name.as_str(),
                Mode::from_bits_truncate(0o700),
            )
            .unwrap();
            let leaf = openat(
                Some(parent_fd.as_raw_fd()),
                name.as_str(),
                dflags | OFlag::O_NOFOLLOW,
                Mode::empty(),
            )
            .unwrap();
            // SAFETY: openat just returned this descriptor; nobody else owns it.
            let leaf = unsafe { OwnedFd::from_raw_fd(leaf) };
            let fd = leaf.as_raw_fd();
            write_at(fd, "cgroup.max.descendants", "64");
            write_at(fd, "cgroup.max.depth", "4");
            mkdirat(Some(fd), "login", Mode::from_bits_truncate(0o755)).unwrap();
            write_at(fd, "login/cgroup.procs", &pid);
            // SAFETY: xattr is NUL-terminated; mark is valid for mark.len() bytes.
            let rc =
                unsafe { libc::fsetxattr(fd, xattr.as_ptr(), mark.as_ptr().cast(), mark.len(), 0) };
            assert_eq!(rc, 0, "fsetxattr: {}", std::io::Error::last_os_error());
            for file in &delegated {
                // SAFETY: file is NUL-terminated.
                let rc = unsafe {
                    libc::fchownat(fd, file.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
                };
                // A file whose controller is not enabled here (memory.oom.group) is absent.
                assert!(
                    rc == 0 || Errno::last() == Errno::ENOENT,
                    "fchownat: {}",
                    Errno::last()
                );
            }
            fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).unwrap();
            drop(leaf);
            let t1 = Instant::now();
            let c1 = cpu_now();
            let leaf = openat(
                Some(parent_fd.as_raw_fd()),
                name.as_str(),
                dflags | OFlag::O_NOFOLLOW,
                Mode::empty(),
            )
            .unwrap();
            // SAFETY: openat just returned this descriptor; nobody else owns it.
            let leaf = unsafe { OwnedFd::from_raw_fd(leaf) };
            // SAFETY: xattr is NUL-terminated.
            let rc = unsafe { libc::fremovexattr(leaf.as_raw_fd(), xattr.as_ptr()) };
            assert_eq!(rc, 0, "fremovexattr: {}", std::io::Error::last_os_error());
            drop(leaf);
            let t2 = Instant::now();
            let c2 = cpu_now();
            [(t1 - t0).as_nanos(), (t2 - t1).as_nanos(), c1 - c0, c2 - c1]
        });
        if i >= args.warmup {
            open.push(t_open);
            close.push(t_close);
            open_cpu.push(c_open);
            close_cpu.push(c_close);
        }
        if args.fork {
            // The child exited in its leaf: the daemon's removal, outside any login's time.
            remove_leaf(&parent_fd, &name);
        } else if i > 0 {
            // The previous session's leaf, now empty (this open moved the process out): what
            // the daemon removes, outside any login's time.
            remove_leaf(&parent_fd, &format!("session-{}", i - 1));
        }
    }
    if !args.fork {
        // Back home, and the last leaf removed.
        std::fs::write(&home_procs, format!("{}\n", std::process::id())).unwrap();
        if let Some(last) = (args.warmup + args.iterations).checked_sub(1) {
            remove_leaf(&parent_fd, &format!("session-{last}"));
        }
    }
    Report {
        iterations: args.iterations,
        failures: 0,
        open: stats(open),
        close: stats(close),
        start_end: None,
        open_cpu: stats(open_cpu),
        close_cpu: stats(close_cpu),
        start_end_cpu: None,
    }
}

fn pam_loop(confdir: &std::path::Path, args: &Args) -> Report {
    let (mut open, mut close, mut start_end) = (Vec::new(), Vec::new(), Vec::new());
    let (mut open_cpu, mut close_cpu, mut start_end_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let mut failures = 0;
    if args.fork {
        // What sshd has done before a session opens: the user resolved (NSS loaded).
        resolve(&args.user, false);
    }
    for i in 0..args.warmup + args.iterations {
        let [t_open, t_close, t_start_end, c_open, c_close, c_start_end, failed] =
            in_process_of_its_own(args.fork, || {
                let c0 = cpu_now();
                let t0 = Instant::now();
                let mut pam = PamTransaction::start(&args.service, &args.user, confdir).unwrap();
                let t1 = Instant::now();
                let c1 = cpu_now();
                let open_rc = pam.open_session();
                let t2 = Instant::now();
                let c2 = cpu_now();
                let close_rc = pam.close_session();
                let t3 = Instant::now();
                let c3 = cpu_now();
                drop(pam);
                let t4 = Instant::now();
                let c4 = cpu_now();
                [
                    (t2 - t1).as_nanos(),
                    (t3 - t2).as_nanos(),
                    (t1 - t0).as_nanos() + (t4 - t3).as_nanos(),
                    c2 - c1,
                    c3 - c2,
                    (c1 - c0) + (c4 - c3),
                    u128::from(open_rc != PAM_SUCCESS || close_rc != PAM_SUCCESS),
                ]
            });
        failures += usize::from(failed != 0);
        if i >= args.warmup {
            open.push(t_open);
            close.push(t_close);
            start_end.push(t_start_end);
            open_cpu.push(c_open);
            close_cpu.push(c_close);
            start_end_cpu.push(c_start_end);
        }
    }
    Report {
        iterations: args.iterations,
        failures,
        open: stats(open),
        close: stats(close),
        start_end: Some(stats(start_end)),
        open_cpu: stats(open_cpu),
        close_cpu: stats(close_cpu),
        start_end_cpu: Some(stats(start_end_cpu)),
    }
}

fn main() {
    let args = Args::parse();
    let report = match (&args.raw_floor, &args.confdir) {
        (Some(parent), _) => raw_floor(parent, &args),
        (None, Some(confdir)) => pam_loop(confdir, &args),
        (None, None) => {
            eprintln!("login-bench: give --confdir or --raw-floor");
            std::process::exit(2);
        }
    };
    println!("{}", serde_json::to_string(&report).unwrap());
}
