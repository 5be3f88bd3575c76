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
    use std::io::Write;
    // One event, one line: a message's own newlines must not start a forged journal entry.
    let line = cgroup_core::log_line::escape_control(msg);
    // Not eprintln!, which panics when stderr fails (its reader gone: EPIPE): a panic in the
    // safety net's thread in the middle of a drain would leave the strays it stopped
    // stopped, and the net dead. A line that cannot be written is lost; the work goes on.
    let mut stderr = std::io::stderr().lock();
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        writeln!(stderr, "<{}>{line}", level as u8)
    } else {
        let tag = match level {
            Level::Error => "error: ",
            Level::Warning => "warning: ",
            Level::Info => "",
        };
        writeln!(stderr, "cgroupctl daemon: {tag}{line}")
    };
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
