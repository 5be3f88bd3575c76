//! Times as UTC text (`2026-12-01T15:04:05Z`, RFC 3339) and `--since` values: the one home
//! of time formatting for session marks, suspensions and fault events. Hand-written:
//! converting days to a civil date is a dozen lines (H. Hinnant's algorithm), not worth a date
//! crate in the library the PAM module links.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-12-01T15:04:05Z`
pub fn utc_text(time_ms: u64) -> String {
    let secs = (time_ms / 1000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Now as UTC text (the `since` of a suspension).
pub fn utc_now_text() -> String {
    utc_text(now_ms())
}

/// A `--since` value, as milliseconds since the epoch: `2026-12-01T15:04:05Z` (or without the
/// Z, or just the date), seconds since the epoch (`@1764601445`), or an age (`90s`, `10m`,
/// `2h`, `7d`) before `now_ms`.
pub fn parse_since(text: &str, now_ms: u64) -> Result<u64, String> {
    let t = text.trim();
    if let Some(epoch) = t.strip_prefix('@') {
        return epoch
            .parse::<u64>()
            .map(|s| s.saturating_mul(1000))
            .map_err(|_| format!("{t:?}: expected @SECONDS"));
    }
    if let Some(unit) = t.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = t[..t.len() - 1].parse::<u64>() {
            let secs = match unit {
                's' => n,
                'm' => n.saturating_mul(60),
                'h' => n.saturating_mul(3600),
                _ => n.saturating_mul(86_400),
            };
            return Ok(now_ms.saturating_sub(secs.saturating_mul(1000)));
        }
    }
    let bad =
        || format!("{t:?}: expected YYYY-MM-DD[THH:MM:SS[Z]], @SECONDS or an age like 10m, 2h, 7d");
    let t = t.strip_suffix('Z').unwrap_or(t);
    let (date, time) = t.split_once('T').unwrap_or((t, "00:00:00"));
    let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
    let dp: Vec<&str> = date.split('-').collect();
    let tp: Vec<&str> = time.split(':').collect();
    if dp.len() != 3 || tp.len() != 3 {
        return Err(bad());
    }
    let (y, mo, d) = (num(dp[0])?, num(dp[1])?, num(dp[2])?);
    let (h, mi, s) = (num(tp[0])?, num(tp[1])?, num(tp[2])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + s);
    u64::try_from(secs).map(|s| s * 1000).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(1_764_601_445_000), "2025-12-01T15:04:05Z");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(1_798_761_599_999), "2026-12-31T23:59:59Z");
        assert_eq!(
            parse_since("2025-12-01T15:04:05Z", 0).unwrap(),
            1_764_601_445_000
        );
        assert_eq!(parse_since("2024-02-29", 0).unwrap() / 1000 % 86_400, 0);
        assert_eq!(
            utc_text(parse_since("2024-02-29", 0).unwrap()),
            "2024-02-29T00:00:00Z"
        );
    }

    #[test]
    fn ages_and_epochs() {
        assert_eq!(parse_since("10m", 1_000_000).unwrap(), 400_000);
        assert_eq!(parse_since("@12", 0).unwrap(), 12_000);
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("2025-13-01", 0).is_err());
    }
}
