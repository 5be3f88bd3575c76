//! The "applied" stamp: a `trusted.` extended attribute on a user cgroup recording a
//! fingerprint of what was last applied to it (ownership, subtree caps, limits). When a login
//! finds the same fingerprint, it skips re-enabling controllers, re-securing and rewriting
//! every limit file. A `trusted.` attribute needs CAP_SYS_ADMIN to write, and the user cgroup
//! is root's: the user can forge neither. It is read and written through the user cgroup's
//! descriptor (`user_cgroup::UserCgroup`); every path that writes limits or caps rewrites it.

pub use super::user_cgroup::STAMP_XATTR;

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
