//! From samples of one user cgroup to its faults.
//!
//! Counters (memory.events, pids.events) give an event when they move; the threshold kinds
//! (cpu throttling, PSI) when they cross their threshold upwards (not again until they have
//! been below it). One kind of one user gives at most one event per `repeat_after`: a fork
//! bomb hammering pids.max gives one event whose delta says how many forks were refused, not
//! one per second. The first sample of a user is the baseline: a restarted daemon does not
//! report again what happened before it started.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::EventsConfig;
use crate::error::Result;
use crate::stats::semantics::EventSemantics;
use crate::stats::{
    read_counters, read_max, read_optional, read_psi, read_u64, user_faults, CgroupStats,
    MemoryEvents, Pressure, PsiFiles,
};

use super::FaultKind;

/// What one sample of a user cgroup read: its stats and the limit files stats do not keep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub stats: CgroupStats,
    pub memory_high: Option<String>,
    pub cpu_max: Option<String>,
    /// The user cgroup directory's inode (the caller's directory listing gives it): a new
    /// one is users/<user> made again, whose counters start over. `None`: not known.
    pub cgroup_inode: Option<u64>,
}

impl Reading {
    /// What faults are found in, read of every user every pass: the fault counters (right on
    /// every kernel: `user_faults` with `sem`, detected once a pass by the caller), and the
    /// cpu.stat and PSI files of the threshold kinds that are on. No limit and no usage: those
    /// only an event shows, and `add_limits` reads them for a user with a fault. At 10,000
    /// users, reading everything of everyone took 0.6-0.7 s of a core every second.
    ///
    /// `before`: the user's state from the previous passes. On a kernel that counts refused
    /// forks only where they happen (before 6.12: Debian 12) the sum over the user's subtree is
    /// a walk of every sub-cgroup, 11 µs a cgroup, every second; it is skipped for a user whose
    /// processes used no CPU since the last walk (cpu.stat's usage_usec, read first, did not
    /// move): a refused fork is a fork attempted, which runs. Memory events are not summed
    /// that way (a remote charge can count one in a customer whose processes sleep), so a
    /// kernel counting those locally walks every time.
    pub fn counters(
        user_dir: &Path,
        sem: EventSemantics,
        cfg: &EventsConfig,
        before: Option<&UserState>,
    ) -> Result<Reading> {
        let walk_skippable = !sem.pids_hierarchical && sem.memory_hierarchical;
        let mut stats = read_counters(user_dir, cfg.cpu_throttled_percent > 0 || walk_skippable)?;
        stats.psi = read_psi(
            user_dir,
            PsiFiles {
                cpu: cfg.cpu_pressure_percent > 0,
                memory: cfg.memory_pressure_percent > 0,
                io: cfg.io_pressure_percent > 0,
            },
        )?;
        let last = before.and_then(|b| b.last_walk);
        let stats = match (last, stats.cpu, stats.pids_events_max) {
            (Some(w), Some(cpu), Some(_)) if walk_skippable && cpu.usage_usec == w.usage_usec => {
                CgroupStats {
                    pids_events_max: Some(w.pids_events_max),
                    ..stats
                }
            }
            _ => user_faults(user_dir, stats, sem)?,
        };
        Ok(Reading {
            stats,
            memory_high: None,
            cpu_max: None,
            cgroup_inode: None,
        })
    }

    /// Adds the limits and the current usage of users/<user>: what an event shows
    /// (`limit_of`, `usage_of`), each file read once.
    pub fn add_limits(&mut self, user_dir: &Path) -> Result<()> {
        let text = |name: &str| -> Result<Option<String>> {
            Ok(read_optional(&user_dir.join(name))?.map(|t| t.trim().to_string()))
        };
        self.memory_high = text("memory.high")?;
        self.cpu_max = text("cpu.max")?;
        self.stats.memory_max = read_max(user_dir, "memory.max")?;
        self.stats.pids_max = read_max(user_dir, "pids.max")?;
        self.stats.memory_current = read_u64(user_dir, "memory.current")?;
        self.stats.pids_current = read_u64(user_dir, "pids.current")?;
        Ok(())
    }
}

/// A fault found by `UserState::observe`, before its snapshot is taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub delta: u64,
    pub limit: Option<String>,
    pub usage: Option<f64>,
}

/// The user's CPU time and refused forks (summed over its subtree) at the last pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastWalk {
    usage_usec: u64,
    pids_events_max: u64,
}

impl LastWalk {
    fn of(s: &CgroupStats) -> Option<LastWalk> {
        Some(LastWalk {
            usage_usec: s.cpu?.usage_usec,
            pids_events_max: s.pids_events_max?,
        })
    }
}

/// What the daemon remembers of one user between samples.
#[derive(Debug, Clone, Default)]
pub struct UserState {
    /// Counter values already reported (or the baseline).
    reported: BTreeMap<FaultKind, u64>,
    last_event_ms: BTreeMap<FaultKind, u64>,
    /// cpu.stat nr_periods, nr_throttled of the previous sample.
    cpu: Option<(u64, u64)>,
    /// Threshold kinds above their threshold whose episode has had its event.
    above: BTreeSet<FaultKind>,
    /// What `Reading::counters` may reuse instead of walking the subtree again.
    last_walk: Option<LastWalk>,
    /// The user cgroup's inode at the last sample (`Reading::cgroup_inode`).
    cgroup_inode: Option<u64>,
}

fn counters(stats: &CgroupStats) -> Vec<(FaultKind, u64)> {
    let mut out = Vec::new();
    if let Some(MemoryEvents {
        high,
        max,
        oom,
        oom_kill,
    }) = stats.memory_events
    {
        out.extend([
            (FaultKind::MemoryHigh, high),
            (FaultKind::MemoryMax, max),
            (FaultKind::Oom, oom),
            (FaultKind::OomKill, oom_kill),
        ]);
    }
    if let Some(n) = stats.pids_events_max {
        out.push((FaultKind::PidsMax, n));
    }
    out
}

fn some_avg10(p: &Option<Pressure>) -> Option<f64> {
    p.as_ref().and_then(|p| p.some).map(|l| l.avg10)
}

impl UserState {
    /// The baseline: nothing before it is reported.
    pub fn new(first: &Reading) -> UserState {
        let mut state = UserState {
            reported: counters(&first.stats).into_iter().collect(),
            ..UserState::default()
        };
        state.cpu = cpu_periods(&first.stats);
        state.last_walk = LastWalk::of(&first.stats);
        state.cgroup_inode = first.cgroup_inode;
        state
    }

    /// Whether the previous passes saw another cgroup than the one at `inode` (users/<user>
    /// removed and made again between two passes); `None` when either side is not known.
    pub fn is_other_cgroup(&self, inode: Option<u64>) -> Option<bool> {
        Some(self.cgroup_inode? != inode?)
    }

    fn may_report(&self, kind: FaultKind, now_ms: u64, cfg: &EventsConfig) -> bool {
        self.last_event_ms
            .get(&kind)
            .is_none_or(|t| now_ms.saturating_sub(*t) >= u64::from(cfg.repeat_after_secs) * 1000)
    }

    /// The faults since the previous sample.
    pub fn observe(&mut self, now: &Reading, now_ms: u64, cfg: &EventsConfig) -> Vec<Fault> {
        let s = &now.stats;
        self.last_walk = LastWalk::of(s);
        let same_cgroup = self.is_other_cgroup(now.cgroup_inode).map(|other| !other);
        if same_cgroup == Some(false) {
            // users/<user> made again: its counters started over, and count from 0.
            self.reported.clear();
            self.cpu = None;
        }
        self.cgroup_inode = now.cgroup_inode.or(self.cgroup_inode);
        let mut faults = Vec::new();
        for (kind, value) in counters(s) {
            let allowed = self.may_report(kind, now_ms, cfg);
            let reported = self.reported.entry(kind).or_insert(0);
            if value < *reported {
                *reported = if same_cgroup == Some(true) {
                    // The same cgroup counts less: a sum over its subtree (a kernel counting
                    // where the fault happened, `stats::user_faults`) lost a sub-cgroup the
                    // customer made and then removed. What it held was reported already;
                    // reporting the rest again would let a customer make up faults at will.
                    value
                } else {
                    // Not known to be the same cgroup: a counter going down is one that
                    // started over.
                    0
                };
            }
            if value > *reported && allowed {
                let delta = value - *reported;
                *reported = value;
                self.last_event_ms.insert(kind, now_ms);
                faults.push(Fault {
                    kind,
                    delta,
                    limit: limit_of(kind, now, cfg),
                    usage: usage_of(kind, s),
                });
            }
        }

        let cpu = cpu_periods(s);
        let throttled_share = match (self.cpu, cpu) {
            (Some((p0, t0)), Some((p1, t1))) if p1 > p0 && t1 >= t0 => {
                Some(((t1 - t0) as f64 * 100.0 / (p1 - p0) as f64, t1 - t0))
            }
            _ => None,
        };
        self.cpu = cpu;
        let thresholds = [
            (
                FaultKind::CpuThrottled,
                cfg.cpu_throttled_percent,
                throttled_share,
            ),
            (
                FaultKind::MemoryPressure,
                cfg.memory_pressure_percent,
                some_avg10(&s.psi.memory).map(|v| (v, 1)),
            ),
            (
                FaultKind::IoPressure,
                cfg.io_pressure_percent,
                some_avg10(&s.psi.io).map(|v| (v, 1)),
            ),
            (
                FaultKind::CpuPressure,
                cfg.cpu_pressure_percent,
                some_avg10(&s.psi.cpu).map(|v| (v, 1)),
            ),
        ];
        for (kind, threshold, value) in thresholds {
            let over = threshold > 0 && value.is_some_and(|(v, _)| v > f64::from(threshold));
            if !over {
                self.above.remove(&kind);
                continue;
            }
            // One event per episode above the threshold; an episode that starts within
            // repeat_after of the last event gets its event once repeat_after has passed.
            if !self.above.contains(&kind) && self.may_report(kind, now_ms, cfg) {
                self.above.insert(kind);
                self.last_event_ms.insert(kind, now_ms);
                let (usage, delta) = value.unwrap_or((0.0, 0));
                faults.push(Fault {
                    kind,
                    delta,
                    limit: limit_of(kind, now, cfg),
                    usage: Some((usage * 100.0).round() / 100.0),
                });
            }
        }
        faults
    }
}

impl Fault {
    /// Fills in the limit and usage from `r` (once `Reading::add_limits` read them): a counter
    /// kind's usage is the cgroup's, a threshold kind's the share measured, kept.
    pub fn describe(&mut self, r: &Reading, cfg: &EventsConfig) {
        self.limit = limit_of(self.kind, r, cfg);
        if self.kind.is_counter() {
            self.usage = usage_of(self.kind, &r.stats);
        }
    }
}

fn cpu_periods(s: &CgroupStats) -> Option<(u64, u64)> {
    let c = s.cpu?;
    Some((c.nr_periods?, c.nr_throttled?))
}

fn limit_of(kind: FaultKind, r: &Reading, cfg: &EventsConfig) -> Option<String> {
    let s = &r.stats;
    match kind {
        FaultKind::MemoryHigh => r.memory_high.clone(),
        FaultKind::MemoryMax | FaultKind::Oom | FaultKind::OomKill => {
            s.memory_max.map(|m| m.to_string())
        }
        FaultKind::PidsMax => s.pids_max.map(|m| m.to_string()),
        FaultKind::CpuThrottled => r.cpu_max.clone(),
        FaultKind::MemoryPressure => Some(format!("{}%", cfg.memory_pressure_percent)),
        FaultKind::IoPressure => Some(format!("{}%", cfg.io_pressure_percent)),
        FaultKind::CpuPressure => Some(format!("{}%", cfg.cpu_pressure_percent)),
        FaultKind::Fenced => None,
    }
}

fn usage_of(kind: FaultKind, s: &CgroupStats) -> Option<f64> {
    if kind == FaultKind::PidsMax {
        s.pids_current.map(|v| v as f64)
    } else {
        s.memory_current.map(|v| v as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{CpuStat, MaxValue, PressureLine};

    fn reading(mem: MemoryEvents, pids_max: u64, cpu: (u64, u64), psi_mem: f64) -> Reading {
        let mut stats = CgroupStats {
            memory_events: Some(mem),
            memory_current: Some(1000),
            memory_max: Some(MaxValue::Value(2000)),
            pids_events_max: Some(pids_max),
            pids_current: Some(7),
            pids_max: Some(MaxValue::Value(8)),
            cpu: Some(CpuStat {
                nr_periods: Some(cpu.0),
                nr_throttled: Some(cpu.1),
                ..CpuStat::default()
            }),
            ..CgroupStats::default()
        };
        stats.psi.memory = Some(Pressure {
            some: Some(PressureLine {
                avg10: psi_mem,
                total_usec: 0,
            }),
            full: None,
        });
        Reading {
            stats,
            memory_high: Some("max".into()),
            cpu_max: Some("50000 100000".into()),
            cgroup_inode: None,
        }
    }

    fn mem(oom_kill: u64) -> MemoryEvents {
        MemoryEvents {
            oom_kill,
            ..MemoryEvents::default()
        }
    }

    #[test]
    fn baseline_then_counter_moves_once_per_repeat() {
        let cfg = EventsConfig::default();
        let mut st = UserState::new(&reading(mem(3), 5, (0, 0), 0.0));
        assert!(st
            .observe(&reading(mem(3), 5, (0, 0), 0.0), 1000, &cfg)
            .is_empty());
        let f = st.observe(&reading(mem(4), 5, (0, 0), 0.0), 2000, &cfg);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FaultKind::OomKill);
        assert_eq!(f[0].delta, 1);
        assert_eq!(f[0].limit.as_deref(), Some("2000"));
        assert_eq!(f[0].usage, Some(1000.0));
        // Within repeat_after: held back, then reported with the whole delta.
        assert!(st
            .observe(&reading(mem(6), 5, (0, 0), 0.0), 3000, &cfg)
            .is_empty());
        let f = st.observe(&reading(mem(7), 5, (0, 0), 0.0), 62_000, &cfg);
        assert_eq!((f.len(), f[0].delta), (1, 3));
    }

    #[test]
    fn pids_events_and_reset_counters() {
        let cfg = EventsConfig::default();
        let mut st = UserState::new(&reading(mem(0), 10, (0, 0), 0.0));
        let f = st.observe(&reading(mem(0), 250, (0, 0), 0.0), 1000, &cfg);
        assert_eq!(f[0].kind, FaultKind::PidsMax);
        assert_eq!((f[0].delta, f[0].usage), (240, Some(7.0)));
        assert_eq!(f[0].limit.as_deref(), Some("8"));
        // users/<user> made again: the counter restarts at 0 and its events count.
        let f = st.observe(&reading(mem(0), 2, (0, 0), 0.0), 100_000, &cfg);
        assert_eq!(f[0].delta, 2);
    }

    #[test]
    fn a_sum_that_drops_in_the_same_cgroup_is_no_new_fault() {
        let cfg = EventsConfig::default();
        let at = |pids: u64, inode: u64| Reading {
            cgroup_inode: Some(inode),
            ..reading(mem(0), pids, (0, 0), 0.0)
        };
        let mut st = UserState::new(&at(0, 7));
        // Refused forks in two sub-cgroups of the customer's: 5 and 100.
        assert_eq!(st.observe(&at(105, 7), 1000, &cfg)[0].delta, 105);
        // It removes the one with 5: the sum over the subtree is 100. Nothing happened.
        assert!(st.observe(&at(100, 7), 70_000, &cfg).is_empty());
        assert!(st.observe(&at(100, 7), 71_000, &cfg).is_empty());
        // Three new refused forks: three, not 103.
        assert_eq!(st.observe(&at(103, 7), 72_000, &cfg)[0].delta, 3);
        // users/<user> made again (another inode): its count is all new.
        let f = st.observe(&at(2, 8), 140_000, &cfg);
        assert_eq!((f.len(), f[0].delta), (1, 2));
        // Made again with a count already above the old one's: all of it is new too.
        let mut st = UserState::new(&at(10, 7));
        assert_eq!(st.observe(&at(12, 8), 1000, &cfg)[0].delta, 12);
    }

    #[test]
    fn throttling_and_pressure_are_edge_triggered() {
        let cfg = EventsConfig::default();
        let mut st = UserState::new(&reading(mem(0), 0, (100, 0), 0.0));
        // 10 of 100 periods throttled: under 50 %.
        assert!(st
            .observe(&reading(mem(0), 0, (200, 10), 0.0), 1000, &cfg)
            .is_empty());
        let f = st.observe(&reading(mem(0), 0, (300, 100), 25.0), 2000, &cfg);
        let kinds: Vec<_> = f.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![FaultKind::CpuThrottled, FaultKind::MemoryPressure]
        );
        assert_eq!(f[0].usage, Some(90.0));
        assert_eq!(f[0].delta, 90);
        assert_eq!(f[0].limit.as_deref(), Some("50000 100000"));
        assert_eq!(f[1].limit.as_deref(), Some("20%"));
        // Still above: no new event; below then above after repeat_after: a new one.
        assert!(st
            .observe(&reading(mem(0), 0, (400, 200), 30.0), 3000, &cfg)
            .is_empty());
        assert!(st
            .observe(&reading(mem(0), 0, (500, 200), 0.0), 4000, &cfg)
            .is_empty());
        let f = st.observe(&reading(mem(0), 0, (600, 300), 0.0), 70_000, &cfg);
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn an_episode_held_back_by_repeat_after_is_reported_when_it_has_passed() {
        let cfg = EventsConfig::default();
        let mut st = UserState::new(&reading(mem(0), 0, (0, 0), 0.0));
        // A short burst (a login) at t = 1 s: reported.
        assert_eq!(
            st.observe(&reading(mem(0), 0, (100, 90), 0.0), 1_000, &cfg)
                .len(),
            1
        );
        assert!(st
            .observe(&reading(mem(0), 0, (200, 90), 0.0), 2_000, &cfg)
            .is_empty());
        // A hog from t = 30 s: held back until 61 s, then reported once.
        let mut p = (200, 90);
        let mut reported = Vec::new();
        for t in (30..70).map(|s| s * 1000) {
            p = (p.0 + 10, p.1 + 10);
            if !st.observe(&reading(mem(0), 0, p, 0.0), t, &cfg).is_empty() {
                reported.push(t);
            }
        }
        assert_eq!(reported, vec![61_000]);
    }

    #[test]
    fn zero_threshold_disables() {
        let cfg = EventsConfig {
            memory_pressure_percent: 0,
            ..EventsConfig::default()
        };
        let mut st = UserState::new(&reading(mem(0), 0, (0, 0), 0.0));
        assert!(st
            .observe(&reading(mem(0), 0, (0, 0), 99.0), 1000, &cfg)
            .is_empty());
    }
}
