//! Per-user files: `users/<user>.toml`, holding `profile = "NAME"`, limit keys (with
//! `sessions.max`) and, while the user is suspended, a `[suspend]` table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{Config, ConfigError, Source};
use crate::limits::{Limit, LimitKey, SessionsMax};

/// The `[suspend]` table a user file has while its user is suspended (`cgroupctl suspend`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// Shown to the person logging in: "account suspended: <reason>".
    pub reason: String,
    /// When it was suspended (RFC 3339 text as `cgroupctl suspend` writes it), for people.
    pub since: Option<String>,
}

/// The longest suspension reason accepted: it is one line of a login's error message.
pub const MAX_REASON_CHARS: usize = 200;

impl Suspension {
    /// Checks a reason given on the command line or read from a file.
    pub fn check_reason(reason: &str) -> Result<(), String> {
        if reason.trim().is_empty() {
            return Err("must not be empty".to_string());
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(format!("longer than {MAX_REASON_CHARS} characters"));
        }
        if reason.chars().any(char::is_control) {
            return Err("must be one line without control characters".to_string());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserFile {
    pub path: PathBuf,
    pub profile: Option<String>,
    pub limits: BTreeMap<LimitKey, Limit>,
    pub sessions_max: Option<SessionsMax>,
    pub suspend: Option<Suspension>,
}

/// The name of the suspension table in a user file.
pub const SUSPEND_TABLE: &str = "suspend";

impl UserFile {
    /// Parses a user file against the global config (its profile must exist there).
    pub fn parse(path: &Path, text: &str, config: &Config) -> Result<UserFile, ConfigError> {
        let mut table: BTreeMap<String, Spanned<toml::Value>> =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
        let src = Source { path, text };
        let profile = match table.remove("profile") {
            None => None,
            Some(v) => match v.get_ref().as_str() {
                Some(name) if config.profiles.contains_key(name) => Some(name.to_string()),
                Some(name) => {
                    return src.error(
                        v.span(),
                        "profile",
                        format!("no profile named {name:?} in {}", config.path.display()),
                    )
                }
                None => return src.error(v.span(), "profile", "must be a string"),
            },
        };
        let suspend = match table.remove(SUSPEND_TABLE) {
            None => None,
            Some(v) => Some(parse_suspension(&src, &v)?),
        };
        let limits = src.limits("", &table)?;
        let sessions_max = src.sessions_max("", &table)?;
        Ok(UserFile {
            path: path.to_path_buf(),
            profile,
            limits,
            sessions_max,
            suspend,
        })
    }
}

fn parse_suspension(
    src: &Source<'_>,
    value: &Spanned<toml::Value>,
) -> Result<Suspension, ConfigError> {
    let Some(t) = value.get_ref().as_table() else {
        return src.error(value.span(), SUSPEND_TABLE, "must be a table ([suspend])");
    };
    for key in t.keys() {
        if key != "reason" && key != "since" {
            return src.error(
                value.span(),
                format!("{SUSPEND_TABLE}.{key}"),
                "unknown key (known: reason, since)",
            );
        }
    }
    let reason = match t.get("reason").and_then(|r| r.as_str()) {
        Some(r) => r.to_string(),
        None => {
            return src.error(
                value.span(),
                format!("{SUSPEND_TABLE}.reason"),
                "missing (a string shown to the person logging in)",
            )
        }
    };
    if let Err(why) = Suspension::check_reason(&reason) {
        return src.error(value.span(), format!("{SUSPEND_TABLE}.reason"), why);
    }
    let since = match t.get("since") {
        None => None,
        Some(s) => match s.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                return src.error(
                    value.span(),
                    format!("{SUSPEND_TABLE}.since"),
                    "must be a string",
                )
            }
        },
    };
    Ok(Suspension { reason, since })
}
