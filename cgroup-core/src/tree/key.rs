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
