//! Parsers of the cgroup v2 file formats stats need (cgroup-v2.rst, "Interface Files"):
//! flat keyed (`key value` lines), nested keyed (io.stat), PSI lines, and "max"-or-number.

use std::collections::BTreeMap;

use super::{CpuMax, IoStat, MaxValue, Pressure, PressureLine};

/// `key value` per line (memory.events, cpu.stat, pids.events). Lines that do not parse are
/// skipped: newer kernels add keys, and one odd line must not hide the others.
pub fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let key = parts.next()?;
            let value = parts.next()?.parse().ok()?;
            Some((key.to_string(), value))
        })
        .collect()
}

/// "max" or a number.
pub fn parse_max(text: &str) -> Option<MaxValue> {
    let t = text.trim();
    if t == "max" {
        Some(MaxValue::Max)
    } else {
        t.parse().ok().map(MaxValue::Value)
    }
}

/// cpu.max: `QUOTA PERIOD` or `max PERIOD`.
pub fn parse_cpu_max(text: &str) -> Option<CpuMax> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period_usec = fields.next()?.parse().ok()?;
    if fields.next().is_some() {
        return None;
    }
    let quota_usec = match quota {
        "max" => None,
        q => Some(q.parse().ok()?),
    };
    Some(CpuMax {
        quota_usec,
        period_usec,
    })
}

/// io.stat: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N` per device, summed.
pub fn parse_io_stat(text: &str) -> IoStat {
    let mut sum = IoStat::default();
    for line in text.lines() {
        for field in line.split_whitespace().skip(1) {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            let slot = match key {
                "rbytes" => &mut sum.rbytes,
                "wbytes" => &mut sum.wbytes,
                "rios" => &mut sum.rios,
                "wios" => &mut sum.wios,
                _ => continue,
            };
            *slot = slot.saturating_add(value);
        }
    }
    sum
}

/// PSI: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and the same for `full`.
pub fn parse_pressure(text: &str) -> Pressure {
    let mut out = Pressure::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let kind = parts.next();
        let mut avg10 = None;
        let mut total = None;
        for field in parts {
            match field.split_once('=') {
                Some(("avg10", v)) => avg10 = v.parse::<f64>().ok(),
                Some(("total", v)) => total = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        let (Some(avg10), Some(total_usec)) = (avg10, total) else {
            continue;
        };
        let parsed = Some(PressureLine { avg10, total_usec });
        match kind {
            Some("some") => out.some = parsed,
            Some("full") => out.full = parsed,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_as_cores() {
        let half = parse_cpu_max("50000 100000\n").unwrap();
        assert_eq!(half.quota_usec, Some(50_000));
        assert_eq!(half.cores(), 0.5);
        assert_eq!(parse_cpu_max("300000 100000").unwrap().cores(), 3.0);
        assert!(parse_cpu_max("max 100000").unwrap().cores().is_infinite());
        for bad in ["", "max", "x 100000", "1 2 3", "100000 y"] {
            assert_eq!(parse_cpu_max(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn flat_keyed_skips_odd_lines() {
        let kv = parse_flat_keyed("low 0\nhigh 3\nmax 1\noom 2\noom_kill 1\ngarbage\nx y\n");
        assert_eq!(kv.get("high"), Some(&3));
        assert_eq!(kv.get("oom_kill"), Some(&1));
        assert!(!kv.contains_key("x"));
    }

    #[test]
    fn max_values() {
        assert_eq!(parse_max("max\n"), Some(MaxValue::Max));
        assert_eq!(parse_max("1024\n"), Some(MaxValue::Value(1024)));
        assert_eq!(parse_max("junk"), None);
    }

    #[test]
    fn io_stat_sums_devices() {
        let s = parse_io_stat(
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=5 wbytes=5 rios=1 wios=1\n",
        );
        assert_eq!(
            s,
            IoStat {
                rbytes: 15,
                wbytes: 25,
                rios: 2,
                wios: 3
            }
        );
    }

    #[test]
    fn pressure_lines() {
        let p = parse_pressure(
            "some avg10=1.50 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.25 avg60=0.00 avg300=0.00 total=99\n",
        );
        assert_eq!(p.some.map(|l| l.total_usec), Some(1234));
        assert_eq!(p.full.map(|l| l.avg10), Some(0.25));
        assert_eq!(parse_pressure("some avg10=0.00 total=0\n").full, None);
    }
}
