//! A process pinned by a pidfd (pidfd_open, Linux >= 5.3): while the pidfd reports the
//! process alive, its PID cannot have been reused, so what /proc/PID says and what a write of
//! PID to cgroup.procs reaches are that process. Raw syscalls through libc: nix 0.29 has no
//! pidfd wrapper.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};

use cgroup_core::tree::{fs, Tree};

pub struct PidFd {
    pub pid: u32,
    fd: OwnedFd,
}

impl PidFd {
    pub fn open(pid: u32) -> io::Result<PidFd> {
        let raw =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: plain syscall; a non-negative result is a new fd we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: the kernel just returned this fd; nothing else owns it.
        Ok(PidFd {
            pid,
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Is the pinned process still alive (signal 0 through the pidfd)? Once it has exited its
    /// PID may name another process.
    pub fn alive(&self) -> bool {
        self.signal(0).is_ok()
    }

    /// Sends `signal` to the pinned process itself, never to whatever its PID names later.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        // SAFETY: a valid pidfd, a signal number, null siginfo and zero flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Writes the pinned process's PID to `leaf` and checks it was that process that moved; if
/// not, moves whatever the PID reached back to where it was.
pub fn move_pinned(tree: &Tree, process: &PidFd, leaf: &Path) -> Result<()> {
    let pid = process.pid;
    let source = fs::cgroup_v2_of(pid).ok().flatten();
    if !process.alive() {
        bail!("process {pid} exited before it could be moved");
    }
    fs::move_pid(leaf, pid).with_context(|| format!("move process {pid}"))?;
    // A zombie is alive to its pidfd, and the kernel takes its PID and moves nothing: one
    // that exited meanwhile is no move to report (a leaf made for it stays empty).
    if process.alive() && cgroup_core::strays::running(Path::new("/proc"), pid).is_some() {
        return Ok(());
    }
    if process.alive() {
        bail!("process {pid} exited while it was being moved");
    }
    // It exited during the write: the PID may have reached a recycled process.
    if let Some(source) = source {
        let _ = fs::move_pid(&tree.path_of(&source), pid);
    }
    bail!("process {pid} exited while it was being moved: nothing was moved (PID reuse)")
}
