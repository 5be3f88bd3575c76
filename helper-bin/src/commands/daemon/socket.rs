//! The daemon's unix sockets (the metrics socket and the customers' `me` socket): bound over
//! a stale one, never over anything else or a live one, and removed when the daemon stops.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::log;

/// Listens on the unix socket `path` with `mode`, non-blocking: a stale socket there is
/// replaced, a live one (another daemon) or anything that is not a socket refused. Shared by
/// the metrics socket and the customers' `me` socket.
pub fn bind_unix_socket(path: &Path, mode: u32) -> Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket: refusing to replace it",
                path.display()
            );
        }
        if UnixStream::connect(path).is_ok() {
            bail!(
                "{} is in use by another process (a running daemon?)",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

pub fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        log::warn(&format!("remove {}: {e}", path.display()));
    }
}
