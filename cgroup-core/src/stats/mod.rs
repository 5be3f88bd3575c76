//! Usage and fault counters of one cgroup, read from its cgroup v2 files.
//!
//! A field is `None` when its file does not exist here (its controller is not enabled, or the
//! kernel lacks it, or PSI is disabled): "absent" must never be reported as zero, because a
//! zero oom_kill counter says "no OOM kills" while an absent one says "not measured".

pub mod carry;
pub mod daemon;
mod parse;
pub mod prometheus;
pub mod semantics;
pub mod top;
pub mod users;

use std::io::ErrorKind;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

pub use parse::{parse_cpu_max, parse_flat_keyed, parse_io_stat, parse_max, parse_pressure};

/// A limit file's value: a number or the kernel's "max" (unlimited). JSON: the number, or the
/// string "max" as the kernel writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxValue {
    Value(u64),
    Max,
}

impl Serialize for MaxValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            MaxValue::Value(v) => s.serialize_u64(*v),
            MaxValue::Max => s.serialize_str("max"),
        }
    }
}

impl std::fmt::Display for MaxValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxValue::Value(v) => write!(f, "{v}"),
            MaxValue::Max => f.write_str("max"),
        }
    }
}

/// memory.events: how often the cgroup hit memory.high / memory.max, and OOM events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEvents {
    pub high: u64,
    pub max: u64,
    pub oom: u64,
    pub oom_kill: u64,
}

/// cpu.stat. `usage_usec`, `user_usec` and `system_usec` exist in every cgroup v2 (core
/// accounting); the throttling fields only with the cpu controller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CpuStat {
    pub usage_usec: u64,
    pub user_usec: u64,
    pub system_usec: u64,
    pub nr_periods: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub throttled_usec: Option<u64>,
}

/// cpu.max: a quota of CPU time per period, or no quota ("max").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    /// Microseconds per period; `None`: unlimited.
    pub quota_usec: Option<u64>,
    pub period_usec: u64,
}

impl CpuMax {
    /// The limit in CPUs (`150000 100000` is 1.5); infinite when unlimited.
    pub fn cores(&self) -> f64 {
        match self.quota_usec {
            Some(q) if self.period_usec > 0 => q as f64 / self.period_usec as f64,
            _ => f64::INFINITY,
        }
    }
}

/// io.stat summed over devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IoStat {
    pub rbytes: u64,
    pub wbytes: u64,
    pub rios: u64,
    pub wios: u64,
}

/// One line of a PSI file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PressureLine {
    /// Share of wall time stalled over the last 10 s, in percent (as the kernel prints it).
    pub avg10: f64,
    /// Total stall time in microseconds.
    pub total_usec: u64,
}

/// A PSI file (`cpu.pressure`, `memory.pressure`, `io.pressure`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Pressure {
    pub some: Option<PressureLine>,
    pub full: Option<PressureLine>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Psi {
    pub cpu: Option<Pressure>,
    pub memory: Option<Pressure>,
    pub io: Option<Pressure>,
}

/// Everything `cgroupctl stats` reports about one cgroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CgroupStats {
    /// JSON names follow docs/json.md: usage in bytes is `*_bytes`, a count of tasks `pids`.
    #[serde(rename = "memory_bytes")]
    pub memory_current: Option<u64>,
    #[serde(rename = "memory_peak_bytes")]
    pub memory_peak: Option<u64>,
    pub memory_max: Option<MaxValue>,
    pub memory_events: Option<MemoryEvents>,
    pub cpu: Option<CpuStat>,
    /// cpu.max. Not in the JSON of `cgroupctl stats` (it reports usage; `show` and `check
    /// --user` report limits), only in the Prometheus families.
    #[serde(skip)]
    pub cpu_max: Option<CpuMax>,
    #[serde(rename = "pids")]
    pub pids_current: Option<u64>,
    pub pids_max: Option<MaxValue>,
    /// pids.events "max": forks refused because pids.max was reached. For a user
    /// (`read_user_stats`): every refused fork of the user's processes since `users/<user>` was
    /// made, whichever kernel counts them where (see `semantics`).
    pub pids_events_max: Option<u64>,
    pub io: Option<IoStat>,
    pub psi: Psi,
    /// The user's traffic (bpf/net_traffic.bpf.c), by uid: not a cgroup file, so the readers
    /// here leave it `None`; cgroupctl fills it from the pinned counters map. `None`: not
    /// counted here (the programs are not installed, or the user is unknown to NSS).
    pub network: Option<crate::private_ip::Traffic>,
}

/// Reads a cgroup file; `None` when it does not exist or the kernel says it is not supported
/// here (PSI disabled answers EOPNOTSUPP on read).
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match read_small(path) {
        Ok(text) => Ok(Some(text)),
        Err(e)
            if e.kind() == ErrorKind::NotFound
                || matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::ENODEV)
                ) =>
        {
            Ok(None)
        }
        Err(source) => Err(Error::io("read", path, source)),
    }
}

/// A cgroup file's text: open, read until end, close. Written out rather than
/// `std::fs::read_to_string` because that one sizes its buffer first (a statx, and for
/// `read_to_end` an lseek too), a third more system calls per file for files that are all a
/// few hundred bytes: the daemon's fault pass reads several per user every second.
fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut text = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(text).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))
}

pub(crate) fn read_u64(dir: &Path, name: &str) -> Result<Option<u64>> {
    Ok(read_optional(&dir.join(name))?.and_then(|t| t.trim().parse().ok()))
}

pub(crate) fn read_max(dir: &Path, name: &str) -> Result<Option<MaxValue>> {
    Ok(read_optional(&dir.join(name))?.and_then(|t| parse_max(&t)))
}

fn read_pressure(dir: &Path, name: &str) -> Result<Option<Pressure>> {
    Ok(read_optional(&dir.join(name))?.map(|t| parse_pressure(&t)))
}

/// Reads the stats of the cgroup at `dir`.
pub fn read_stats(dir: &Path) -> Result<CgroupStats> {
    let mut stats = read_usage(dir)?;
    stats.memory_max = read_max(dir, "memory.max")?;
    stats.cpu_max = read_optional(&dir.join("cpu.max"))?.and_then(|t| parse_cpu_max(&t));
    stats.pids_max = read_max(dir, "pids.max")?;
    stats.psi = read_psi(dir, PsiFiles::ALL)?;
    Ok(stats)
}

/// Which PSI files to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PsiFiles {
    pub cpu: bool,
    pub memory: bool,
    pub io: bool,
}

impl PsiFiles {
    pub const ALL: PsiFiles = PsiFiles {
        cpu: true,
        memory: true,
        io: true,
    };
}

/// The PSI files of the cgroup at `dir` that `which` names (the others `None`).
pub fn read_psi(dir: &Path, which: PsiFiles) -> Result<Psi> {
    let read = |on: bool, name: &str| -> Result<Option<Pressure>> {
        if on {
            read_pressure(dir, name)
        } else {
            Ok(None)
        }
    };
    Ok(Psi {
        cpu: read(which.cpu, "cpu.pressure")?,
        memory: read(which.memory, "memory.pressure")?,
        io: read(which.io, "io.pressure")?,
    })
}

/// The usage and fault counters of the cgroup at `dir` alone: no limit, no PSI (the usage
/// history's sampler reads these of every user cgroup every interval).
pub fn read_usage(dir: &Path) -> Result<CgroupStats> {
    let counters = read_counters(dir, true)?;
    Ok(CgroupStats {
        memory_current: read_u64(dir, "memory.current")?,
        memory_peak: read_u64(dir, "memory.peak")?,
        pids_current: read_u64(dir, "pids.current")?,
        io: read_optional(&dir.join("io.stat"))?.map(|t| parse_io_stat(&t)),
        ..counters
    })
}

/// The fault counters of the cgroup at `dir` alone (memory.events, pids.events) and, with
/// `cpu`, its cpu.stat: no usage, no limit, no PSI. What the daemon's fault pass reads of every
/// user cgroup every second (the usage and limits only once a fault was found).
pub fn read_counters(dir: &Path, cpu: bool) -> Result<CgroupStats> {
    let memory_events = read_optional(&dir.join("memory.events"))?.map(|t| {
        let kv = parse_flat_keyed(&t);
        let get = |k: &str| kv.get(k).copied().unwrap_or(0);
        MemoryEvents {
            high: get("high"),
            max: get("max"),
            oom: get("oom"),
            oom_kill: get("oom_kill"),
        }
    });
    let cpu_stat = if cpu {
        read_optional(&dir.join("cpu.stat"))?
    } else {
        None
    };
    let cpu = cpu_stat.and_then(|t| {
        let kv = parse_flat_keyed(&t);
        Some(CpuStat {
            usage_usec: *kv.get("usage_usec")?,
            user_usec: kv.get("user_usec").copied().unwrap_or(0),
            system_usec: kv.get("system_usec").copied().unwrap_or(0),
            nr_periods: kv.get("nr_periods").copied(),
            nr_throttled: kv.get("nr_throttled").copied(),
            throttled_usec: kv.get("throttled_usec").copied(),
        })
    });
    let pids_events_max = read_optional(&dir.join("pids.events"))?
        .map(|t| parse_flat_keyed(&t).get("max").copied().unwrap_or(0));
    Ok(CgroupStats {
        memory_events,
        cpu,
        pids_events_max,
        ..CgroupStats::default()
    })
}

/// The stats of a user cgroup, with fault counters that are right on every kernel: where this
/// kernel counts an event only in the cgroup it happened in, the counts of the whole subtree
/// are summed, plus what was carried from leaves removed since (see `semantics`, `carry`).
/// The carried part needs root (it is a `trusted.` attribute).
pub fn read_user_stats(user_dir: &Path) -> Result<CgroupStats> {
    let sem = semantics::EventSemantics::detect(user_dir);
    user_faults(user_dir, read_stats(user_dir)?, sem)
}

/// `stats` of the user cgroup at `user_dir` with its fault counters made right for a kernel
/// that counts as `sem` says (detected once for many users by a caller that reads them all).
pub fn user_faults(
    user_dir: &Path,
    mut stats: CgroupStats,
    sem: semantics::EventSemantics,
) -> Result<CgroupStats> {
    if sem.pids_hierarchical && sem.memory_hierarchical {
        return Ok(stats);
    }
    let mut total = carry::carried(user_dir);
    let mut pending = vec![user_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        // A cgroup removed while we walk has nothing left to add.
        match carry::uncarried_local_counts(&dir, sem) {
            Ok(c) => total = total.plus(&c),
            Err(e) if e.errno() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        }
        pending.extend(crate::inventory::child_cgroups(&dir)?);
    }
    if !sem.pids_hierarchical && stats.pids_events_max.is_some() {
        stats.pids_events_max = Some(total.pids_max);
    }
    if !sem.memory_hierarchical && stats.memory_events.is_some() {
        stats.memory_events = Some(total.memory);
    }
    Ok(stats)
}
