//! Logging to syslog, facility authpriv, in the pam_syslog style:
//! `sshd[1234]: pam_cgroup(sshd:session): <what>: <why>`.
//!
//! The syslog crate writes to /dev/log with its own connection, so the host process's openlog()
//! state is left alone. When no syslog socket exists the line is dropped: a PAM module must
//! never fall back to stderr (it is the user's terminal).

use syslog::{Facility, Formatter3164};

use cgroup_core::notice::Level;

type Backend = syslog::Logger<syslog::LoggerBackend, Formatter3164>;

/// Connects to syslog on the first line logged: most sessions log nothing, and connecting
/// costs a dozen syscalls on every login.
pub struct Logger {
    service: String,
    /// The module part in the prefix: `session` or `account`.
    part: &'static str,
    debug: bool,
    backend: Option<Option<Backend>>,
}

/// The host program's name, as pam_syslog shows it (sshd, su, cron), made safe as a tag.
fn process_name() -> String {
    match std::fs::read("/proc/self/comm") {
        Ok(comm) => syslog_tag(&comm),
        Err(_) => "pam_cgroup".to_string(),
    }
}

/// A syslog tag from a process's comm. Whoever starts su or sudo chooses its comm (the name
/// of a symlink it execs through, or prctl), so the tag keeps only bytes that cannot end it:
/// anything else (a newline forging a second line; `[`, `]`, `:` or a space forging another
/// program's tag and pid; a backslash; non-ASCII) is written `\xNN`.
fn syslog_tag(comm: &[u8]) -> String {
    // The kernel ends comm with one newline; nothing else is trimmed.
    let comm = comm.strip_suffix(b"\n").unwrap_or(comm);
    if comm.is_empty() {
        return "pam_cgroup".to_string();
    }
    let mut tag = String::with_capacity(comm.len());
    for &b in comm {
        if b.is_ascii_alphanumeric() || b"-_.+@()".contains(&b) {
            tag.push(char::from(b));
        } else {
            tag.push_str(&format!("\\x{b:02x}"));
        }
    }
    tag
}

impl Logger {
    pub fn new(service: &str, debug: bool) -> Logger {
        Logger {
            service: sanitize(service),
            part: "session",
            debug,
            backend: None,
        }
    }

    /// The same logger for another part of the module (`pam_cgroup(sshd:account): ...`).
    pub fn part(mut self, part: &'static str) -> Logger {
        self.part = part;
        self
    }

    fn backend(&mut self) -> Option<&mut Backend> {
        self.backend
            .get_or_insert_with(|| {
                let formatter = Formatter3164 {
                    facility: Facility::LOG_AUTHPRIV,
                    hostname: None,
                    process: process_name(),
                    pid: std::process::id(),
                };
                syslog::unix(formatter).ok()
            })
            .as_mut()
    }

    /// Logs a line; `Level::Info` lines (things already reported once) only with `debug`.
    pub fn log(&mut self, level: Level, message: &str) {
        if level == Level::Info && !self.debug {
            return;
        }
        let line = format!(
            "pam_cgroup({}:{}): {}",
            self.service,
            self.part,
            sanitize(message)
        );
        let Some(backend) = self.backend() else {
            return;
        };
        // A failed log write is not a reason to fail a login.
        let _ = match level {
            Level::Error => backend.err(line),
            Level::Warning => backend.warning(line),
            Level::Notice => backend.notice(line),
            Level::Info => backend.info(line),
        };
    }

    pub fn error(&mut self, message: &str) {
        self.log(Level::Error, message);
    }

    /// Only with the `debug` argument.
    pub fn debug(&mut self, message: &str) {
        if self.debug {
            let line = format!(
                "pam_cgroup({}:{}): {}",
                self.service,
                self.part,
                sanitize(message)
            );
            if let Some(backend) = self.backend() {
                let _ = backend.debug(line);
            }
        }
    }
}

/// Control characters (a TOML error's newlines, a hostile user name) never reach the log as
/// such: one event, one line.
fn sanitize(text: &str) -> String {
    cgroup_core::log_line::escape_control(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hostile_comm_makes_one_plain_tag() {
        assert_eq!(super::syslog_tag(b"sshd\n"), "sshd");
        assert_eq!(super::syslog_tag(b"(sd-pam)\n"), "(sd-pam)");
        assert_eq!(
            super::syslog_tag(b"x\nsshd[1]: ok\n"),
            "x\\x0asshd\\x5b1\\x5d\\x3a\\x20ok"
        );
        assert_eq!(super::syslog_tag(b"a\\b\xc3\xa9\n"), "a\\x5cb\\xc3\\xa9");
        assert_eq!(super::syslog_tag(b"\n"), "pam_cgroup");
        assert_eq!(super::syslog_tag(b""), "pam_cgroup");
    }

    #[test]
    fn a_multi_line_message_is_logged_as_one_line() {
        let line = super::sanitize("config.toml:3:1: invalid table header\nexpected `.`");
        assert_eq!(line, "config.toml:3:1: invalid table header\\nexpected `.`");
    }
}
