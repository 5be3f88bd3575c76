//! `cgroupctl top`: per-user rates between two samples (CPU share, IO bytes per second) next to
//! current memory and process counts, sorted by the column asked for.

use std::collections::BTreeMap;

use serde::Serialize;

use super::CgroupStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Cpu,
    Memory,
    Pids,
    Io,
}

impl std::str::FromStr for SortKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(SortKey::Cpu),
            "memory" | "mem" => Ok(SortKey::Memory),
            "pids" => Ok(SortKey::Pids),
            "io" => Ok(SortKey::Io),
            other => Err(format!("{other:?}: expected cpu, memory, pids or io")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserRate {
    pub user: String,
    /// Percent of one CPU over the interval (200 = two CPUs busy).
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    /// Read plus written bytes per second over the interval.
    pub io_bytes_per_sec: Option<f64>,
}

/// Rates of every user present in `after`; a user new since `before` has no rates yet.
pub fn rates(
    before: &BTreeMap<String, CgroupStats>,
    after: &BTreeMap<String, CgroupStats>,
    seconds: f64,
) -> Vec<UserRate> {
    after
        .iter()
        .map(|(user, now)| {
            let then = before.get(user);
            let per_sec =
                |a: u64, b: u64| (seconds > 0.0).then(|| a.saturating_sub(b) as f64 / seconds);
            let cpu_percent = match (then.and_then(|t| t.cpu), now.cpu) {
                (Some(t), Some(n)) => per_sec(n.usage_usec, t.usage_usec).map(|us| us / 10_000.0),
                _ => None,
            };
            let io_bytes_per_sec = match (then.and_then(|t| t.io), now.io) {
                (Some(t), Some(n)) => per_sec(n.rbytes + n.wbytes, t.rbytes + t.wbytes),
                _ => None,
            };
            UserRate {
                user: user.clone(),
                cpu_percent,
                memory_bytes: now.memory_current,
                pids: now.pids_current,
                io_bytes_per_sec,
            }
        })
        .collect()
}

/// Largest first; what is not measured sorts last; ties by name.
pub fn sort(rows: &mut [UserRate], key: SortKey) {
    let value = |r: &UserRate| -> f64 {
        match key {
            SortKey::Cpu => r.cpu_percent,
            SortKey::Memory => r.memory_bytes.map(|v| v as f64),
            SortKey::Pids => r.pids.map(|v| v as f64),
            SortKey::Io => r.io_bytes_per_sec,
        }
        .unwrap_or(-1.0)
    };
    rows.sort_by(|a, b| {
        value(b)
            .partial_cmp(&value(a))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.user.cmp(&b.user))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{CpuStat, IoStat};

    fn s(cpu_usec: u64, mem: u64, io: u64) -> CgroupStats {
        CgroupStats {
            cpu: Some(CpuStat {
                usage_usec: cpu_usec,
                ..CpuStat::default()
            }),
            memory_current: Some(mem),
            io: Some(IoStat {
                rbytes: io,
                ..IoStat::default()
            }),
            ..CgroupStats::default()
        }
    }

    #[test]
    fn the_hog_comes_first_by_cpu() {
        let before: BTreeMap<String, CgroupStats> = [
            ("idle".to_string(), s(0, 900, 0)),
            ("hog".to_string(), s(0, 10, 0)),
        ]
        .into();
        let after: BTreeMap<String, CgroupStats> = [
            ("idle".to_string(), s(10_000, 900, 4096)),
            ("hog".to_string(), s(2_000_000, 10, 0)),
            ("new".to_string(), s(5, 1, 0)),
        ]
        .into();
        let mut r = rates(&before, &after, 2.0);
        sort(&mut r, SortKey::Cpu);
        assert_eq!(r[0].user, "hog");
        assert_eq!(r[0].cpu_percent, Some(100.0));
        assert_eq!(r[2].user, "new");
        assert_eq!(r[2].cpu_percent, None);
        sort(&mut r, SortKey::Memory);
        assert_eq!(r[0].user, "idle");
        sort(&mut r, SortKey::Io);
        assert_eq!(
            (r[0].user.as_str(), r[0].io_bytes_per_sec),
            ("idle", Some(2048.0))
        );
    }
}
