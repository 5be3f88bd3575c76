//! `sessions.max`: the number of open PAM sessions a user may have (LVE's "entry processes"
//! for logins). Not a cgroup file: the module counts the user's live session leaves itself
//! (`crate::sessions`), so it is kept apart from `LimitKey`, whose keys are all written to the
//! kernel.

/// The key, as written in `[limits]`, profiles and user files.
pub const SESSIONS_MAX_KEY: &str = "sessions.max";

/// A validated `sessions.max`: `Some(n)` caps at n sessions, `None` is `"max"` (no cap; a
/// user file can lift a profile's cap with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionsMax(pub Option<u32>);

impl std::fmt::Display for SessionsMax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("max"),
        }
    }
}

/// Parses a value of `sessions.max`: a whole number from 1, or `"max"`.
pub fn parse(value: &super::RawValue) -> Result<SessionsMax, String> {
    let text = match value {
        super::RawValue::Integer(i) => i.to_string(),
        super::RawValue::Text(s) => s.trim().to_string(),
        super::RawValue::List(_) => return Err("takes a single value, not a list".to_string()),
    };
    if text == "max" {
        return Ok(SessionsMax(None));
    }
    let n: u32 = text
        .parse()
        .map_err(|_| format!("{text:?}: expected a whole number of sessions or \"max\""))?;
    if n == 0 {
        // 0 would refuse every login of the user: suspend it instead (`cgroupctl suspend`).
        return Err(
            "must be at least 1 (to refuse every login, use `cgroupctl suspend`)".to_string(),
        );
    }
    Ok(SessionsMax(Some(n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::RawValue;

    #[test]
    fn values() {
        assert_eq!(parse(&RawValue::Integer(10)), Ok(SessionsMax(Some(10))));
        assert_eq!(parse(&RawValue::Text("max".into())), Ok(SessionsMax(None)));
        assert!(parse(&RawValue::Integer(0))
            .unwrap_err()
            .contains("suspend"));
        assert!(parse(&RawValue::Integer(-1)).is_err());
        assert!(parse(&RawValue::Text("many".into())).is_err());
        assert!(parse(&RawValue::List(vec!["1".into()])).is_err());
    }
}
