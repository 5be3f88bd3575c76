//! Name validation: whatever passes is one safe path component.
#![no_main]

use cgroup_core::names::{validate_service_name, validate_user_name, MAX_NAME_LEN};
use libfuzzer_sys::fuzz_target;

fn check(name: &str) {
    assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN);
    assert!(name != "." && name != "..");
    assert!(!name.starts_with('.') && !name.starts_with('-'));
    assert!(name.bytes().all(|b| b.is_ascii_graphic()), "{name:?}");
    assert!(!name.contains('/') && !name.contains('\\'));
    let joined = std::path::Path::new("/root/users").join(name);
    assert_eq!(joined.parent(), Some(std::path::Path::new("/root/users")));
}

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if validate_user_name(name).is_ok() {
        check(name);
    }
    if validate_service_name(name).is_ok() {
        check(name);
        assert!(!name.contains('$'));
    }
});
