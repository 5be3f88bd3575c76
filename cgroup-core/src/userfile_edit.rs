//! Editing a per-user file (`users/<user>.toml`) for `cgroupctl set`: comment-preserving
//! (toml_edit), validated as a whole against the global config before it replaces the old file
//! (never write a file the PAM module would refuse), and atomic (a temporary file in the same
//! directory, fsync, rename, fsync of the directory): a login reading it concurrently sees the
//! old file or the new one, never half of one. Concurrent `set`s of the same directory are
//! serialized with flock on a root-only lock file (`users/.lock`, 0600), so no edit is lost
//! and no customer can open, let alone hold, the lock; the wait for it is bounded.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::Flock;
use toml_edit::{Array, DocumentMut, Item, Value};

use crate::config::{
    read_secure, Config, ConfigError, Follow, Suspension, UserFile, SUSPEND_TABLE,
};
use crate::error::{Error, IoContext, Result};
use crate::limits::{parse_limit, LimitKey, RawValue, SESSIONS_MAX_KEY};
use crate::names::validate_user_name;
use crate::root_lock::{self, LockFailed};

/// A user file is the admin's business: it holds one customer's limits and, when suspended, the
/// reason. Other customers must not read it ("no view of the others"); the module reads it as
/// root, and a customer sees its own limits in its own cgroup files.
pub const USER_FILE_MODE: u32 = 0o600;

/// One change to a user file.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Set a limit key (validated with `parse_limit` first).
    Limit { key: String, value: RawValue },
    /// Remove a limit key: the profile's or the default value applies again.
    Unset { key: String },
    /// Set (`Some`) or remove (`None`) `profile = "NAME"`.
    Profile(Option<String>),
    /// Set (`Some`) or remove (`None`) the `[suspend]` table (`cgroupctl suspend/resume`).
    Suspend(Option<Suspension>),
}

/// Parses `KEY=VALUE` from the command line. A value of digits is an integer, anything else
/// a string; an empty value means "unset". Repeated keys (io.max per device) become a list.
pub fn parse_assignments(args: &[String]) -> Result<Vec<Edit>> {
    let mut edits: Vec<Edit> = Vec::new();
    for arg in args {
        let (key, value) = arg.split_once('=').ok_or_else(|| Error::InvalidLimit {
            key: arg.clone(),
            reason: "expected KEY=VALUE (an empty VALUE removes the key)".to_string(),
        })?;
        let key = key.trim().to_string();
        let value = value.trim();
        if value.is_empty() {
            edits.retain(|e| !matches!(e, Edit::Limit { key: k, .. } if *k == key));
            edits.push(Edit::Unset { key });
            continue;
        }
        let raw = match value.parse::<i64>() {
            Ok(i) if value.bytes().all(|b| b.is_ascii_digit()) => RawValue::Integer(i),
            _ => RawValue::Text(value.to_string()),
        };
        let existing = edits.iter_mut().find_map(|e| match e {
            Edit::Limit { key: k, value } if *k == key => Some(value),
            _ => None,
        });
        match existing {
            Some(old) => {
                let mut items = match old {
                    RawValue::List(items) => items.clone(),
                    RawValue::Integer(i) => vec![i.to_string()],
                    RawValue::Text(t) => vec![t.clone()],
                };
                items.push(value.to_string());
                *old = RawValue::List(items);
            }
            None => {
                edits.retain(|e| !matches!(e, Edit::Unset { key: k } if *k == key));
                edits.push(Edit::Limit { key, value: raw });
            }
        }
    }
    for edit in &edits {
        match edit {
            Edit::Limit { key, value } if key == SESSIONS_MAX_KEY => {
                crate::limits::sessions::parse(value).map_err(|reason| Error::InvalidLimit {
                    key: key.clone(),
                    reason,
                })?;
            }
            Edit::Limit { key, value } => {
                parse_limit(key, value).map_err(|e| Error::InvalidLimit {
                    key: e.key,
                    reason: e.reason,
                })?;
            }
            Edit::Unset { key } => {
                if LimitKey::from_file_name(key).is_none() && key != SESSIONS_MAX_KEY {
                    return Err(Error::InvalidLimit {
                        key: key.clone(),
                        reason: format!(
                            "unknown limit key (known: {}, {SESSIONS_MAX_KEY})",
                            LimitKey::known_names()
                        ),
                    });
                }
            }
            Edit::Profile(_) | Edit::Suspend(_) => {}
        }
    }
    Ok(edits)
}

fn toml_value(value: &RawValue) -> Value {
    match value {
        RawValue::Integer(i) => Value::from(*i),
        RawValue::Text(s) => Value::from(s.as_str()),
        RawValue::List(items) => {
            let mut array = Array::new();
            for item in items {
                array.push(item.as_str());
            }
            Value::Array(array)
        }
    }
}

/// Sets `key`, keeping the comments around an existing value (`"pids.max" = 50 # burst`).
fn set_value(doc: &mut DocumentMut, key: &str, mut value: Value) {
    if let Some(old) = doc.get(key).and_then(Item::as_value) {
        *value.decor_mut() = old.decor().clone();
    }
    doc[key] = Item::Value(value);
}

/// Removes `key`. Comment lines above it move to the next key (or the end of the file): they
/// may be the file's header or notes about the plan, not about this key only.
fn remove_key(doc: &mut DocumentMut, key: &str) {
    let keys: Vec<String> = doc.as_table().iter().map(|(k, _)| k.to_string()).collect();
    let Some(index) = keys.iter().position(|k| k == key) else {
        return;
    };
    let comments = doc
        .as_table()
        .key(key)
        .and_then(|k| k.leaf_decor().prefix())
        .and_then(|p| p.as_str())
        .filter(|p| p.contains('#'))
        .map(str::to_string);
    doc.remove(key);
    let Some(comments) = comments else { return };
    let next = keys.get(index + 1).cloned();
    let table = doc.as_table_mut();
    match next.as_deref().and_then(|n| table.key_mut(n)) {
        Some(mut k) => {
            let rest = k
                .leaf_decor()
                .prefix()
                .and_then(|p| p.as_str())
                .unwrap_or("")
                .to_string();
            k.leaf_decor_mut().set_prefix(format!("{comments}{rest}"));
        }
        None => {
            let trailing = doc.trailing().as_str().unwrap_or("").to_string();
            doc.set_trailing(format!("{comments}{trailing}"));
        }
    }
}

/// Applies edits to a user file's text, keeping its comments and layout.
pub fn edit_text(
    path: &Path,
    old: &str,
    edits: &[Edit],
) -> std::result::Result<String, ConfigError> {
    let mut doc: DocumentMut = old.parse().map_err(|e: toml_edit::TomlError| {
        ConfigError::file(path, e.to_string().replace('\n', " "))
    })?;
    for edit in edits {
        match edit {
            Edit::Limit { key, value } => set_value(&mut doc, key, toml_value(value)),
            Edit::Unset { key } => remove_key(&mut doc, key),
            Edit::Profile(Some(name)) => set_value(&mut doc, "profile", Value::from(name.as_str())),
            Edit::Profile(None) => remove_key(&mut doc, "profile"),
            Edit::Suspend(Some(s)) => {
                let mut table = toml_edit::Table::new();
                table.decor_mut().set_prefix(
                    "\n# Suspended by `cgroupctl suspend`: every login is refused with the reason;\n\
                     # `cgroupctl resume` removes this table.\n",
                );
                table["reason"] = toml_edit::value(s.reason.as_str());
                if let Some(since) = &s.since {
                    table["since"] = toml_edit::value(since.as_str());
                }
                doc[SUSPEND_TABLE] = Item::Table(table);
            }
            Edit::Suspend(None) => {
                doc.remove(SUSPEND_TABLE);
            }
        }
    }
    Ok(doc.to_string())
}

/// What `update_user_file` did.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFileUpdate {
    pub path: PathBuf,
    pub old_text: Option<String>,
    pub new_text: String,
    pub file: UserFile,
}

/// Edits `users/<user>.toml` next to the config: validated, atomic, serialized.
pub fn update_user_file(config: &Config, user: &str, edits: &[Edit]) -> Result<UserFileUpdate> {
    validate_user_name(user)?;
    if let Some(Edit::Profile(Some(name))) =
        edits.iter().find(|e| matches!(e, Edit::Profile(Some(_))))
    {
        if !config.profiles.contains_key(name) {
            return Err(Error::Config(ConfigError::file(
                &config.path,
                format!("no profile named {name:?} ([profiles.{name}] is missing)"),
            )));
        }
    }
    let dir = config.users_dir();
    match std::fs::DirBuilder::new().mode(0o755).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).ctx("mkdir", &dir),
    }
    let _lock = lock_user_files(&dir, LOCK_WAIT)?;
    let path = config.user_file_path(user);
    let old_text = read_secure(&path, Follow::NoSymlinks, true)?;
    let new_text = edit_text(&path, old_text.as_deref().unwrap_or(""), edits)?;
    let file = UserFile::parse(&path, &new_text, config)?;
    write_atomic(&path, &new_text)?;
    Ok(UserFileUpdate {
        path,
        old_text,
        new_text,
        file,
    })
}

/// Removes `users/<user>.toml` (`cgroupctl remove`), under the same lock as `set`, and
/// makes the removal durable. Returns whether there was one.
pub fn remove_user_file(config: &Config, user: &str) -> Result<bool> {
    validate_user_name(user)?;
    let dir = config.users_dir();
    if !dir.is_dir() {
        return Ok(false);
    }
    let _lock = lock_user_files(&dir, LOCK_WAIT)?;
    let path = config.user_file_path(user);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).ctx("remove", &path),
    }
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync", &dir)?;
    Ok(true)
}

/// How long `set` waits for another `set` of the same directory.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Name of the lock file in the users directory (a dotfile: never read as a user file).
pub const LOCK_FILE: &str = ".lock";

/// Takes the exclusive lock of the user files of `dir`: `dir/.lock`, created root-owned 0600
/// without following a symlink. Gives up after `wait` with an error naming the file.
pub fn lock_user_files(dir: &Path, wait: std::time::Duration) -> Result<Flock<File>> {
    let path = dir.join(LOCK_FILE);
    let file = root_lock::open_root_only(&path)?;
    root_lock::lock(file, wait).map_err(|failed| match failed {
        LockFailed::StillHeld => Error::LockHeld {
            path: path.clone(),
            holder: "`cgroupctl set`",
            waited: wait,
        },
        LockFailed::Flock(errno) => Error::io("flock", path.clone(), errno),
    })
}

/// Replaces `path` with `text`: root-owned 0644 temporary file in the same directory, fsync,
/// rename over the old file, fsync of the directory (so the rename survives a crash).
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    // A leftover of a crashed run of this same pid would make create_new fail: clear it.
    let _ = std::fs::remove_file(&tmp);
    let result = (|| -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(USER_FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .ctx("create", &tmp)?;
        // The umask may have narrowed the mode; set it on the open file (not a copy).
        f.set_permissions(std::fs::Permissions::from_mode(USER_FILE_MODE))
            .ctx("chmod", &tmp)?;
        // Root-owned like the rest of the config; a non-root run (unit tests) cannot chown,
        // and the loader would refuse its file anyway.
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::fchown(&f, Some(0), Some(0)).ctx("chown", &tmp)?;
        }
        f.write_all(text.as_bytes()).ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
        std::fs::rename(&tmp, path).ctx("rename", path)?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .ctx("fsync", dir)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn assignments_are_typed_and_validated() {
        let e = parse_assignments(&args(&["pids.max=100", "memory.max=1G"])).unwrap();
        assert_eq!(
            e[0],
            Edit::Limit {
                key: "pids.max".into(),
                value: RawValue::Integer(100)
            }
        );
        assert_eq!(
            e[1],
            Edit::Limit {
                key: "memory.max".into(),
                value: RawValue::Text("1G".into())
            }
        );
        assert!(parse_assignments(&args(&["memory.max=1X"])).is_err());
        assert!(parse_assignments(&args(&["nope=1"])).is_err());
        assert!(parse_assignments(&args(&["memory.max"])).is_err());
        assert!(parse_assignments(&args(&["nope="])).is_err());
        assert_eq!(
            parse_assignments(&args(&["memory.max="])).unwrap(),
            vec![Edit::Unset {
                key: "memory.max".into()
            }]
        );
    }

    #[test]
    fn repeated_key_becomes_a_list() {
        let e = parse_assignments(&args(&["io.weight=8:0 200", "io.weight=8:16 300"])).unwrap();
        assert_eq!(
            e,
            vec![Edit::Limit {
                key: "io.weight".into(),
                value: RawValue::List(vec!["8:0 200".into(), "8:16 300".into()])
            }]
        );
    }

    #[test]
    fn comments_survive_edits() {
        let old = "# plan agreed 2024-05\nprofile = \"pro\"\n\"pids.max\" = 50 # burst\n";
        let new = edit_text(
            Path::new("/x.toml"),
            old,
            &[
                Edit::Limit {
                    key: "memory.max".into(),
                    value: RawValue::Text("2G".into()),
                },
                Edit::Limit {
                    key: "pids.max".into(),
                    value: RawValue::Integer(70),
                },
                Edit::Profile(None),
            ],
        )
        .unwrap();
        assert!(new.contains("# plan agreed 2024-05"), "{new}");
        assert!(new.contains("\"memory.max\" = \"2G\""), "{new}");
        assert!(new.contains("\"pids.max\" = 70 # burst"), "{new}");
        assert!(!new.contains("profile"), "{new}");
    }

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u.toml");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, USER_FILE_MODE);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn suspend_and_resume_edit_the_table_and_keep_the_rest() {
        let old = "# plan\n\"pids.max\" = 50\n";
        let suspended = edit_text(
            Path::new("/x.toml"),
            old,
            &[Edit::Suspend(Some(Suspension {
                reason: "unpaid \"invoice\"".into(),
                since: Some("2026-12-01T00:00:00Z".into()),
            }))],
        )
        .unwrap();
        let config = Config::parse(Path::new("/c.toml"), "").unwrap();
        let file = UserFile::parse(Path::new("/x.toml"), &suspended, &config).unwrap();
        assert_eq!(file.suspend.unwrap().reason, "unpaid \"invoice\"");
        // A later `set` still puts its key where the parser reads it (not in [suspend]).
        let more = edit_text(
            Path::new("/x.toml"),
            &suspended,
            &[Edit::Limit {
                key: "memory.max".into(),
                value: RawValue::Text("1G".into()),
            }],
        )
        .unwrap();
        let file = UserFile::parse(Path::new("/x.toml"), &more, &config).unwrap();
        assert!(file.limits.contains_key(&LimitKey::MemoryMax), "{more}");
        let resumed = edit_text(Path::new("/x.toml"), &more, &[Edit::Suspend(None)]).unwrap();
        assert!(!resumed.contains("suspend"), "{resumed}");
        assert!(resumed.contains("# plan"), "{resumed}");
        assert!(parse_assignments(&args(&["sessions.max=3"])).is_ok());
        assert!(parse_assignments(&args(&["sessions.max=0"])).is_err());
        assert!(parse_assignments(&args(&["sessions.max="])).is_ok());
    }
}
