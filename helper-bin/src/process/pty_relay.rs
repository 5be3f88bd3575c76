//! The terminal side of `cgroupctl run`: the command never gets the caller's terminal.
//!
//! A process holding the admin's terminal can push input into it with TIOCSTI (the admin's
//! shell then runs it as root once cgroupctl exits), or keep reading it and steal the
//! keystrokes the admin types later. So, like `runuser --pty` / `su --pty`: the command runs
//! in a new session (setsid) on a fresh pseudo-terminal of its own, and cgroupctl relays bytes
//! between that pty and its own terminal while the command runs. When the command exits the
//! relay stops and the pty is closed: whatever the command left running holds only a hung-up
//! pty. Stdio that is not a terminal (pipes, files) is passed through as it is.
//!
//! Hand-written on nix's openpty/termios/poll: no maintained crate does just this relay
//! without an async runtime.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{openpty, OpenptyResult, Winsize};
use nix::sys::termios::{self, SetArg, Termios};

/// Which of our stdin, stdout, stderr are terminals.
#[derive(Debug, Clone, Copy)]
pub struct Terminals {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl Terminals {
    pub fn detect() -> Terminals {
        Terminals {
            stdin: std::io::stdin().is_terminal(),
            stdout: std::io::stdout().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
        }
    }

    pub fn any(&self) -> bool {
        self.stdin || self.stdout || self.stderr
    }
}

/// The pty made for one command.
pub struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    terminals: Terminals,
}

fn winsize_of(fd: BorrowedFd<'_>) -> Option<Winsize> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one struct winsize into `ws`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some(ws)
}

fn set_winsize(fd: BorrowedFd<'_>, ws: &Winsize) {
    // SAFETY: TIOCSWINSZ reads one struct winsize.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) };
}

/// The terminal we relay to: stdin when it is one, else stdout, else stderr.
fn our_terminal(t: Terminals) -> BorrowedFd<'static> {
    // SAFETY: fds 0, 1, 2 stay open for the whole life of cgroupctl.
    unsafe {
        BorrowedFd::borrow_raw(if t.stdin {
            0
        } else if t.stdout {
            1
        } else {
            2
        })
    }
}

impl Pty {
    /// A pty with our terminal's settings and size.
    pub fn open(terminals: Terminals) -> Result<Pty> {
        let ours = our_terminal(terminals);
        let settings = termios::tcgetattr(ours).ok();
        let OpenptyResult { master, slave } =
            openpty(winsize_of(ours).as_ref(), settings.as_ref()).context("openpty")?;
        Ok(Pty {
            master,
            slave,
            terminals,
        })
    }

    /// The command's stdin, stdout, stderr: the pty slave where ours is a terminal, ours
    /// (inherited) elsewhere.
    pub fn stdio(&self) -> Result<[Stdio; 3]> {
        let pick = |is_tty: bool| -> Result<Stdio> {
            Ok(if is_tty {
                Stdio::from(self.slave.try_clone().context("dup the pty")?)
            } else {
                Stdio::inherit()
            })
        };
        Ok([
            pick(self.terminals.stdin)?,
            pick(self.terminals.stdout)?,
            pick(self.terminals.stderr)?,
        ])
    }

    /// Relays between our terminal and the pty until `child` exits; returns its status. Our
    /// terminal is in raw mode meanwhile (the command's pty does the line editing) and
    /// restored afterwards, whatever happened.
    pub fn relay(self, child: &mut Child) -> Result<ExitStatus> {
        drop(self.slave);
        let _raw = if self.terminals.stdin {
            RawMode::enter(our_terminal(self.terminals))
        } else {
            None
        };
        let mut out: Box<dyn Write> = if self.terminals.stdout {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::io::stderr())
        };
        let mut stdin_open = self.terminals.stdin;
        let mut size = winsize_of(our_terminal(self.terminals));
        let mut buf = [0u8; 8192];
        let mut master = std::fs::File::from(self.master);
        loop {
            if let Some(status) = child.try_wait().context("wait for the command")? {
                drain(&master, &mut out);
                return Ok(status);
            }
            // SIGWINCH is not caught: the size is copied when it changes, at most 100 ms late.
            let now = winsize_of(our_terminal(self.terminals));
            if let Some(ws) = now.filter(|n| size.is_none_or(|s| !same_size(&s, n))) {
                set_winsize(master.as_fd(), &ws);
            }
            size = now;
            let stdin = std::io::stdin();
            let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("poll"),
            }
            let ready = |f: &PollFd<'_>| {
                f.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            };
            let master_ready = ready(&fds[0]);
            let stdin_ready = stdin_open && ready(&fds[1]);
            drop(fds);
            if master_ready {
                match master.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = out.write_all(&buf[..n]);
                        let _ = out.flush();
                    }
                    // EIO: every holder of the slave closed it; wait for the exit status.
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            if stdin_ready {
                match std::io::stdin().lock().read(&mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = master.write_all(&buf[..n]);
                    }
                    _ => stdin_open = false,
                }
            }
        }
    }
}

fn same_size(a: &Winsize, b: &Winsize) -> bool {
    (a.ws_row, a.ws_col, a.ws_xpixel, a.ws_ypixel) == (b.ws_row, b.ws_col, b.ws_xpixel, b.ws_ypixel)
}

/// What the command wrote just before it exited.
fn drain(master: &std::fs::File, out: &mut Box<dyn Write>) {
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
            break;
        }
        match (&*master).read(&mut buf) {
            Ok(n) if n > 0 => {
                let _ = out.write_all(&buf[..n]);
            }
            _ => break,
        }
    }
    let _ = out.flush();
}

/// Our terminal in raw mode until dropped.
struct RawMode {
    fd: BorrowedFd<'static>,
    saved: Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd<'static>) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSADRAIN, &self.saved);
    }
}
