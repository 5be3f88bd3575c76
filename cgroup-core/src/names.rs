//! Validation of every name that becomes a path component under the tree root.
//!
//! A name is accepted only if it is a single, ordinary path component made of a conservative
//! character set. This is stricter than what NSS or the kernel allow, on purpose: a name that
//! passes can never climb out of the tree (`..`), split into two components (`/`), collide with
//! cgroupfs' own files (`cgroup.*`, `memory.*`: anything with a controller prefix and a dot is
//! refused by refusing names that start with a known file prefix), or smuggle control characters
//! into logs.

use crate::error::{Error, Result};

/// Longest name accepted. Linux user names are at most 32 characters (useradd), and
/// LOGIN_NAME_MAX is 256; we keep a margin under NAME_MAX (255).
pub const MAX_NAME_LEN: usize = 64;

/// Prefixes of cgroupfs' own interface files: a cgroup directory with such a name would be
/// refused by the kernel or, worse, shadow nothing but confuse administrators.
const RESERVED_PREFIXES: &[&str] = &[
    "cgroup.", "cpu.", "cpuset.", "memory.", "io.", "pids.", "rdma.", "hugetlb.", "misc.",
];

/// Checks a user name before it becomes `users/<name>`.
/// Allowed: ASCII letters, digits, `_`, `-`, `.` and a trailing `$` (Samba machine accounts);
/// must start with a letter, digit or `_`.
pub fn validate_user_name(name: &str) -> Result<()> {
    validate_component("user name", name, true)
}

/// Checks a service name (`users/<u>/<service>`) or any other component we create.
pub fn validate_service_name(name: &str) -> Result<()> {
    validate_component("service name", name, false)
}

fn validate_component(what: &'static str, name: &str, allow_dollar: bool) -> Result<()> {
    let bad = |reason: &'static str| Error::InvalidName {
        what,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("longer than 64 bytes"));
    }
    if name == "." || name == ".." {
        return Err(bad("is a relative path component"));
    }
    let bytes = name.as_bytes();
    let first = bytes[0];
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return Err(bad("must start with a letter, digit or '_'"));
    }
    let last_index = bytes.len() - 1;
    for (i, &b) in bytes.iter().enumerate() {
        let ok = b.is_ascii_alphanumeric()
            || b == b'_'
            || b == b'-'
            || b == b'.'
            || (allow_dollar && b == b'$' && i == last_index);
        if !ok {
            return Err(bad(
                "may contain only ASCII letters, digits, '_', '-', '.' (and a final '$' for users)",
            ));
        }
    }
    if RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Err(bad("collides with a cgroupfs interface file prefix"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for name in [
            "alice", "bob_2", "web-01", "_svc", "a.b", "host$", "0user", "x",
        ] {
            assert!(validate_user_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        let long = "a".repeat(300);
        let just_over = "a".repeat(MAX_NAME_LEN + 1);
        let hostile: Vec<&str> = vec![
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "/",
            "/root",
            "a/../../b",
            "a\0b",
            "\0",
            "a\nb",
            "a\r",
            "a\tb",
            " alice",
            "alice ",
            "al ice",
            "-rf",
            ".hidden",
            "$",
            "a$b",
            "al\u{0456}ce",  // Cyrillic i look-alike
            "\u{0430}lice",  // Cyrillic a
            "alice\u{200b}", // zero-width space
            "ａlice",        // fullwidth a
            "alice\u{202e}", // right-to-left override
            "caf\u{e9}",     // é
            "a*b",
            "a?b",
            "a;b",
            "a|b",
            "$(id)",
            "`id`",
            "a\\b",
            "cgroup.procs",
            "memory.max",
            "pids.max",
            "cpu.weight",
            "a:b",
            "a%2fb",
            "~root",
            &long,
            &just_over,
        ];
        assert!(hostile.len() >= 30);
        for name in hostile {
            assert!(validate_user_name(name).is_err(), "accepted {name:?}");
            assert!(validate_service_name(name).is_err(), "accepted {name:?}");
        }
    }

    #[test]
    fn dollar_only_for_users_and_only_last() {
        assert!(validate_user_name("machine$").is_ok());
        assert!(validate_service_name("machine$").is_err());
    }

    #[test]
    fn error_names_the_reason() {
        let err = validate_user_name("a/b").unwrap_err().to_string();
        assert!(err.contains("user name"), "{err}");
        assert!(err.contains("a/b"), "{err}");
    }
}
