//! The "applied" stamp: a `trusted.` extended attribute on a user cgroup recording a
//! fingerprint of what was last applied to it (ownership, subtree caps, limits). When a login
//! finds the same fingerprint, it skips re-enabling controllers, re-securing and rewriting
//! every limit file. A `trusted.` attribute needs CAP_SYS_ADMIN to write, and the user cgroup
//! is root's: the user can forge neither. It is read and written through the user cgroup's
//! descriptor (`user_cgroup::UserCgroup`); every path that writes limits or caps rewrites it.

use crate::limits::LimitKey;

/// The extended attribute recording what was last applied to a user cgroup. `trusted.` needs
/// CAP_SYS_ADMIN to write, and the directory is root's: the user can forge neither.
pub const STAMP_XATTR: &str = "trusted.pam_cgroup.applied";

/// The stamp's value: `<fingerprint> skipped=<file>,<file>`, the fingerprint of what was
/// applied and the limits it could not write because their controller is not available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub fingerprint: String,
    pub skipped: Vec<LimitKey>,
}

impl Stamp {
    /// Reads a stamp's text; `None` when it has no fingerprint. Unknown file names in
    /// `skipped=` are dropped.
    pub fn parse(text: &str) -> Option<Stamp> {
        let mut words = text.split_whitespace();
        let fingerprint = words.next()?.to_string();
        let skipped = words
            .find_map(|w| w.strip_prefix("skipped="))
            .unwrap_or("")
            .split(',')
            .filter_map(LimitKey::from_file_name)
            .collect();
        Some(Stamp {
            fingerprint,
            skipped,
        })
    }
}

/// The text written to the attribute.
impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.skipped.iter().map(|k| k.file_name()).collect();
        write!(f, "{} skipped={}", self.fingerprint, names.join(","))
    }
}

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

    #[test]
    fn a_stamp_reads_back_as_written() {
        let stamp = Stamp {
            fingerprint: fingerprint("x"),
            skipped: vec![LimitKey::MemoryMax, LimitKey::PidsMax],
        };
        let text = stamp.to_string();
        assert_eq!(
            text,
            format!("{} skipped=memory.max,pids.max", fingerprint("x"))
        );
        assert_eq!(Stamp::parse(&text), Some(stamp));
        let none = Stamp::parse("0123456789abcdef skipped=").unwrap();
        assert!(none.skipped.is_empty());
        assert_eq!(Stamp::parse(""), None);
        // A stamp of an older version without the list still names its fingerprint.
        assert_eq!(Stamp::parse("abc").unwrap().fingerprint, "abc");
    }
}
