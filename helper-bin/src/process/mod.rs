//! Processes cgroupctl handles itself: one pinned by a pidfd (`classify` and the daemon's
//! safety net move it), and the pty a command of `run` gets instead of the caller's terminal.

pub mod pidfd;
pub mod pty_relay;
