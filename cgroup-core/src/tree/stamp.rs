//! The "applied" stamp: a `trusted.` extended attribute on a user cgroup recording a
//! fingerprint of what was last applied to it (delegation owner, subtree caps, limits). When a
//! login finds the same fingerprint, it skips re-enabling controllers, re-delegating and
//! rewriting every limit file: two syscalls instead of a dozen. A `trusted.` attribute needs
//! CAP_SYS_ADMIN to write, so the delegated user cannot forge it.
//!
//! libc's getxattr/setxattr are called directly: nix has no xattr API, and the xattr crate
//! would add a dependency to the module for two calls.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub const STAMP_XATTR: &str = "trusted.pam_cgroup.applied";

/// FNV-1a, 64 bits: stable across builds and Rust versions (std's hashers promise neither),
/// and enough to tell "same as last time" apart from "changed".
pub fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn c_path(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_bytes()).ok()
}

/// Reads the stamp; `None` when absent or unreadable (then everything is applied again).
pub fn read(dir: &Path) -> Option<String> {
    let path = c_path(dir)?;
    let name = CString::new(STAMP_XATTR).ok()?;
    let mut buf = [0u8; 256];
    // SAFETY: path and name are NUL-terminated; buf is valid for buf.len() bytes.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    String::from_utf8(buf.get(..n)?.to_vec()).ok()
}

/// Writes the stamp. A failure only costs the next login the full path, so it is not an error.
pub fn write(dir: &Path, value: &str) -> bool {
    let (Some(path), Ok(name)) = (c_path(dir), CString::new(STAMP_XATTR)) else {
        return false;
    };
    // SAFETY: path and name are NUL-terminated; value is valid for value.len() bytes.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_sensitive() {
        assert_eq!(fingerprint(""), "cbf29ce484222325");
        assert_eq!(fingerprint("a"), "af63dc4c8601ec8c");
        assert_ne!(fingerprint("pids.max=1"), fingerprint("pids.max=2"));
    }
}
