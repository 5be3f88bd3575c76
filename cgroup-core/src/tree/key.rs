//! The tree key's file: `/var/lib/pam_cgroup/tree-key`, root:root 0600 in the root-only state
//! directory (`crate::state_dir`: no symlink followed, owner and mode checked).
//!
//! Made on first need by whoever needs it first (`cgroupctl init`, a login, the daemon):
//! written whole and linked into place, so concurrent creators agree on one key (a loser reads
//! the winner's). Read once per process: a login pays one small file read. A file that exists
//! but cannot be read or parsed is a fault and is never replaced: a new key would rename every
//! user cgroup and hide the live ones from the levers.

use std::path::Path;
use std::sync::OnceLock;

use super::tag::TreeKey;
use crate::error::StateError;
use crate::paths::{STATE_DIR, TREE_KEY_FILE};
use crate::state_dir::StateDir;

static KEY: OnceLock<TreeKey> = OnceLock::new();

/// This host's tree key, made if there is none yet.
pub fn current() -> Result<TreeKey, StateError> {
    if let Some(key) = KEY.get() {
        return Ok(*key);
    }
    let key = load_or_create(Path::new(STATE_DIR))?;
    // A racing thread may have set it first: both read the same file.
    Ok(*KEY.get_or_init(|| key))
}

/// The key as a login of this boot kept it on the tree root `tree_root`: a `trusted.`
/// attribute (only CAP_SYS_ADMIN writes one) on root's directory, holding the key and the
/// identity of the file it was read from (device, inode, size, mtime and ctime to the
/// nanosecond). One stat of the file and one getxattr instead of opening and checking the
/// state directory and the file at every login (libpam loads the module anew each time).
/// The file decides: a stamp that differs in anything (the file replaced, rewritten,
/// restored from a backup, its owner or mode changed) or a value that does not parse means
/// the file is read the hardened way (`current`) and the attribute written again.
pub const KEY_XATTR: &str = "trusted.pam_cgroup.tree-key";

/// `current`, through the tree root's `KEY_XATTR` when its stamp matches the file's.
pub fn current_at(tree_root: &Path) -> Result<TreeKey, StateError> {
    if let Some(key) = KEY.get() {
        return Ok(*key);
    }
    let file = Path::new(STATE_DIR).join(TREE_KEY_FILE);
    // Taken before the hardened read: a file changed in between gets a stamp older than
    // the key kept with it, and the next login reads the file again.
    let before = file_stamp(&file);
    if let Some(stamp) = &before {
        if let Some(key) = read_attr(tree_root).and_then(|v| parse_attr(&v, stamp)) {
            return Ok(*KEY.get_or_init(|| key));
        }
    }
    let key = current()?;
    // Only a key read from a file that was there before the read is kept: one made just now
    // is kept by the next login, which stamps it before reading it.
    if let Some(stamp) = before {
        // Without it the next login reads the file again: nothing depends on it.
        write_attr(tree_root, &format!("{stamp} {}", key.render()));
    }
    Ok(key)
}

/// The key file's identity, when it is a regular file of root's that only root can read;
/// anything else goes the hardened way, which says what is wrong.
fn file_stamp(file: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(file).ok()?;
    (m.is_file() && m.uid() == 0 && m.mode() & 0o077 == 0).then(|| {
        format!(
            "{}:{}:{}:{}.{}:{}.{}:{:o}",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.mode()
        )
    })
}

fn parse_attr(value: &str, stamp: &str) -> Option<TreeKey> {
    let (kept_stamp, key) = value.trim_end().split_once(' ')?;
    (kept_stamp == stamp)
        .then(|| TreeKey::parse(key.as_bytes()))
        .flatten()
}

fn read_attr(dir: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let name = std::ffi::CString::new(KEY_XATTR).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: path and name are NUL-terminated; buf is valid for buf.len() bytes.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    super::dirfd::xattr_text(buf, n)
}

fn write_attr(dir: &Path, value: &str) {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(path), Ok(name)) = (
        std::ffi::CString::new(dir.as_os_str().as_bytes()),
        std::ffi::CString::new(KEY_XATTR),
    ) else {
        return;
    };
    // SAFETY: path and name are NUL-terminated; value is valid for value.len() bytes.
    unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        );
    }
}

/// The key kept in the state directory `dir`, made if there is none yet.
pub fn load_or_create(dir: &Path) -> Result<TreeKey, StateError> {
    let vanished = || StateError {
        path: dir.join(TREE_KEY_FILE),
        reason: "vanished while being created".into(),
        errno: None,
    };
    let state = StateDir::open(dir, true)?.ok_or_else(vanished)?;
    if let Some(bytes) = state.read(TREE_KEY_FILE)? {
        return parse(dir, &bytes);
    }
    let fresh = TreeKey::generate().map_err(|e| StateError {
        path: dir.join(TREE_KEY_FILE),
        reason: format!("cannot draw a random key: {e}"),
        errno: e.raw_os_error(),
    })?;
    if state.create_new(TREE_KEY_FILE, fresh.render().as_bytes())? {
        return Ok(fresh);
    }
    // Another creator won: its key is the one.
    let bytes = state.read(TREE_KEY_FILE)?.ok_or_else(vanished)?;
    parse(dir, &bytes)
}

fn parse(dir: &Path, bytes: &[u8]) -> Result<TreeKey, StateError> {
    TreeKey::parse(bytes).ok_or_else(|| StateError {
        path: dir.join(TREE_KEY_FILE),
        reason: "is not a tree key (32 lowercase hex digits); it names every user cgroup, \
                 so it is not replaced: restore it from a backup, or remove it once no user \
                 cgroup is left"
            .into(),
        errno: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_key_is_used_only_with_the_file_stamp_it_was_kept_with() {
        let key = TreeKey::parse(b"00112233445566778899aabbccddeeff\n").unwrap();
        let value = format!("1:2:33:4.5:6.7:100600 {}", key.render());
        assert_eq!(parse_attr(&value, "1:2:33:4.5:6.7:100600"), Some(key));
        // Another inode, a rewrite (ctime), another mode: the file is read again.
        assert_eq!(parse_attr(&value, "1:3:33:4.5:6.7:100600"), None);
        assert_eq!(parse_attr(&value, "1:2:33:4.5:6.8:100600"), None);
        assert_eq!(parse_attr(&value, "1:2:33:4.5:6.7:100644"), None);
        assert_eq!(
            parse_attr("1:2:33:4.5:6.7:100600 garbage", "1:2:33:4.5:6.7:100600"),
            None
        );
        assert_eq!(parse_attr("", ""), None);
    }

    #[test]
    fn the_stamp_is_only_for_a_root_only_regular_file() {
        if !nix::unistd::geteuid().is_root() {
            return; // the file must be root's
        }
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let file = base.path().join(TREE_KEY_FILE);
        std::fs::write(&file, "00112233445566778899aabbccddeeff\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let first = file_stamp(&file).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            file_stamp(&file),
            None,
            "readable by others: the hardened read says so"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Back to the same mode, size and mtime: the ctime tells.
        let again = file_stamp(&file).unwrap();
        assert_ne!(first, again);
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(file_stamp(&link), None);
    }

    #[test]
    fn made_once_then_read_back_and_damage_is_a_fault() {
        if !nix::unistd::geteuid().is_root() {
            return; // the state directory's checks want root-owned files
        }
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || load_or_create(&dir).unwrap())
            })
            .collect();
        let keys: Vec<TreeKey> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(
            keys.iter().all(|k| *k == keys[0]),
            "concurrent creators agree"
        );
        assert_eq!(load_or_create(&dir).unwrap(), keys[0]);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        std::fs::write(dir.join(TREE_KEY_FILE), "garbage\n").unwrap();
        assert!(load_or_create(&dir).is_err());
        assert_eq!(
            std::fs::read(dir.join(TREE_KEY_FILE)).unwrap(),
            b"garbage\n"
        );
    }
}
