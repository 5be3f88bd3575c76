//! The daemon's threads, each with a stop pipe: the thread runs until the pipe's read end
//! becomes readable, which closing the write end makes it (EOF). And the accept loop both
//! listeners (the metrics endpoint and the customers' `me` socket) run in their thread.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::log;

/// A running thread of the daemon and the write end of its stop pipe.
pub struct Worker {
    /// What the thread does, for the log ("the metrics thread panicked").
    what: &'static str,
    handle: JoinHandle<()>,
    stop: OwnedFd,
}

impl Worker {
    /// Runs `body` in a thread named `name`; `body` gets the read end of the stop pipe and
    /// must return once it becomes readable.
    pub fn spawn(
        name: &str,
        what: &'static str,
        body: impl FnOnce(OwnedFd) + Send + 'static,
    ) -> Result<Worker> {
        let (stop_rx, stop_tx) = nix::unistd::pipe().context("pipe")?;
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(stop_rx))
            .with_context(|| format!("start the {what} thread"))?;
        Ok(Worker {
            what,
            handle,
            stop: stop_tx,
        })
    }

    /// Closes the write end of the stop pipe and waits for the thread to return.
    pub fn stop(self) {
        drop(self.stop);
        if self.handle.join().is_err() {
            log::error(&format!("the {} thread panicked", self.what));
        }
    }
}

/// Calls `accept` each time `listener` is readable, until `stop` is. `accept` takes one
/// connection and hands it on without reading from it (the loop must stay free for the
/// next); its errors are logged (a non-blocking listener's WouldBlock is not one).
pub fn accept_loop(
    what: &str,
    listener: BorrowedFd<'_>,
    stop: &OwnedFd,
    mut accept: impl FnMut() -> std::io::Result<()>,
) {
    loop {
        let mut fds = [
            PollFd::new(listener, PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log::error(&format!("{what}: poll: {e}"));
                return;
            }
        }
        if fds[1].any().unwrap_or(true) {
            return;
        }
        if fds[0].any().unwrap_or(false) {
            if let Err(e) = accept() {
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    log::warn(&format!("{what}: {e}"));
                }
            }
        }
    }
}

/// Waits until `next`, or until `stop` becomes readable: true when `next` has come, false when
/// the thread must return (stopped, or poll failed: logged with `what`). The periodic
/// threads' one sleep.
pub fn sleep_until(what: &str, stop: &OwnedFd, next: Instant) -> bool {
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                log::error(&format!("{what}: poll: {e}"));
                return false;
            }
        }
        if fds[0].any().unwrap_or(true) {
            return false;
        }
        if Instant::now() >= next {
            return true;
        }
    }
}
