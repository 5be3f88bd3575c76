//! Lines a hook hands to its caller for the log (the PAM module writes them to syslog).

/// Severity of a notice for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub level: Level,
    pub text: String,
}

impl Notice {
    pub fn new(level: Level, text: impl Into<String>) -> Notice {
        Notice {
            level,
            text: text.into(),
        }
    }

    /// A condition that holds at every login is said at `level` once per change of `value`
    /// (recorded under `key`, `report_once`), and as an info line (shown with `debug`) at
    /// the logins after.
    pub fn once(key: &str, value: &str, level: Level, text: String) -> Notice {
        let level = if crate::report_once::should_report(key, value) {
            level
        } else {
            Level::Info
        };
        Notice { level, text }
    }
}
