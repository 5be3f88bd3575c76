//! Per-user files: `users/<user>.toml`, holding `profile = "NAME"` and/or limit keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{Config, ConfigError, Source};
use crate::limits::{Limit, LimitKey};

#[derive(Debug, Clone, PartialEq)]
pub struct UserFile {
    pub path: PathBuf,
    pub profile: Option<String>,
    pub limits: BTreeMap<LimitKey, Limit>,
}

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
        let limits = src.limits("", &table)?;
        Ok(UserFile {
            path: path.to_path_buf(),
            profile,
            limits,
        })
    }
}
