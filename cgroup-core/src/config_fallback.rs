//! Loading the config for a hook: the file, else its last good copy (`config::last_good`),
//! else the policy a broken file still gives (`Policy::fallback`), so that root and exempt
//! users are decided before anything can fail on the config: a broken file never locks them
//! out.

use std::path::Path;

use crate::config::last_good::{self, Broken, Keep, Loaded};
use crate::config::{Config, ConfigError, Policy, UserFile};
use crate::notice::{Level, Notice};

/// No config could be used (the file is broken and no good copy was ever kept), and the
/// policy to follow instead: what of the broken file's `[policy]` can still be read, else the
/// defaults (`Policy::fallback`).
#[derive(Debug)]
pub struct ConfigFailure {
    pub error: ConfigError,
    pub fallback: Policy,
    /// Why the kept last good copy could not be used, when there is one that could not.
    pub last_good_error: Option<String>,
}

/// Loads the config, or its last good copy when the file is broken (`last_good`); a good
/// parse is kept once the file has settled. On failure also says which policy to follow.
pub fn load_config(path: &Path) -> std::result::Result<Loaded, Box<ConfigFailure>> {
    // The module and the daemon run as root (a write that fails otherwise is only logged).
    last_good::load(path, Keep::Settled).map_err(|none| {
        Box::new(ConfigFailure {
            fallback: none.fallback_policy(),
            error: none.error,
            last_good_error: none.kept_error,
        })
    })
}

/// The config and the policy a login follows, with what the log must say about them: the
/// config (or its last good copy) and its policy, or no config and the fallback policy.
pub fn load_for_login(path: &Path, notices: &mut Vec<Notice>) -> (Option<Config>, Policy) {
    match load_config(path) {
        Ok(loaded) => {
            if let Some(e) = &loaded.keep_error {
                notices.push(Notice::new(
                    Level::Info,
                    format!("cannot keep the last good config: {e}"),
                ));
            }
            if let Some(broken) = &loaded.broken {
                notices.push(broken_notice(broken, "config"));
            }
            let p = loaded.config.policy.clone();
            (Some(loaded.config), p)
        }
        Err(failure) => {
            let p = &failure.fallback;
            notices.push(Notice::new(
                Level::Error,
                format!(
                    "config: {}; no good config was ever kept: following the fallback policy (on_error={}, exempt_users={:?}, exempt_groups={:?}, min_uid={})",
                    failure.error, p.on_error, p.exempt_users, p.exempt_groups, p.min_uid
                ),
            ));
            if let Some(e) = &failure.last_good_error {
                notices.push(Notice::new(
                    Level::Warning,
                    format!("last good config not used: {e}"),
                ));
            }
            (None, failure.fallback)
        }
    }
}

/// One line for a broken file met with its last good copy: the error and what is used.
/// `what`: "config", "user file".
pub fn broken_line(broken: &Broken, what: &str) -> String {
    let since = broken
        .kept_changed
        .and_then(|t| u64::try_from(t).ok())
        .map(|t| format!(" (as of {})", crate::time::utc_text(t.saturating_mul(1000))))
        .unwrap_or_default();
    format!(
        "{}; using the last good {what}{since}, kept in {}",
        broken.error,
        broken.kept.display()
    )
}

/// A broken file's line for the log: an error the first time this error is seen, an info
/// line at the logins after, so the log says it once per change.
pub fn broken_notice(broken: &Broken, what: &str) -> Notice {
    let text = broken_line(broken, what);
    let key = crate::state_dir::escape_path(&broken.error.file)
        .map(|p| format!("broken@{p}"))
        .unwrap_or_else(|| "broken".to_string());
    Notice::once(
        &key,
        &broken.error.to_string(),
        Level::Error,
        format!("{what}: {text}"),
    )
}

/// The user's file for a login, or its last good copy when it is broken (said in the log).
pub fn load_user_for_login(
    config: &Config,
    user: &str,
    notices: &mut Vec<Notice>,
) -> Result<Option<UserFile>, ConfigError> {
    let loaded = last_good::load_user(config, user, Keep::Settled)?;
    if let Some(broken) = &loaded.broken {
        notices.push(broken_notice(broken, "user file"));
    }
    Ok(loaded.file)
}
