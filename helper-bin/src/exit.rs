//! Exit codes and one-line error reports.

use std::process::ExitCode;

use cgroup_core::Error;

/// A check found problems (doctor's FAIL; reload: some users could not be resolved).
pub const PROBLEMS_FOUND: u8 = 1;
/// A value or name given on the command line is invalid (like clap's own usage errors).
pub const USAGE_ERROR: u8 = 2;
pub const CONFIG_ERROR: u8 = 3;
pub const SYSTEM_ERROR: u8 = 4;

/// A usage error found by cgroupctl itself (a value clap cannot judge alone): exit 2, like
/// clap's own.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

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

/// A verb that needs root, run by someone else (exit 4, like the EACCES it replaces).
#[derive(Debug)]
pub struct NotRoot {
    pub verb: String,
    pub uid: u32,
    /// Why, or what a customer can use instead.
    pub hint: Option<&'static str>,
}

impl std::fmt::Display for NotRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cgroupctl {}: must be run as root (you are uid {})",
            self.verb, self.uid
        )?;
        match self.hint {
            Some(h) => write!(f, "; {h}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for NotRoot {}

/// The error as JSON for `--json` callers: `{"error": "<one line>", "code": <exit code>}`.
pub fn json(err: &anyhow::Error) -> String {
    serde_json::json!({ "error": one_line(err), "code": number(err) }).to_string()
}

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
    ExitCode::from(number(err))
}

fn number(err: &anyhow::Error) -> u8 {
    let config = err.chain().any(|c| {
        c.downcast_ref::<cgroup_core::config::ConfigError>()
            .is_some()
            || matches!(c.downcast_ref::<Error>(), Some(Error::Config(_)))
    });
    let usage = err.chain().any(|c| {
        c.downcast_ref::<Usage>().is_some()
            || c.downcast_ref::<NotApplicable>().is_some()
            || matches!(
                c.downcast_ref::<Error>(),
                Some(Error::InvalidLimit { .. } | Error::InvalidName { .. })
            )
    });
    if config {
        CONFIG_ERROR
    } else if usage {
        USAGE_ERROR
    } else {
        SYSTEM_ERROR
    }
}
