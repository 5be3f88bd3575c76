//! A limit's kernel text in the units an administrator writes (`4294967296` -> `4G`,
//! `200000 100000` -> `200%`), for people; JSON keeps the kernel's text. Exact only: a value
//! that has no exact short form is shown as the kernel has it, so what is shown can be
//! written back into a config file and give the same value.

/// One line of a limit file `key` (its file name) in human units.
pub fn human_value(key: &str, line: &str) -> String {
    let line = line.trim();
    if key.starts_with("memory.") {
        return line
            .parse::<u64>()
            .map(size)
            .unwrap_or_else(|_| line.to_string());
    }
    if key == "cpu.max" {
        return cpu_max(line).unwrap_or_else(|| line.to_string());
    }
    line.to_string()
}

/// Several lines joined with "; " (as `show` and `check` join io.max's), each in human units.
pub fn human_lines(key: &str, joined: &str) -> String {
    joined
        .split("; ")
        .map(|l| human_value(key, l))
        .collect::<Vec<_>>()
        .join("; ")
}

fn size(n: u64) -> String {
    for (unit, bytes) in [
        ("T", 1u64 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ] {
        if n >= bytes && n % bytes == 0 {
            return format!("{}{unit}", n / bytes);
        }
    }
    n.to_string()
}

/// `QUOTA PERIOD` as a percentage of one CPU when exact; `max PERIOD` as `max`.
fn cpu_max(line: &str) -> Option<String> {
    let (quota, period) = line.split_once(' ')?;
    let period: u64 = period.trim().parse().ok()?;
    if quota == "max" {
        return Some("max".to_string());
    }
    let quota: u64 = quota.parse().ok()?;
    let hundred = quota.checked_mul(100)?;
    (period > 0 && hundred % period == 0).then(|| format!("{}%", hundred / period))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{parse_limit, RawValue};

    #[test]
    fn sizes_and_percentages() {
        assert_eq!(human_value("memory.max", "4294967296"), "4G");
        assert_eq!(human_value("memory.high", "1610612736"), "1536M");
        assert_eq!(human_value("memory.max", "max"), "max");
        assert_eq!(human_value("memory.max", "1000"), "1000");
        assert_eq!(human_value("cpu.max", "200000 100000"), "200%");
        assert_eq!(human_value("cpu.max", "max 100000"), "max");
        assert_eq!(human_value("cpu.max", "33333 100000"), "33333 100000");
        assert_eq!(human_value("pids.max", "512"), "512");
        assert_eq!(human_lines("memory.max", "1024; 2048"), "1K; 2K");
    }

    /// What is shown, written back into a config, gives the kernel's value again.
    #[test]
    fn round_trips_through_the_config_parser() {
        for (key, kernel) in [
            ("memory.max", "4294967296"),
            ("memory.high", "1610612736"),
            ("memory.max", "12345"),
            ("cpu.max", "150000 100000"),
            ("cpu.max", "33333 100000"),
            ("pids.max", "512"),
        ] {
            let shown = human_value(key, kernel);
            let raw = if key == "pids.max" {
                RawValue::Integer(shown.parse().unwrap_or_default())
            } else {
                RawValue::Text(shown.clone())
            };
            let parsed = parse_limit(key, &raw).unwrap_or_else(|e| panic!("{key} {shown}: {e}"));
            assert_eq!(parsed.lines, vec![kernel.to_string()], "{key} {shown}");
        }
    }
}
