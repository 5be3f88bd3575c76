//! One event, one log line: control characters in a message (a TOML error's newline and caret
//! line, a hostile user name) are escaped before the line reaches syslog or the journal, so
//! nothing can split a line in two or forge a second one.

/// `text` with control characters escaped: `\n`, `\r`, `\t`, `\\` as such, others as
/// `\xNN` (`\u{NNNN}` beyond one byte). The backslash is escaped too, so the result reads back
/// unambiguously.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let code = u32::from(c);
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02x}"));
                } else {
                    out.push_str(&format!("\\u{{{code:04x}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_control;

    #[test]
    fn control_characters_are_escaped_into_one_line() {
        let toml_error = "invalid table header\nexpected `.`, `]`\n  |\n1 | [[broken\n  |   ^";
        let line = escape_control(toml_error);
        assert!(!line.chars().any(char::is_control), "{line}");
        assert_eq!(
            line,
            "invalid table header\\nexpected `.`, `]`\\n  |\\n1 | [[broken\\n  |   ^"
        );
        assert_eq!(
            escape_control("a\tb\rc\u{1b}[31m\u{7f}\u{85}"),
            "a\\tb\\rc\\x1b[31m\\x7f\\x85"
        );
        assert_eq!(
            escape_control("x\\ny"),
            "x\\\\ny",
            "a literal backslash-n stays tellable"
        );
        assert_eq!(escape_control("alice ümlaut"), "alice ümlaut");
    }
}
