//! The `[policy]` of the last valid config, kept root-only in the state directory, so that a
//! config broken beyond what `salvage` can read (a broken `[policy]` header, an unreadable
//! `on_error` line, a file deleted or made group-writable) still follows the administrator's
//! last word: a host that was "closed" stays closed, its exempt admins stay exempt.
//!
//! Written by `cgroupctl check`, `init` and `reload`, and by the PAM module when it loads a
//! valid config newer than the kept copy (one extra fstatat per login; the write happens once
//! per config change). One file per config path:
//! `/var/lib/pam_cgroup/last-good-policy@<escaped config path>`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Config, Policy};
use crate::state_dir::{escape_path, StateDir, StateError, STATE_DIR};

fn file_name(config_path: &Path) -> Option<String> {
    escape_path(config_path).map(|p| format!("last-good-policy@{p}"))
}

/// The kept policy of `config_path`, if there is a trustworthy one.
pub fn load(config_path: &Path) -> Result<Option<Policy>, StateError> {
    let Some(name) = file_name(config_path) else {
        return Ok(None);
    };
    let Some(dir) = StateDir::open(Path::new(STATE_DIR), false)? else {
        return Ok(None);
    };
    let Some(bytes) = dir.read(&name)? else {
        return Ok(None);
    };
    let kept = dir.path().join(&name);
    let text = String::from_utf8(bytes).map_err(|_| StateError {
        path: kept.clone(),
        reason: "is not UTF-8".into(),
        errno: None,
    })?;
    Config::parse(&kept, &text)
        .map(|c| Some(c.policy))
        .map_err(|e| StateError {
            path: kept,
            reason: e.to_string(),
            errno: None,
        })
}

/// Keeps `config`'s policy as the last good one.
pub fn store(config: &Config) -> Result<(), StateError> {
    let Some(name) = file_name(&config.path) else {
        return Err(StateError {
            path: config.path.clone(),
            reason: "path too long to keep its policy".into(),
            errno: None,
        });
    };
    let Some(dir) = StateDir::open(Path::new(STATE_DIR), true)? else {
        return Err(StateError {
            path: STATE_DIR.into(),
            reason: "vanished while being created".into(),
            errno: None,
        });
    };
    dir.write(&name, render(config).as_bytes())
}

/// Keeps `config`'s policy when the kept copy is older than the config file (or missing).
/// Cheap when nothing changed: two stats. Returns whether it wrote.
pub fn store_if_stale(config: &Config) -> Result<bool, StateError> {
    let Some(name) = file_name(&config.path) else {
        return Ok(false);
    };
    let changed = config_changed_at(&config.path);
    let kept = StateDir::open(Path::new(STATE_DIR), false)?.and_then(|d| d.mtime(&name));
    match (kept, changed) {
        (Some(kept), Some(changed)) if kept > changed => Ok(false),
        _ => store(config).map(|()| true),
    }
}

/// Forgets the kept policy of `config_path` (tests, `cgroupctl deinit`).
pub fn forget(config_path: &Path) -> Result<(), StateError> {
    let Some(name) = file_name(config_path) else {
        return Ok(());
    };
    match StateDir::open(Path::new(STATE_DIR), false)? {
        Some(dir) => dir.remove(&name),
        None => Ok(()),
    }
}

/// The latest of the file's mtime and ctime and, for a symlink, the link's own mtime: any
/// edit, rename-into-place or relink moves it forward.
pub fn config_changed_at(path: &Path) -> Option<(i64, i64)> {
    let target = std::fs::metadata(path).ok()?;
    let mut latest =
        (target.mtime(), target.mtime_nsec()).max((target.ctime(), target.ctime_nsec()));
    if let Ok(link) = std::fs::symlink_metadata(path) {
        latest = latest.max((link.mtime(), link.mtime_nsec()));
        latest = latest.max((link.ctime(), link.ctime_nsec()));
    }
    Some(latest)
}

/// The policy as a config file of its own (parsed back with `Config::parse`).
fn render(config: &Config) -> String {
    let p = &config.policy;
    let list = |items: &[String]| {
        let quoted: Vec<String> = items
            .iter()
            .map(|s| toml::Value::String(s.clone()).to_string())
            .collect();
        format!("[{}]", quoted.join(", "))
    };
    format!(
        "# Written by pam_cgroup: the [policy] of the last valid {}.\n\
         # Followed when that file cannot be read or parsed. Do not edit.\n\
         [policy]\n\
         on_error = \"{}\"\n\
         exempt_users = {}\n\
         exempt_groups = {}\n\
         exempt_services = {}\n\
         user_manager = \"{}\"\n\
         min_uid = {}\n\
         max_uid = {}\n\
         safety_net = {}\n",
        config.path.display().to_string().replace('\n', "?"),
        p.on_error,
        list(&p.exempt_users),
        list(&p.exempt_groups),
        list(&p.exempt_services),
        p.user_manager,
        p.min_uid,
        p.max_uid,
        p.safety_net
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_policy_parses_back() {
        let text = "[policy]\non_error = \"closed\"\nexempt_users = [\"root\", \"o\\\"ps\"]\nexempt_groups = [\"adm\"]\nmin_uid = 500\n";
        let c = Config::parse(Path::new("/x/config.toml"), text).unwrap();
        let back = Config::parse(Path::new("/kept"), &render(&c)).unwrap();
        assert_eq!(back.policy, c.policy);
    }
}
