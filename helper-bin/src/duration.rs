//! Durations on the command line, the same way everywhere a verb takes one (`--min-age`,
//! `--wait`, `--interval`, `--scan-interval`) and like `events --since`'s ages: a number of
//! seconds (`30`, `0.5` where fractions make sense) or a number with a unit, `ms`, `s`, `m`,
//! `h` or `d` (`500ms`, `90s`, `10m`, `2h`, `7d`).

use std::time::Duration;

/// The text as a duration; the error says what is accepted (clap shows it as a usage error).
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("{t:?}: expected seconds or a duration like 500ms, 90s, 10m, 2h, 7d");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(n * scale).map_err(|_| bad())
}

/// A duration in whole seconds (for options that count seconds).
pub fn secs(text: &str) -> Result<u64, String> {
    let d = parse(text)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("{text:?}: give whole seconds (e.g. 1s, 2m)"));
    }
    Ok(d.as_secs())
}

/// A duration in whole seconds, at least one.
pub fn positive_secs(text: &str) -> Result<u64, String> {
    match secs(text)? {
        0 => Err(format!("{text:?}: must be at least 1s")),
        n => Ok(n),
    }
}

/// A duration in seconds with fractions (for intervals).
pub fn secs_f64(text: &str) -> Result<f64, String> {
    parse(text).map(|d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_units() {
        assert_eq!(secs("30"), Ok(30));
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("10m"), Ok(600));
        assert_eq!(secs("2h"), Ok(7200));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs_f64("500ms"), Ok(0.5));
        assert_eq!(secs_f64("0.25"), Ok(0.25));
        assert_eq!(positive_secs("1s"), Ok(1));
    }

    #[test]
    fn refusals() {
        for bad in ["", "yesterday", "2 h", "h", "-5", "1y", "1.2.3s", "1e9999"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(secs("500ms").is_err());
        assert!(positive_secs("0").is_err());
    }
}
