//! Reading config files the way sshd's StrictModes does: a file that someone other than root
//! could have written is refused, because it decides the limits (and the exemptions) of every
//! login.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::ConfigError;

/// Larger files are refused: no sane config is this big, and a login must not read 10 MB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// The global config may be a symlink (config management often installs one); the file it
    /// resolves to is checked.
    Symlinks,
    /// Per-user files are never followed through a symlink: one could point out of the config
    /// directory.
    NoSymlinks,
}

/// Reads a root-owned, not group/world-writable file in a directory with the same properties.
/// `Ok(None)` when the file does not exist (only when `missing_ok`).
pub fn read_secure(
    path: &Path,
    follow: Follow,
    missing_ok: bool,
) -> Result<Option<String>, ConfigError> {
    Ok(read_secure_stamped(path, follow, missing_ok)?.map(|(text, _)| text))
}

/// A file's ctime: seconds and nanoseconds since the epoch.
pub type ChangeStamp = (i64, i64);

/// `read_secure`, with the file's ctime as the descriptor's fstat gave it before the read:
/// what was read is never older than that stamp.
pub fn read_secure_stamped(
    path: &Path,
    follow: Follow,
    missing_ok: bool,
) -> Result<Option<(String, ChangeStamp)>, ConfigError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    let mut flags = libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
    if follow == Follow::NoSymlinks {
        flags |= libc::O_NOFOLLOW;
    }
    options.custom_flags(flags);
    let mut file =
        match options.open(path) {
            Ok(f) => f,
            Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(ConfigError::file(
                path,
                "is a symbolic link; per-user files must be regular files in the config directory",
            )),
            Err(e) => return Err(ConfigError::file(path, format!("cannot open: {e}"))),
        };
    let meta = check_file(path, &file)?;
    // A bare file name ("config.toml") has an empty parent: that is the current directory.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    check_dir(dir)?;
    // Sized from the fstat: one read(2) takes the file (plus the one that sees its end).
    let mut text =
        String::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    (&mut file)
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| ConfigError::file(path, format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::file(path, "is larger than 1 MiB"));
    }
    Ok(Some((text, (meta.ctime(), meta.ctime_nsec()))))
}

/// Checks the opened file; returns its metadata.
fn check_file(path: &Path, file: &File) -> Result<std::fs::Metadata, ConfigError> {
    let meta = file
        .metadata()
        .map_err(|e| ConfigError::file(path, format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(ConfigError::file(path, "is not a regular file"));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::file(path, "is larger than 1 MiB"));
    }
    check_owner_mode(path, meta.uid(), meta.mode(), "file")?;
    Ok(meta)
}

fn check_dir(dir: &Path) -> Result<(), ConfigError> {
    let meta =
        std::fs::metadata(dir).map_err(|e| ConfigError::file(dir, format!("cannot stat: {e}")))?;
    check_owner_mode(dir, meta.uid(), meta.mode(), "directory")
}

fn check_owner_mode(path: &Path, uid: u32, mode: u32, what: &str) -> Result<(), ConfigError> {
    if uid != 0 {
        return Err(ConfigError::file(
            path,
            format!(
                "{what} is owned by uid {uid}, not root: refused (chown root {})",
                path.display()
            ),
        ));
    }
    if mode & 0o022 != 0 {
        // A sticky, world-writable directory (/tmp) still lets anyone replace a file they
        // own, not one of root's; but a config directory has no reason to be one. Refuse.
        return Err(ConfigError::file(
            path,
            format!(
                "{what} is writable by group or others (mode {:o}): refused (chmod go-w {})",
                mode & 0o7777,
                path.display()
            ),
        ));
    }
    Ok(())
}
