//! The daemon's log: stderr, which systemd hands to the journal. Under systemd (JOURNAL_STREAM
//! set) each line carries an sd-daemon priority prefix (`<3>` error ... `<6>` info) so the
//! journal records its level; elsewhere lines are prefixed with the program name.

#[derive(Debug, Clone, Copy)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Info = 6,
}

pub fn log(level: Level, msg: &str) {
    // One event, one line: a message's own newlines must not start a forged journal entry.
    let line = cgroup_core::log_line::escape_control(msg);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        eprintln!("<{}>{line}", level as u8);
    } else {
        let tag = match level {
            Level::Error => "error: ",
            Level::Warning => "warning: ",
            Level::Info => "",
        };
        eprintln!("cgroupctl daemon: {tag}{line}");
    }
}

pub fn info(msg: &str) {
    log(Level::Info, msg)
}

pub fn warn(msg: &str) {
    log(Level::Warning, msg)
}

pub fn error(msg: &str) {
    log(Level::Error, msg)
}
