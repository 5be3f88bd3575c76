//! Exit codes and one-line error reports.

use std::process::ExitCode;

use cgroup_core::Error;

/// A check found problems (doctor's FAIL; reload: some users could not be resolved).
pub const PROBLEMS_FOUND: u8 = 1;
/// A value or name given on the command line is invalid (like clap's own usage errors).
pub const USAGE_ERROR: u8 = 2;
pub const CONFIG_ERROR: u8 = 3;
pub const SYSTEM_ERROR: u8 = 4;

/// The operand names nothing the verb applies to (an unknown user, a user who is not
/// suspended, a cgroup that is not frozen): nothing was changed. Exit 2, like a usage error.
#[derive(Debug)]
pub struct NotApplicable(pub String);

impl std::fmt::Display for NotApplicable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotApplicable {}

/// The whole error chain on one line: `outer: inner: cause`.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").replace('\n', " ")
}

pub fn code_for(err: &anyhow::Error) -> ExitCode {
    let config = err.chain().any(|c| {
        c.downcast_ref::<cgroup_core::config::ConfigError>()
            .is_some()
            || matches!(c.downcast_ref::<Error>(), Some(Error::Config(_)))
    });
    let usage = err.chain().any(|c| {
        c.downcast_ref::<NotApplicable>().is_some()
            || matches!(
                c.downcast_ref::<Error>(),
                Some(Error::InvalidLimit { .. } | Error::InvalidName { .. })
            )
    });
    ExitCode::from(if config {
        CONFIG_ERROR
    } else if usage {
        USAGE_ERROR
    } else {
        SYSTEM_ERROR
    })
}
