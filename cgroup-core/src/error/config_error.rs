//! Config errors that name the file, line, column and key, like a compiler would.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The dotted key (`limits."memory.max"` is shown as `limits.memory.max`).
    pub key: Option<String>,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl ConfigError {
    /// An error about the file as a whole (permissions, size, missing).
    pub fn file(file: &Path, reason: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            key: None,
            reason: reason.into(),
        }
    }

    /// An error at a byte span of `text`; the key is the given one, or else the key written on
    /// the line the span points at, qualified by the `[section]` above it.
    pub fn at(
        file: &Path,
        text: &str,
        span: Option<Range<usize>>,
        key: Option<String>,
        reason: impl Into<String>,
    ) -> Self {
        let (line, column) = match &span {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        let key = key.or_else(|| line.and_then(|l| key_on_line(text, l)));
        ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            key,
            reason: reason.into(),
        }
    }

    /// From the toml crate's parse or type error.
    pub fn from_toml(file: &Path, text: &str, err: &toml::de::Error) -> Self {
        let reason = err.message().trim().to_string();
        Self::at(file, text, err.span(), None, reason)
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before
        .get(line_start..)
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

/// The dotted key defined on `line` (1-based), prefixed with the table header above it.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let current = lines.get(line.checked_sub(1)?)?.trim();
    let mut section: Option<String> = None;
    for l in lines.iter().take(line).rev() {
        let t = l.trim();
        if t.starts_with('[') {
            section = Some(t.trim_matches(|c| c == '[' || c == ']').trim().to_string());
            break;
        }
    }
    if current.starts_with('[') {
        return section;
    }
    let key = current
        .split_once('=')?
        .0
        .trim()
        .trim_matches('"')
        .to_string();
    if key.is_empty() || key.starts_with('#') {
        return section;
    }
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let text = "a = 1\n[x]\nbc = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 16), (3, 7));
    }

    #[test]
    fn key_is_qualified_by_section() {
        let text = "[policy]\nmin_uid = \"x\"\n[limits]\n\"memory.max\" = true\n";
        assert_eq!(key_on_line(text, 2).as_deref(), Some("policy.min_uid"));
        assert_eq!(key_on_line(text, 4).as_deref(), Some("limits.memory.max"));
    }

    #[test]
    fn display_names_everything() {
        let e = ConfigError::at(
            Path::new("/etc/x.toml"),
            "[limits]\n\"pids.max\" = 0\n",
            Some(22..23),
            None,
            "must be at least 1",
        );
        assert_eq!(
            e.to_string(),
            "/etc/x.toml:2:14: limits.pids.max: must be at least 1"
        );
    }
}
