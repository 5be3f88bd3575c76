//! Customer-controlled text (cgroup names a customer made, command lines, comm) made safe to
//! print on an admin's terminal: control characters (C0, DEL, C1, which carry ESC/CSI/OSC
//! sequences that clear the screen, set the title or worse) and the Unicode formatting
//! characters that reorder or hide text are written as visible escapes. JSON output is
//! escaped by serde_json already. Hand-written: it is a dozen lines, and the crates that do
//! this (e.g. `strip-ansi-escapes`) remove sequences instead of showing them.

/// `text` with every control or bidi/invisible formatting character escaped, and `\` doubled
/// so that an escape in the output always came from us.
pub fn term(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\x1b' => out.push_str("\\e"),
            '\x07' => out.push_str("\\a"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_format(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `term` for bytes that need not be UTF-8 (a cgroup name a customer chose): each byte that
/// is not part of valid UTF-8 is written `\xNN`. Unambiguous, as `term` doubles `\`.
pub fn term_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&term(chunk.valid()));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Bytes as JSON text: unchanged when they are UTF-8; otherwise `\` doubled and each byte
/// that is not part of valid UTF-8 written `\xNN` (JSON strings cannot carry raw bytes).
pub fn json_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len());
            for chunk in bytes.utf8_chunks() {
                out.push_str(&chunk.valid().replace('\\', "\\\\"));
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out
        }
    }
}

/// Invisible or reordering characters: bidi embeddings, overrides and isolates, marks,
/// zero-width characters, the line and paragraph separators.
fn is_format(c: char) -> bool {
    matches!(c as u32,
        0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2069 | 0xFEFF | 0x061C)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_sequences() {
        assert_eq!(term("x\x1b[2J\x1b]0;owned\x07"), "x\\e[2J\\e]0;owned\\a");
        assert_eq!(term("a\u{9b}b\x7f"), "a\\x9bb\\x7f");
        assert_eq!(term("sleep 10 \u{202e}txt"), "sleep 10 \\u{202e}txt");
        assert_eq!(term("back\\slash"), "back\\\\slash");
        assert_eq!(term("plain-name_1 é"), "plain-name_1 é");
    }

    #[test]
    fn escapes_bytes_that_are_not_utf8() {
        assert_eq!(term_bytes(b"a\xffb\x1b"), "a\\xffb\\e");
        assert_eq!(term_bytes(b"back\\x\xfe"), "back\\\\x\\xfe");
        assert_eq!(term_bytes("é".as_bytes()), "é");
        assert_eq!(json_bytes(b"plain\\x\x1b"), "plain\\x\x1b");
        assert_eq!(json_bytes(b"a\\\xff"), "a\\\\\\xff");
    }
}
