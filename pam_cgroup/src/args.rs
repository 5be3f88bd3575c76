//! Module arguments: `config=PATH`, `debug`, `on_error=open|closed`, `selftest=panic`. Unknown arguments are
//! reported (and ignored) rather than failing the session: a typo in a PAM line must never lock
//! anybody out.

use std::path::PathBuf;

use cgroup_core::config::{OnError, DEFAULT_CONFIG_PATH};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleArgs {
    pub config: PathBuf,
    pub debug: bool,
    pub on_error: Option<OnError>,
    /// `selftest=panic`: the session hooks panic on purpose, so an administrator (and the
    /// tests) can check that the installed build catches a panic at the FFI boundary and
    /// follows on_error. Only a PAM line can set it, which only root writes.
    pub selftest_panic: bool,
    /// Arguments we did not understand, for one log line.
    pub unknown: Vec<String>,
}

impl Default for ModuleArgs {
    fn default() -> Self {
        ModuleArgs {
            config: PathBuf::from(DEFAULT_CONFIG_PATH),
            debug: false,
            on_error: None,
            selftest_panic: false,
            unknown: Vec::new(),
        }
    }
}

/// Parses the arguments of the PAM line.
pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> ModuleArgs {
    let mut out = ModuleArgs::default();
    for arg in args {
        match arg.split_once('=') {
            None if arg == "debug" => out.debug = true,
            Some(("config", path)) if path.starts_with('/') => out.config = PathBuf::from(path),
            Some(("selftest", "panic")) => out.selftest_panic = true,
            Some(("on_error", value)) => match value.parse() {
                Ok(v) => out.on_error = Some(v),
                Err(_) => out.unknown.push(arg.to_string()),
            },
            _ => out.unknown.push(arg.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        assert_eq!(parse([]), ModuleArgs::default());
    }

    #[test]
    fn all_arguments() {
        let a = parse([
            "config=/etc/x.toml",
            "debug",
            "on_error=closed",
            "selftest=panic",
        ]);
        assert_eq!(a.config, PathBuf::from("/etc/x.toml"));
        assert!(a.debug && a.selftest_panic);
        assert_eq!(a.on_error, Some(OnError::Closed));
        assert!(a.unknown.is_empty());
    }

    #[test]
    fn bad_arguments_are_collected_not_fatal() {
        let a = parse([
            "config=relative.toml",
            "on_error=maybe",
            "debugg",
            "config",
            "=",
            "",
            "selftest=abort",
        ]);
        assert_eq!(a.config, PathBuf::from(DEFAULT_CONFIG_PATH));
        assert_eq!(a.on_error, None);
        assert_eq!(a.unknown.len(), 7);
    }

    #[test]
    fn last_one_wins() {
        let a = parse(["on_error=closed", "on_error=open"]);
        assert_eq!(a.on_error, Some(OnError::Open));
    }
}
