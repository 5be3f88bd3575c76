//! The last good configuration: every config file that parsed (the global file and each
//! user file) is kept by root, verbatim, in the root-only state directory, and a file that
//! no longer parses (a typo, a bad value, a file deleted or made group-writable) is met with
//! its last good copy, whole: limits, plans, policy, tree. An administrator's typo never
//! changes what customers get; only where no good copy was ever kept does `on_error` decide.
//!
//! Where: `/var/lib/pam_cgroup/last-good@<escaped config path>` for the global file, and
//! `/var/lib/pam_cgroup/last-good-users@<escaped config path>/<user>.toml` for user files
//! (`StateDir`: root-owned, 0700 directories and 0600 files, opened without following a
//! symlink, written under a temporary name and renamed into place). Each copy's mtime is the
//! change stamp of the file it was taken from (`config_changed_at`), so a reader tells in one
//! fstatat whether the copy is current, and a copy is never older than it says.
//!
//! Who keeps: the PAM module at a login, the daemon at each pass, and every `cgroupctl` verb
//! run by root; `cgroupctl check`, `init` and `reload` (the administrator's own word that
//! the file is meant) at once, everybody else only once the file has not changed for
//! `SETTLE`. A customer chooses when it logs in: an editor that truncates a file and then
//! writes it leaves an empty (valid!) file for a moment, and a login at that moment must not
//! make "no limits" the last good config. Only files `read_secure` accepts are ever kept
//! (root-owned, in root-owned directories nobody else may write): nobody but root decides
//! what a copy holds.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    read_secure, read_secure_stamped, Config, ConfigError, Follow, Policy, UserFile,
    MAX_CONFIG_BYTES,
};
use crate::error::StateError;
use crate::paths::{
    LAST_GOOD_CONFIG_PREFIX, LAST_GOOD_POLICY_PREFIX, LAST_GOOD_USERS_PREFIX, STATE_DIR,
};
use crate::state_dir::{escape_path, StateDir};
use crate::tree::USERS_DIR;

/// A file must have been left alone this long before a login, the daemon or a read-only
/// verb keeps it (see the module's comment).
pub const SETTLE: Duration = Duration::from_secs(1);

/// Who is asking, and so whether a good parse is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The administrator validated the file (`cgroupctl check`, `init`, `reload`): kept now.
    Now,
    /// A login, the daemon, another verb: kept once the file has settled (`SETTLE`).
    Settled,
    /// Never kept (not root; the account hook, whose session hook keeps).
    Never,
}

impl Keep {
    /// `wanted`, or `Never` when this process cannot write the state directory.
    pub fn as_root(wanted: Keep) -> Keep {
        if nix::unistd::geteuid().is_root() {
            wanted
        } else {
            Keep::Never
        }
    }
}

/// A file that did not parse, met with its last good copy.
#[derive(Debug, Clone)]
pub struct Broken {
    /// What is wrong with the file (file:line:col: key: reason).
    pub error: ConfigError,
    /// The kept copy in use.
    pub kept: PathBuf,
    /// When the file the copy was taken from had last changed (seconds since the epoch).
    pub kept_changed: Option<i64>,
}

/// The config in use: the file's, or its last good copy when the file is broken.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub broken: Option<Broken>,
    /// Why a good parse could not be kept (the state directory refused or failed).
    pub keep_error: Option<StateError>,
}

/// No config can be used: the file is broken and no good copy was ever kept (or the kept one
/// cannot be trusted). `on_error` decides.
#[derive(Debug)]
pub struct NoGoodConfig {
    pub error: ConfigError,
    /// The broken file's text when it could be read and trusted (what its `[policy]` says).
    pub text: Option<String>,
    /// Why the kept copy was not used, when there is one that could not be.
    pub kept_error: Option<String>,
    /// The `[policy]` 0.2.0 kept of its last valid config (`last-good-policy@`), on a host
    /// upgraded while its file is broken: a host that was closed stays closed.
    pub legacy_policy: Option<Policy>,
}

impl NoGoodConfig {
    /// The policy to follow meanwhile (`Policy::fallback`): what the broken file's `[policy]`
    /// still says, else what 0.2.0 kept, else the defaults.
    pub fn fallback_policy(&self) -> Policy {
        Policy::fallback(self.text.as_deref(), self.legacy_policy.as_ref())
    }
}

/// The `[policy]` file 0.2.0 kept (read only; `forget` removes it).
fn legacy_policy(config_path: &Path) -> Option<Policy> {
    let name = format!("{LAST_GOOD_POLICY_PREFIX}{}", escape_path(config_path)?);
    let dir = StateDir::open(Path::new(STATE_DIR), false).ok()??;
    let bytes = dir.read(&name).ok()??;
    let text = String::from_utf8(bytes).ok()?;
    Config::parse(&dir.path().join(&name), &text)
        .ok()
        .map(|c| c.policy)
}

fn config_name(config_path: &Path) -> Option<String> {
    escape_path(config_path).map(|p| format!("{LAST_GOOD_CONFIG_PREFIX}{p}"))
}

fn users_dir_name(config_path: &Path) -> Option<String> {
    escape_path(config_path).map(|p| format!("{LAST_GOOD_USERS_PREFIX}{p}"))
}

/// The kept copy of `config_path` (for tests and documentation).
pub fn kept_config_path(config_path: &Path) -> Option<PathBuf> {
    config_name(config_path).map(|n| Path::new(STATE_DIR).join(n))
}

/// The kept copy of a user's file (for tests and documentation).
pub fn kept_user_path(config_path: &Path, user: &str) -> Option<PathBuf> {
    users_dir_name(config_path).map(|d| Path::new(STATE_DIR).join(d).join(format!("{user}.toml")))
}

/// Loads the config at `path`, or its last good copy when it is broken.
pub fn load(path: &Path, keep: Keep) -> Result<Loaded, Box<NoGoodConfig>> {
    // The stamp (`config_changed_at`) is taken before the read: if the file changes in
    // between, the copy is stamped older than what it holds and the next reader keeps it
    // again, never the other way round. The link's ctime by lstat before the open, the
    // file's from the opened descriptor's fstat (which `read_secure` makes anyway) before the
    // read: one stat by path instead of two.
    let link = link_changed_at(path);
    let (error, text) = match read_secure_stamped(path, Follow::Symlinks, false) {
        Ok(Some((text, file_changed))) => match Config::parse(path, &text) {
            Ok(config) => {
                if let Some(kept) = kept_while_root_missing(path, &text, &config) {
                    return Ok(kept);
                }
                let changed = Some(link.map_or(file_changed, |l| l.max(file_changed)));
                let keep_error = keep_text(path, &text, changed, keep).err();
                return Ok(Loaded {
                    config,
                    broken: None,
                    keep_error,
                });
            }
            Err(e) => (e, Some(text)),
        },
        Ok(None) => (ConfigError::file(path, "does not exist"), None),
        // Not trusted (permissions, size) or missing: nothing from it is read.
        Err(e) => (e, None),
    };
    match load_kept(path) {
        Ok(Some((config, kept, kept_changed))) => Ok(Loaded {
            config,
            broken: Some(Broken {
                error,
                kept,
                kept_changed,
            }),
            keep_error: None,
        }),
        Ok(None) => Err(Box::new(NoGoodConfig {
            error,
            text,
            kept_error: None,
            legacy_policy: legacy_policy(path),
        })),
        Err(e) => Err(Box::new(NoGoodConfig {
            error,
            text,
            kept_error: Some(e.to_string()),
            legacy_policy: legacy_policy(path),
        })),
    }
}

/// A file that parses but names a tree root that is not there, while its last good copy
/// names another that is: a typo in `root`, or a move of the tree not finished with
/// `cgroupctl init --move-root` (which makes the new root and keeps the file at once). Logins would land in
/// a tree nobody set up (no private-IP programs: with `on_error = "open"`, unconfined), so the
/// file is met as broken: the last good copy is used, and the file is not kept. One lstat of
/// the root at each load; the kept copy is read only when the root is missing.
fn kept_while_root_missing(path: &Path, text: &str, config: &Config) -> Option<Loaded> {
    // The default root is found through the mounts; only a named one can be mistyped.
    let root = config.tree.root.as_deref()?;
    if std::fs::symlink_metadata(root).is_ok() {
        return None;
    }
    let (kept_config, kept, kept_changed) = load_kept(path).ok()??;
    let kept_root = kept_config.tree.root.as_deref()?;
    // Only a tree that was set up (`users/` made by init or a login) is one to stay in.
    if kept_root == root || !kept_root.join(USERS_DIR).is_dir() {
        return None;
    }
    let error = ConfigError::at(
        path,
        text,
        root_line_span(text),
        Some("tree.root".to_string()),
        format!(
            "{} does not exist, and the last good config's tree root {} does: a typo, or a move of the tree (`cgroupctl init --move-root` sets the new root up)",
            root.display(),
            kept_root.display()
        ),
    );
    Some(Loaded {
        config: kept_config,
        broken: Some(Broken {
            error,
            kept,
            kept_changed,
        }),
        keep_error: None,
    })
}

/// Where `root = ...` is written under `[tree]`, for the error's position. Only on the error
/// path, so a line scan rather than a second parse with spans.
fn root_line_span(text: &str) -> Option<std::ops::Range<usize>> {
    let mut section = "";
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[') {
            section = name.split(']').next().unwrap_or("").trim();
        } else if section == "tree" {
            let key = trimmed.split('=').next().unwrap_or("").trim();
            if key == "root" || key == "\"root\"" {
                let start = offset + (line.len() - line.trim_start().len());
                return Some(start..start + trimmed.len());
            }
        }
        offset += line.len();
    }
    None
}

/// Loads the config at `path` and nothing else (an error when it is broken); a good one is
/// kept at once when this process is root. For `cgroupctl init` and the like, which set
/// things up from what the administrator just wrote.
pub fn load_and_keep(path: &Path) -> Result<Config, ConfigError> {
    let changed = config_changed_at(path);
    let text = read_secure(path, Follow::Symlinks, false)?
        .ok_or_else(|| ConfigError::file(path, "does not exist"))?;
    let config = Config::parse(path, &text)?;
    // A copy that cannot be written is no reason to refuse what was asked.
    let _ = keep_text(path, &text, changed, Keep::as_root(Keep::Now));
    Ok(config)
}

/// The kept copy of the global file, parsed; with its path and its source's change time.
fn load_kept(path: &Path) -> Result<Option<(Config, PathBuf, Option<i64>)>, StateError> {
    let Some(name) = config_name(path) else {
        return Ok(None);
    };
    let Some(dir) = StateDir::open(Path::new(STATE_DIR), false)? else {
        return Ok(None);
    };
    let Some((kept, text, changed)) = read_kept(&dir, &name)? else {
        return Ok(None);
    };
    let mut config = Config::parse(&kept, &text).map_err(|e| copy_error(&kept, e.to_string()))?;
    // User files are found next to the real file, not next to the copy.
    config.path = path.to_path_buf();
    Ok(Some((config, kept, changed)))
}

/// A kept copy in `dir`: its path, its text and its source's change time (the copy's mtime).
fn read_kept(
    dir: &StateDir,
    name: &str,
) -> Result<Option<(PathBuf, String, Option<i64>)>, StateError> {
    let Some(bytes) = dir.read_at_most(name, MAX_CONFIG_BYTES)? else {
        return Ok(None);
    };
    let kept = dir.path().join(name);
    let text = String::from_utf8(bytes).map_err(|_| copy_error(&kept, "is not UTF-8".into()))?;
    let changed = dir.mtime(name).map(|(s, _)| s);
    Ok(Some((kept, text, changed)))
}

/// A kept copy that cannot be used; errors name the copy, the file itself is reported by its
/// own error.
fn copy_error(kept: &Path, reason: String) -> StateError {
    StateError {
        path: kept.to_path_buf(),
        reason,
        errno: None,
    }
}

/// Has the file stood unchanged for `SETTLE`?
fn settled(changed: (i64, i64)) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let changed = Duration::new(
        u64::try_from(changed.0).unwrap_or(0),
        u32::try_from(changed.1).unwrap_or(0),
    );
    now.checked_sub(changed).is_some_and(|age| age >= SETTLE)
}

/// Keeps `text` as the last good copy of `path` when `keep` says so and the copy is not
/// already this version. Returns whether it wrote.
fn keep_text(
    path: &Path,
    text: &str,
    changed: Option<(i64, i64)>,
    keep: Keep,
) -> Result<bool, StateError> {
    let (Some(changed), Some(name)) = (changed, config_name(path)) else {
        return Ok(false);
    };
    if !should_keep(keep, changed) || kept_is_current(&Path::new(STATE_DIR).join(&name), changed) {
        return Ok(false);
    }
    let Some(dir) = open_state_dir()? else {
        return Ok(false);
    };
    if dir.mtime(&name) == Some(changed) {
        return Ok(false);
    }
    dir.write_stamped(&name, text.as_bytes(), Some(changed))
        .map(|()| true)
}

/// Is the kept copy at `path` already this version of its file (its mtime the file's stamp)?
/// One stat by path, at every login: read only, and only root can make anything in the state
/// directory; a mismatch goes the hardened way (`StateDir`).
fn kept_is_current(path: &Path, changed: (i64, i64)) -> bool {
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_file() && (m.mtime(), m.mtime_nsec()) == changed)
}

/// The state directory, made when missing (a login pays one open when it exists).
fn open_state_dir() -> Result<Option<StateDir>, StateError> {
    match StateDir::open(Path::new(STATE_DIR), false)? {
        Some(dir) => Ok(Some(dir)),
        None => StateDir::open(Path::new(STATE_DIR), true),
    }
}

fn should_keep(keep: Keep, changed: (i64, i64)) -> bool {
    match keep {
        Keep::Never => false,
        Keep::Now => true,
        Keep::Settled => settled(changed),
    }
}

/// A user's file as used: the file's, or its last good copy when it is broken.
#[derive(Debug)]
pub struct UserLoaded {
    pub file: Option<UserFile>,
    pub broken: Option<Broken>,
}

/// Loads `users/<user>.toml` of `config`, or its last good copy when it is broken. A file
/// that does not exist is a good state too: its kept copy is forgotten, so a file removed
/// on purpose never comes back. When the copy cannot be used either (none kept, or it names
/// a plan the config no longer has), the file's own error is returned.
pub fn load_user(config: &Config, user: &str, keep: Keep) -> Result<UserLoaded, ConfigError> {
    crate::names::validate_user_name(user)
        .map_err(|e| ConfigError::file(&config.user_file_path("_"), format!("refused: {e}")))?;
    let path = config.user_file_path(user);
    // A user file is never a symlink (`Follow::NoSymlinks`): its own ctime is its stamp. Most
    // users have no file: this one stat is then all it costs (with the copy's unlink below).
    let (changed, text) = match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, Ok(None)),
        Ok(meta) => (
            Some((meta.ctime(), meta.ctime_nsec())),
            config.read_user_text(user),
        ),
        // The read says why.
        Err(_) => (None, config.read_user_text(user)),
    };
    let error = match text {
        Ok(None) => {
            if keep != Keep::Never {
                // Nothing to keep any more; a failure only leaves an unused copy behind.
                let _ = forget_user(&config.path, user);
            }
            return Ok(UserLoaded {
                file: None,
                broken: None,
            });
        }
        Ok(Some(text)) => match UserFile::parse(&path, &text, config) {
            Ok(file) => {
                if let Some(changed) = changed {
                    let _ = keep_user_text(config, user, &text, changed, keep);
                }
                return Ok(UserLoaded {
                    file: Some(file),
                    broken: None,
                });
            }
            Err(e) => e,
        },
        Err(e) => e,
    };
    match load_kept_user(config, user) {
        Ok(Some((file, kept, kept_changed))) => Ok(UserLoaded {
            file: Some(file),
            broken: Some(Broken {
                error,
                kept,
                kept_changed,
            }),
        }),
        Ok(None) | Err(_) => Err(error),
    }
}

fn keep_user_text(
    config: &Config,
    user: &str,
    text: &str,
    changed: (i64, i64),
    keep: Keep,
) -> Result<bool, StateError> {
    let Some(sub) = users_dir_name(&config.path) else {
        return Ok(false);
    };
    let current = kept_user_path(&config.path, user).is_some_and(|p| kept_is_current(&p, changed));
    if !should_keep(keep, changed) || current {
        return Ok(false);
    }
    let Some(dir) = open_state_dir()? else {
        return Ok(false);
    };
    let Some(dir) = dir.subdir(&sub, true)? else {
        return Ok(false);
    };
    let name = format!("{user}.toml");
    if dir.mtime(&name) == Some(changed) {
        return Ok(false);
    }
    dir.write_stamped(&name, text.as_bytes(), Some(changed))
        .map(|()| true)
}

fn load_kept_user(
    config: &Config,
    user: &str,
) -> Result<Option<(UserFile, PathBuf, Option<i64>)>, StateError> {
    let Some(sub) = users_dir_name(&config.path) else {
        return Ok(None);
    };
    let Some(dir) = StateDir::open(Path::new(STATE_DIR), false)? else {
        return Ok(None);
    };
    let Some(dir) = dir.subdir(&sub, false)? else {
        return Ok(None);
    };
    let Some((kept, text, changed)) = read_kept(&dir, &format!("{user}.toml"))? else {
        return Ok(None);
    };
    let mut file =
        UserFile::parse(&kept, &text, config).map_err(|e| copy_error(&kept, e.to_string()))?;
    file.path = config.user_file_path(user);
    Ok(Some((file, kept, changed)))
}

/// Forgets the kept copy of `user`'s file: at every login of a user without a file, and at
/// `cgroupctl remove` (a new account of the same name must not come back with the old
/// customer's limits). True when there was one. One unlink by path: only root can create
/// anything in the state directory (0700), so no component of the path is anyone else's, and
/// unlink never follows the last one.
pub fn forget_user(config_path: &Path, user: &str) -> Result<bool, StateError> {
    crate::names::validate_user_name(user).map_err(|e| StateError {
        path: PathBuf::from(STATE_DIR),
        reason: e.to_string(),
        errno: None,
    })?;
    let Some(path) = kept_user_path(config_path, user) else {
        return Ok(false);
    };
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StateError {
            path,
            reason: format!("cannot remove: {e}"),
            errno: e.raw_os_error(),
        }),
    }
}

/// Forgets every kept copy of `config_path` (tests, `cgroupctl deinit`), and the kept
/// `[policy]` of 0.2.0 (`last-good-policy@`), which this replaces.
pub fn forget(config_path: &Path) -> Result<(), StateError> {
    let (Some(name), Some(sub), Some(escaped)) = (
        config_name(config_path),
        users_dir_name(config_path),
        escape_path(config_path),
    ) else {
        return Ok(());
    };
    let Some(dir) = StateDir::open(Path::new(STATE_DIR), false)? else {
        return Ok(());
    };
    dir.remove(&name)?;
    dir.remove(&format!("{LAST_GOOD_POLICY_PREFIX}{escaped}"))?;
    if let Some(users) = dir.subdir(&sub, false)? {
        for entry in users.names()? {
            users.remove(&entry)?;
        }
        dir.remove_dir(&sub)?;
    }
    Ok(())
}

/// A change in a file's health, for the log: it broke (or broke differently), or it is
/// good again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChange {
    /// The file's error (and whether a last good copy stands in for it).
    Broken {
        file: PathBuf,
        error: String,
        kept: bool,
    },
    Fixed {
        file: PathBuf,
    },
}

/// What the daemon follows between reloads: whether the config file and each user file parse
/// now (for the `config_broken` metric and one log line per change), keeping each good one
/// once it has settled, as logins do. The global file is read at every look; a user file
/// only when it, or the global file, changed since the last look, or while its good version
/// waits to settle.
#[derive(Debug)]
pub struct Watch {
    path: PathBuf,
    config_error: Option<String>,
    config_stamp: Option<(i64, i64)>,
    users: std::collections::BTreeMap<String, UserSeen>,
}

#[derive(Debug, Clone)]
struct UserSeen {
    stamp: Option<(i64, i64)>,
    error: Option<String>,
    /// Parsed good but not kept yet (not settled): look again.
    pending: bool,
}

impl Watch {
    pub fn new(path: &Path) -> Watch {
        Watch {
            path: path.to_path_buf(),
            config_error: None,
            config_stamp: None,
            users: std::collections::BTreeMap::new(),
        }
    }

    /// Looks at the files again; returns what changed since the last look.
    pub fn refresh(&mut self) -> Vec<HealthChange> {
        let mut changes = Vec::new();
        let stamp = config_changed_at(&self.path);
        let config_changed = stamp != self.config_stamp;
        self.config_stamp = stamp;
        let keep = Keep::as_root(Keep::Settled);
        let (config, error) = match load(&self.path, keep) {
            Ok(loaded) => {
                let error = loaded.broken.map(|b| b.error.to_string());
                (Some(loaded.config), error.map(|e| (e, true)))
            }
            Err(none) => (None, Some((none.error.to_string(), false))),
        };
        note(&mut changes, &self.path, &mut self.config_error, error);
        let Some(config) = config else {
            return changes;
        };
        let names = user_file_names(&config);
        self.users.retain(|name, _| names.contains(name));
        for name in names {
            let stamp = config_changed_at(&config.user_file_path(&name));
            let seen = self.users.get(&name).cloned();
            let fresh = match &seen {
                Some(s) => s.stamp != stamp || s.pending || config_changed,
                None => true,
            };
            if !fresh {
                continue;
            }
            let (error, pending) = match load_user(&config, &name, keep) {
                Ok(l) => match l.broken {
                    Some(b) => (Some((b.error.to_string(), true)), false),
                    None => (
                        None,
                        stamp.is_some_and(|s| keep != Keep::Never && !settled(s)),
                    ),
                },
                Err(e) => (Some((e.to_string(), false)), false),
            };
            let mut previous = seen.and_then(|s| s.error);
            note(
                &mut changes,
                &config.user_file_path(&name),
                &mut previous,
                error,
            );
            self.users.insert(
                name,
                UserSeen {
                    stamp,
                    error: previous,
                    pending,
                },
            );
        }
        changes
    }

    /// The files looked at, each with whether it is broken now: the global file always
    /// (first), user files only while broken.
    pub fn files(&self) -> Vec<(PathBuf, bool)> {
        let mut out = vec![(self.path.clone(), self.config_error.is_some())];
        let users = self
            .path
            .parent()
            .unwrap_or_else(|| Path::new("/"))
            .join("users");
        for (name, seen) in &self.users {
            if seen.error.is_some() {
                out.push((users.join(format!("{name}.toml")), true));
            }
        }
        out
    }
}

/// Records a file's error now against the one seen before, noting a change.
fn note(
    changes: &mut Vec<HealthChange>,
    file: &Path,
    previous: &mut Option<String>,
    now: Option<(String, bool)>,
) {
    match (previous.as_ref(), now) {
        (Some(_), None) => {
            changes.push(HealthChange::Fixed {
                file: file.to_path_buf(),
            });
            *previous = None;
        }
        (before, Some((error, kept))) if before != Some(&error) => {
            changes.push(HealthChange::Broken {
                file: file.to_path_buf(),
                error: error.clone(),
                kept,
            });
            *previous = Some(error);
        }
        _ => {}
    }
}

/// User names of the `*.toml` files in the config's users directory (valid names only).
pub fn user_file_names(config: &Config) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(config.users_dir()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".toml"))
                .map(str::to_string)
        })
        .filter(|n| !n.starts_with('.') && crate::names::validate_user_name(n).is_ok())
        .collect();
    names.sort();
    names
}

/// The change stamp of a file: the latest ctime of the file and, for a symlink, of the link
/// itself. Every edit, chmod, rename-into-place or relink moves it forward, and unlike the
/// mtime nobody can set it (`touch -d`, `cp -p`, `rsync -a` keep an old mtime).
pub fn config_changed_at(path: &Path) -> Option<(i64, i64)> {
    let target = std::fs::metadata(path).ok()?;
    let latest = (target.ctime(), target.ctime_nsec());
    Some(link_changed_at(path).map_or(latest, |l| l.max(latest)))
}

/// The ctime of `path` itself (of the link when it is a symlink).
fn link_changed_at(path: &Path) -> Option<(i64, i64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.ctime(), m.ctime_nsec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_changed_just_now_has_not_settled() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let secs = i64::try_from(now.as_secs()).unwrap();
        assert!(!settled((secs, 0)), "changed this second");
        assert!(!settled((secs + 60, 0)), "changed in the future");
        assert!(settled((secs - 2, 0)));
        assert!(should_keep(Keep::Now, (secs, 0)));
        assert!(!should_keep(Keep::Never, (secs - 10, 0)));
    }

    #[test]
    fn kept_names_are_one_component_per_config() {
        let a = kept_config_path(Path::new("/etc/pam_cgroup/config.toml")).unwrap();
        let b = kept_config_path(Path::new("/tmp/other.toml")).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(Path::new(STATE_DIR)));
        let u = kept_user_path(Path::new("/etc/pam_cgroup/config.toml"), "alice").unwrap();
        assert_eq!(
            u.parent().and_then(Path::parent),
            Some(Path::new(STATE_DIR))
        );
    }
}
