//! What can still be read of `[policy]` in a config file that does not parse as a whole.
//!
//! A typo anywhere in the file (a `[[broken` line appended, a bad limit) must not turn the
//! administrator's `on_error = "closed"` into the default "open", nor drop the exemptions
//! that keep admins in. So the file is walked statement by statement: each table header is
//! read on its own line, and each `key = value` statement is parsed alone, growing it line by
//! line while it does not parse yet (a multi-line array ends a few lines further down). A line
//! that parses in no such way is skipped, so a broken line inside `[policy]` loses only its
//! own key. Hand-written because the toml crates have no error-recovering parser.
//!
//! What is read: the statements under a `[policy]` header, and `policy.KEY = ...` or
//! `policy = { ... }` written before the first header. Statements under a header that does not
//! parse (`[policy` with its bracket missing) are not trusted to belong to `[policy]`: for
//! those, the last valid policy kept by `last_good` decides.

/// A statement longer than this many lines is given up on (and the walk goes on at its next
/// line): no policy value is that long, and the walk must stay cheap at every login while the
/// file is broken.
const MAX_STATEMENT_LINES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Before the first header: `policy.KEY = ...` can appear here.
    Top,
    Policy,
    /// Another table, or a header that does not parse.
    Other,
}

/// The `[policy]` keys that could be read, as a TOML table (empty when none could).
pub(super) fn policy_table(text: &str) -> toml::Table {
    // A file that is valid TOML but fails validation (a bad limit value) is read directly.
    if let Ok(whole) = text.parse::<toml::Table>() {
        return match whole.get("policy") {
            Some(toml::Value::Table(t)) => t.clone(),
            _ => toml::Table::new(),
        };
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut found = toml::Table::new();
    let mut section = Section::Top;
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        if trimmed.starts_with('[') {
            section = header_section(lines[i]);
            i += 1;
            continue;
        }
        if section == Section::Other {
            i += 1;
            continue;
        }
        match parse_statement(&lines, i) {
            Some((table, next)) => {
                let keys = match section {
                    Section::Policy => Some(table),
                    _ => match table.get("policy") {
                        Some(toml::Value::Table(t)) => Some(t.clone()),
                        _ => None,
                    },
                };
                for (key, value) in keys.into_iter().flatten() {
                    // TOML forbids a key twice; if a broken file has it twice, the first wins.
                    found.entry(key).or_insert(value);
                }
                i = next;
            }
            None => i += 1,
        }
    }
    found
}

/// Which section a header line opens. `[[array]]` tables and headers that do not parse are
/// `Other`.
fn header_section(line: &str) -> Section {
    if line.trim_start().starts_with("[[") {
        return Section::Other;
    }
    match line.parse::<toml::Table>() {
        Ok(t) if t.len() == 1 => match t.get("policy") {
            Some(toml::Value::Table(inner)) if inner.is_empty() => Section::Policy,
            _ => Section::Other,
        },
        _ => Section::Other,
    }
}

/// Parses the statement starting at line `start`: the shortest run of lines from there that is
/// valid TOML on its own. Returns the table and the index of the line after it.
fn parse_statement(lines: &[&str], start: usize) -> Option<(toml::Table, usize)> {
    let mut chunk = String::new();
    for (offset, line) in lines[start..].iter().take(MAX_STATEMENT_LINES).enumerate() {
        // A header line ends any statement: do not swallow the next section into a value.
        if offset > 0 && line.trim_start().starts_with('[') && header_like(line) {
            return None;
        }
        chunk.push_str(line);
        chunk.push('\n');
        if let Ok(table) = chunk.parse::<toml::Table>() {
            return Some((table, start + offset + 1));
        }
    }
    None
}

/// A line that reads as a table header by itself (`[limits]`, `[profiles.pro]`) rather than as
/// an array element continuing a value (`["a", "b"],` or `[1, 2]`, which is never a header).
fn header_like(line: &str) -> bool {
    let t = line.trim();
    t.ends_with(']') && !t.contains(',') && line.parse::<toml::Table>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::policy_table;

    fn on_error(text: &str) -> Option<String> {
        policy_table(text)
            .get("on_error")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    #[test]
    fn broken_line_after_a_valid_policy() {
        let text =
            "[policy]\non_error = \"closed\"\nexempt_users = [\"ops\"]\n[limits]\n[[broken\n";
        let t = policy_table(text);
        assert_eq!(on_error(text).as_deref(), Some("closed"));
        assert_eq!(
            t.get("exempt_users")
                .and_then(|v| v.as_array())
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn broken_line_inside_policy_loses_only_its_key() {
        let text = "[policy]\nexempt_users = [\"ops\",\n  \"dba\",\n]\nmin_uid = = 7\non_error = \"closed\"\n[limits]\n\"pids.max\" = 10\n";
        let t = policy_table(text);
        assert_eq!(on_error(text).as_deref(), Some("closed"));
        assert!(t.get("min_uid").is_none());
        let users = t.get("exempt_users").and_then(|v| v.as_array()).unwrap();
        assert_eq!(users.len(), 2, "the multi-line array is read whole");
    }

    #[test]
    fn unterminated_array_does_not_swallow_the_next_keys() {
        let text = "[policy]\nexempt_users = [\"ops\"\non_error = \"closed\"\n[limits]\n";
        assert_eq!(on_error(text).as_deref(), Some("closed"));
        assert!(policy_table(text).get("exempt_users").is_none());
    }

    #[test]
    fn keys_of_other_tables_are_not_policy() {
        let text = "[limits]\non_error = \"open\"\n[policy]\non_error = \"closed\"\n[[x\n";
        assert_eq!(on_error(text).as_deref(), Some("closed"));
        let text = "[limits]\non_error = \"closed\"\n[[x\n";
        assert_eq!(on_error(text), None);
    }

    #[test]
    fn a_broken_policy_header_is_not_trusted() {
        let text = "[policy\non_error = \"closed\"\n";
        assert_eq!(on_error(text), None);
    }

    #[test]
    fn dotted_keys_and_inline_table_before_any_header() {
        assert_eq!(
            on_error("policy.on_error = \"closed\"\n[[x\n").as_deref(),
            Some("closed")
        );
        assert_eq!(
            on_error("policy = { on_error = \"closed\" }\n[[x\n").as_deref(),
            Some("closed")
        );
    }

    #[test]
    fn valid_toml_that_fails_validation_is_read_directly() {
        let text = "[policy]\non_error = \"closed\"\n[limits]\n\"pids.max\" = 0\n";
        assert_eq!(on_error(text).as_deref(), Some("closed"));
    }

    #[test]
    fn header_with_comment_and_spaces() {
        let text = "  [ policy ]  # who gets in\non_error = \"closed\"\n[[broken\n";
        assert_eq!(on_error(text).as_deref(), Some("closed"));
    }
}
