//! Fault events: which customer hit which limit, when, and what was running.
//!
//! - `detect`: from two samples of a user cgroup's counters (memory.events, pids.events,
//!   cpu.stat, PSI) to the faults between them, with the thresholds of `[events]`;
//! - `snapshot`: the user's top processes (pid, comm, command line, RSS, CPU time, cgroup);
//! - `cut`: the customer-chosen text of an event cut to a size of JSON, as it is stored;
//! - `legacy_ring`: the reader of the ring files older versions kept events in (imported
//!   into the history database once, on upgrade: `crate::history::events`);
//!
//! Times as UTC text and back (`--since`) are `crate::time`.
//!
//! The daemon samples every user cgroup once a second, so an event and its snapshot are taken
//! within a second of the kernel's counter moving.

pub mod cut;
pub mod detect;
pub mod kmsg;
pub mod legacy_ring;
pub mod me;
pub mod recorder;
pub mod snapshot;

use serde::{Deserialize, Serialize};

/// What a user hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// memory.events high: reclaim forced because memory.high was exceeded.
    MemoryHigh,
    /// memory.events max: memory.max was about to be exceeded.
    MemoryMax,
    /// memory.events oom: the OOM killer was invoked for the cgroup.
    Oom,
    /// memory.events oom_kill: a process was killed.
    OomKill,
    /// pids.events max: a fork was refused at pids.max.
    PidsMax,
    /// cpu.stat: more than `cpu_throttled_percent` of the periods were throttled.
    CpuThrottled,
    /// PSI some avg10 above its threshold.
    MemoryPressure,
    IoPressure,
    CpuPressure,
    /// Not a fault: the daemon's safety net moved a process whose real uid became the
    /// customer's into its fence (`from` says where it was).
    Fenced,
}

pub const ALL_KINDS: [FaultKind; 10] = [
    FaultKind::MemoryHigh,
    FaultKind::MemoryMax,
    FaultKind::Oom,
    FaultKind::OomKill,
    FaultKind::PidsMax,
    FaultKind::CpuThrottled,
    FaultKind::MemoryPressure,
    FaultKind::IoPressure,
    FaultKind::CpuPressure,
    FaultKind::Fenced,
];

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::MemoryHigh => "memory_high",
            FaultKind::MemoryMax => "memory_max",
            FaultKind::Oom => "oom",
            FaultKind::OomKill => "oom_kill",
            FaultKind::PidsMax => "pids_max",
            FaultKind::CpuThrottled => "cpu_throttled",
            FaultKind::MemoryPressure => "memory_pressure",
            FaultKind::IoPressure => "io_pressure",
            FaultKind::CpuPressure => "cpu_pressure",
            FaultKind::Fenced => "fenced",
        }
    }

    pub fn parse(text: &str) -> Option<FaultKind> {
        ALL_KINDS.into_iter().find(|k| k.name() == text)
    }

    /// Memory faults are explained by the largest processes, the others by the busiest.
    pub fn by_memory(self) -> bool {
        matches!(
            self,
            FaultKind::MemoryHigh
                | FaultKind::MemoryMax
                | FaultKind::Oom
                | FaultKind::OomKill
                | FaultKind::MemoryPressure
        )
    }

    /// Found by a counter moving (memory.events, pids.events), not by a threshold crossed:
    /// its event's usage is the cgroup's memory or tasks.
    pub fn is_counter(self) -> bool {
        matches!(
            self,
            FaultKind::MemoryHigh
                | FaultKind::MemoryMax
                | FaultKind::Oom
                | FaultKind::OomKill
                | FaultKind::PidsMax
        )
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One process of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    /// The kernel's comm (customer-chosen: escape before printing; cut to `cut::MAX_COMM_JSON`
    /// bytes of JSON, which a real one never reaches).
    pub comm: String,
    /// The command line, NULs as spaces, read up to `MAX_CMDLINE` bytes and cut to
    /// `cut::MAX_COMMAND_JSON` bytes of JSON (customer-chosen).
    pub cmdline: String,
    /// The owner of /proc/PID (its effective uid); `None` in records of older daemons.
    #[serde(default)]
    pub uid: Option<u32>,
    pub rss_bytes: u64,
    /// utime + stime.
    pub cpu_usec: u64,
    /// Percent of one CPU used while the snapshot was taken (busiest-first snapshots only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// The cgroup, relative to users/<user>, cut to `cut::MAX_PATH_JSON` bytes of JSON (its
    /// sub-cgroups' names are customer-chosen).
    pub cgroup: String,
}

/// One fault of one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the epoch (UTC) with milliseconds.
    pub time_ms: u64,
    pub user: String,
    pub kind: FaultKind,
    /// How much the kernel's counter moved since the last event of this kind (for the
    /// threshold kinds: the throttled periods, or 1 for a pressure crossing).
    pub delta: u64,
    /// The limit as its file says it (memory.max, memory.high, pids.max, cpu.max) or the
    /// threshold crossed ("50%").
    pub limit: Option<String>,
    /// Usage at that moment: bytes (memory kinds), processes (pids_max), percent of periods
    /// throttled (cpu_throttled), PSI avg10 percent (pressure kinds).
    pub usage: Option<f64>,
    pub processes: Vec<ProcessInfo>,
    /// oom_kill: the processes the OOM killer killed (gone before the snapshot), from the
    /// kernel's log (see `kmsg`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub killed: Vec<kmsg::OomVictim>,
    /// fenced: the cgroup the process was in before the safety net moved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl Event {
    /// The one syslog/journal line of an event: `key=value` pairs, every customer-chosen value
    /// quoted with its quotes, backslashes and control characters escaped, so a process name
    /// can neither forge a field nor start a line.
    pub fn log_line(&self) -> String {
        let mut line = format!(
            "fault user={} kind={} delta={} limit={} usage={} time={}",
            self.user,
            self.kind,
            self.delta,
            self.limit.as_deref().unwrap_or("-"),
            self.usage
                .map(|u| u.to_string())
                .unwrap_or_else(|| "-".into()),
            crate::time::utc_text(self.time_ms)
        );
        for k in &self.killed {
            line.push_str(&format!(
                " killed=pid:{},uid:{},comm:{:?}",
                k.pid, k.uid, k.comm
            ));
        }
        if let Some(from) = &self.from {
            line.push_str(&format!(" from={from:?}"));
        }
        for p in self.processes.iter().take(3) {
            line.push_str(&format!(
                " top=pid:{},rss:{},cpu_usec:{},comm:{:?}",
                p.pid, p.rss_bytes, p.cpu_usec, p.comm
            ));
        }
        line
    }
}
