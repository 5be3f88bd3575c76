//! The config parser and resolver: any text, as a global file and as a user file. Never a
//! panic; every error has a place inside the text; a valid config resolves for any groups.
#![no_main]

use std::path::Path;

use cgroup_core::config::{Config, Policy, UserFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first NUL splits a global file from a user file.
    let (global, user) = text.split_once('\0').unwrap_or((text, ""));
    let path = Path::new("/etc/pam_cgroup/config.toml");
    let _ = Policy::fallback(Some(global), None);
    match Config::parse(path, global) {
        Ok(config) => {
            let user_path = Path::new("/etc/pam_cgroup/users/u.toml");
            let user_file = match UserFile::parse(user_path, user, &config) {
                Ok(f) => Some(f),
                Err(e) => {
                    check_place(&e, user);
                    None
                }
            };
            let groups: Vec<String> = config.groups.iter().map(|(g, _)| g.clone()).collect();
            let resolved = config.effective_limits(&groups, user_file.as_ref());
            for r in resolved.limits.values() {
                assert!(!r.limit.lines.is_empty());
                for line in &r.limit.lines {
                    assert!(
                        !line.contains('\n'),
                        "a limit line with a newline: {line:?}"
                    );
                }
            }
        }
        Err(e) => check_place(&e, global),
    }
});

fn check_place(e: &cgroup_core::config::ConfigError, text: &str) {
    let shown = e.to_string();
    assert!(!shown.is_empty());
    if let Some(line) = e.line {
        assert!(
            line >= 1 && line <= text.lines().count().max(1) + 1,
            "line {line} outside the text"
        );
    }
}
