//! The names of user cgroups: `users/<user>.<tag>`, where the tag is 16 lowercase hex digits of
//! SipHash-2-4 of the user name under the tree key (`super::key`), a 128-bit secret only root
//! reads.
//!
//! Why: `users/` must stay traversable (a customer's tools open its own cgroup by the path in
//! /proc/self/cgroup, systemd --user included), so a plain `users/<user>` would answer any
//! customer's `stat` for every name in /etc/passwd: whether that user has a cgroup, its number
//! of leaves (nlink), its last login or logout (mtime). With the tag, the name of a neighbour's
//! directory cannot be computed without the key: `stat users/bob` is ENOENT whether or not bob
//! has a cgroup. A customer still reads its own directory's name in /proc/self/cgroup, and an
//! administrator still reads the user name in every directory name.
//!
//! A child of `users/` whose name does not verify against the key but is a valid user name is
//! a legacy directory (`users/<user>`, made by a version before the tags): it keeps its live
//! sessions until they end and is then removed.

use std::hash::Hasher;

use siphasher::sip::SipHasher24;

use crate::names::validate_user_name;

/// Hex digits in a tag (64 bits: guessing one is a 2^-64 chance per try).
pub const TAG_LEN: usize = 16;

/// The tree key: names user cgroups. Never printed (`Debug` hides it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TreeKey([u8; 16]);

impl std::fmt::Debug for TreeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TreeKey(..)")
    }
}

impl TreeKey {
    pub fn from_bytes(bytes: [u8; 16]) -> TreeKey {
        TreeKey(bytes)
    }

    /// A fresh random key (getrandom(2), waiting for the pool at early boot if it must).
    pub fn generate() -> std::io::Result<TreeKey> {
        let mut bytes = [0u8; 16];
        let mut filled = 0;
        while filled < bytes.len() {
            let rest = &mut bytes[filled..];
            // SAFETY: `rest` is a valid, writable buffer of rest.len() bytes.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            match usize::try_from(n) {
                Ok(n) => filled += n,
                Err(_) => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(TreeKey(bytes))
    }

    /// The key file's text: 32 lowercase hex digits and a newline.
    pub fn render(&self) -> String {
        let mut out: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        out.push('\n');
        out
    }

    /// Reads the key file's text back; anything else is `None` (a damaged key is a fault,
    /// never silently replaced: every user cgroup is named by it).
    pub fn parse(text: &[u8]) -> Option<TreeKey> {
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        if text.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, pair) in text.chunks(2).enumerate() {
            let hex = std::str::from_utf8(pair).ok()?;
            if hex.bytes().any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return None;
            }
            *bytes.get_mut(i)? = u8::from_str_radix(hex, 16).ok()?;
        }
        Some(TreeKey(bytes))
    }

    /// The tag of `user`.
    pub fn tag(&self, user: &str) -> String {
        let mut sip = SipHasher24::new_with_key(&self.0);
        // `write`, not `Hash::hash` (which appends a terminator of its own): the PRF of
        // exactly the name's bytes.
        sip.write(user.as_bytes());
        format!("{:016x}", sip.finish())
    }

    /// The directory name of `user`'s cgroup: `<user>.<tag>`.
    pub fn dir_name(&self, user: &str) -> String {
        format!("{user}.{}", self.tag(user))
    }

    /// What the child `name` of `users/` is.
    pub fn classify<'a>(&self, name: &'a str) -> Option<UserEntry<'a>> {
        if let Some((user, tag)) = name.rsplit_once('.') {
            if tag.len() == TAG_LEN && validate_user_name(user).is_ok() && self.tag(user) == tag {
                return Some(UserEntry::Tagged(user));
            }
        }
        validate_user_name(name).ok()?;
        Some(UserEntry::Legacy(name))
    }
}

/// A child of `users/` that is a user's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserEntry<'a> {
    /// `<user>.<tag>`, verified against the key: where this version puts the user.
    Tagged(&'a str),
    /// A valid user name without a verified tag: made by an older version (or by hand).
    Legacy(&'a str),
}

impl<'a> UserEntry<'a> {
    pub fn user(self) -> &'a str {
        match self {
            UserEntry::Tagged(u) | UserEntry::Legacy(u) => u,
        }
    }

    pub fn is_legacy(self) -> bool {
        matches!(self, UserEntry::Legacy(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: TreeKey = TreeKey([7; 16]);

    #[test]
    fn tags_are_keyed_hex_and_verify() {
        let tag = KEY.tag("alice");
        assert_eq!(tag.len(), TAG_LEN);
        assert!(tag
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(tag, KEY.tag("bob"));
        assert_ne!(
            tag,
            TreeKey([8; 16]).tag("alice"),
            "the key changes every tag"
        );
        let name = KEY.dir_name("alice");
        assert_eq!(KEY.classify(&name), Some(UserEntry::Tagged("alice")));
        let dotted = KEY.dir_name("a.b");
        assert_eq!(KEY.classify(&dotted), Some(UserEntry::Tagged("a.b")));
    }

    #[test]
    fn unverified_names_are_legacy_or_nothing() {
        assert_eq!(KEY.classify("alice"), Some(UserEntry::Legacy("alice")));
        let forged = format!("alice.{}", "0".repeat(TAG_LEN));
        assert_eq!(
            KEY.classify(&forged),
            Some(UserEntry::Legacy(forged.as_str()))
        );
        let other_key = TreeKey([8; 16]).dir_name("alice");
        assert!(KEY.classify(&other_key).is_some_and(UserEntry::is_legacy));
        assert_eq!(KEY.classify("../x"), None);
        assert_eq!(KEY.classify("cgroup.procs"), None);
    }

    #[test]
    fn key_text_round_trips_and_damage_is_refused() {
        let key = TreeKey::generate().unwrap();
        assert_eq!(TreeKey::parse(key.render().as_bytes()), Some(key));
        assert_eq!(TreeKey::parse(b""), None);
        assert_eq!(TreeKey::parse(&[b'A'; 32]), None);
        assert_eq!(TreeKey::parse(&[b'0'; 31]), None);
        assert_eq!(TreeKey::parse("é".repeat(16).as_bytes()), None);
        assert!(!format!("{key:?}").contains(&key.render()[..8]));
    }
}
