//! "Reported once": a condition that holds for every login (a controller the kernel lacks)
//! is logged when it is first seen or when it changes, not at every login. The memory is a
//! small root-only file under /run, so it resets at boot.

use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::paths::RUN_DIR;

/// Returns true when `text` differs from what was last recorded under `name` (so the caller
/// should log it), and records it. Any failure to keep the record answers true: better a
/// repeated line than a silent one.
pub fn should_report(name: &str, text: &str) -> bool {
    should_report_in(Path::new(RUN_DIR), name, text)
}

pub fn should_report_in(dir: &Path, name: &str, text: &str) -> bool {
    let path: PathBuf = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(old) if old == text => return false,
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(_) => return true,
    }
    let _ = std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir);
    // Write to a private temporary name, then rename: concurrent logins never see half a file.
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_first_and_changed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(should_report_in(dir.path(), "x", "a"));
        assert!(!should_report_in(dir.path(), "x", "a"));
        assert!(should_report_in(dir.path(), "x", "b"));
        assert!(!should_report_in(dir.path(), "x", "b"));
    }
}
