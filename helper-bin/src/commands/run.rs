//! `cgroupctl run --user U [--service NAME] -- CMD [ARGS...]`: start a command as the user
//! inside `users/<U>/<NAME>/run-<pid>` (like cgexec or systemd-run), with the user's uid, gid
//! and supplementary groups, and a clean environment like `runuser -l` (HOME, SHELL, USER,
//! LOGNAME, PATH, and TERM kept). cgroupctl waits for it, exits with its status, and removes
//! the leaf if the command left nothing running in it.
//!
//! The child moves itself into the leaf before dropping privileges: once it is the user, it
//! could no longer leave the caller's cgroup (moving needs write access to the common
//! ancestor's cgroup.procs, which is root's).
//!
//! The command never gets the caller's terminal (pty_relay.rs): it starts a new session
//! (setsid), and where cgroupctl's stdin/stdout/stderr is a terminal the command gets a pty of
//! its own, relayed while it runs (as `runuser --pty` does). Every fd above 2 is closed on
//! exec: nothing cgroupctl or its caller holds open leaks to the customer.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::Args;
use nix::unistd::{getgrouplist, Gid, User};

use cgroup_core::cgroup_files;
use cgroup_core::nss::UserInfo;
use cgroup_core::service::{prepare_service_leaf, release_leaf, DEFAULT_SERVICE};
use cgroup_core::tree::dirfd::CgroupDir;

use crate::global::GlobalArgs;
use crate::load::load;
use crate::process::pty_relay::{Pty, Terminals};

/// PATH of a non-root login on Debian (login.defs ENV_PATH).
const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games";

#[derive(Debug, Args)]
#[command(
    after_help = "The command runs in a session of its own and never gets your terminal: where \
    stdin, stdout or stderr is a terminal it gets a new pseudo-terminal, relayed while it runs \
    (like runuser --pty); fds above 2 are not passed on.\n\n\
    Example:\n  cgroupctl run --user alice --service web -- /home/alice/bin/app --port 8000"
)]
pub struct RunArgs {
    /// The user to run the command as (and whose cgroup it runs in).
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// The service cgroup under the user's (created if needed).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SERVICE)]
    pub service: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Everything the child needs after fork, prepared before it (no allocation after fork).
struct Credentials {
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
    /// The leaf's cgroup.procs, opened by root before fork.
    procs: std::fs::File,
    /// The fd (0, 1 or 2) that is the command's pty, to make it its controlling terminal.
    pty_fd: Option<libc::c_int>,
}

/// close_range(2) flag: mark close-on-exec rather than close (std's exec-error pipe must
/// stay open until the exec itself).
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Runs in the child between fork and exec: only async-signal-safe calls (setsid, ioctl,
/// open, write, close, close_range, setgroups, setgid, setuid), on data prepared before fork.
fn enter_and_drop(c: &Credentials) -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: every call gets valid arguments prepared before fork; `procs` is an open fd.
    unsafe {
        // A session of its own: the caller's terminal is no longer its controlling terminal
        // (TIOCSTI and TIOCSCTTY on it now fail), and its signals reach only the command.
        check(libc::setsid())?;
        if let Some(fd) = c.pty_fd {
            check(libc::ioctl(fd, libc::TIOCSCTTY, 0))?;
        }
        check(libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) as i32)?;
        // "0" moves the writing process itself.
        let written = libc::write(c.procs.as_raw_fd(), b"0\n".as_ptr().cast(), 2);
        if written < 0 {
            return Err(std::io::Error::last_os_error());
        }
        check(libc::setgroups(c.groups.len(), c.groups.as_ptr()))?;
        check(libc::setgid(c.gid))?;
        check(libc::setuid(c.uid))?;
    }
    Ok(())
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(255)),
        _ => ExitCode::FAILURE,
    }
}

pub fn run(cli: &GlobalArgs, args: &RunArgs) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    cgroup_core::names::validate_user_name(&args.user)?;
    let pw = User::from_name(&args.user)
        .with_context(|| format!("look up user {}", args.user))?
        .with_context(|| format!("user {} not found", args.user))?;
    let info = UserInfo {
        name: pw.name.clone(),
        uid: pw.uid.as_raw(),
        gid: pw.gid.as_raw(),
    };
    let cname = CString::new(pw.name.as_bytes()).context("user name contains NUL")?;
    let groups: Vec<libc::gid_t> = getgrouplist(&cname, Gid::from_raw(info.gid))
        .with_context(|| format!("getgrouplist({})", info.name))?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    let (leaf, _) = prepare_service_leaf(
        &tree,
        &config,
        &info,
        &args.service,
        "run",
        std::process::id(),
    )?;
    let procs = CgroupDir::open(&leaf)
        .and_then(|dir| dir.open_for_write(cgroup_files::PROCS))
        .with_context(|| format!("open the leaf {}", leaf.display()))?;
    let terminals = Terminals::detect();
    let pty = if terminals.any() {
        Some(Pty::open(terminals)?)
    } else {
        None
    };
    let pty_fd = pty.as_ref().map(|_| {
        if terminals.stdin {
            0
        } else if terminals.stdout {
            1
        } else {
            2
        }
    });
    let creds = Credentials {
        uid: info.uid,
        gid: info.gid,
        groups,
        procs,
        pty_fd,
    };
    let home: PathBuf = pw.dir.clone();
    let cwd = if home.is_dir() {
        home.as_path()
    } else {
        Path::new("/")
    };
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .env_clear()
        .env("HOME", &home)
        .env("SHELL", &pw.shell)
        .env("USER", &pw.name)
        .env("LOGNAME", &pw.name)
        .env("PATH", USER_PATH)
        .current_dir(cwd);
    if let Some(term) = std::env::var_os("TERM") {
        cmd.env("TERM", term);
    }
    if let Some(pty) = &pty {
        let [stdin, stdout, stderr] = pty.stdio()?;
        cmd.stdin(stdin).stdout(stdout).stderr(stderr);
    }
    // SAFETY: the closure only makes async-signal-safe calls on data prepared before fork.
    unsafe {
        cmd.pre_exec(move || enter_and_drop(&creds));
    }
    let spawned = cmd.spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = release_leaf(&tree, &leaf);
            return Err(e).with_context(|| format!("start {} as {}", args.command[0], info.name));
        }
    };
    drop(cmd);
    let status = match pty {
        Some(pty) => pty.relay(&mut child)?,
        None => child.wait().context("wait for the command")?,
    };
    // Background processes keep the leaf; gc or the daemon removes it when they are gone.
    if let Err(e) = release_leaf(&tree, &leaf) {
        eprintln!(
            "cgroupctl: warning: could not remove {}: {e}",
            leaf.display()
        );
    }
    Ok(exit_code(status))
}
