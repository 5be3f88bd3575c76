//! A user cgroup's counters at one moment, and the row of the interval between two readings.
//!
//! Counters only ever grow while a cgroup lives. A cgroup removed and made again (the user
//! logged out and back in between two samples) starts from zero: its directory's inode tells
//! it apart, and its new counters are all this interval's. A counter that went down anyway
//! (the traffic map was made again) counts from zero too: never a negative or huge delta.
//! The fault counters are the exception: summed over the subtree on a kernel that counts a
//! fault where it happened, they go down in the same cgroup when the customer removes a
//! sub-cgroup of its own, and that interval had no new fault.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::Result;
use crate::private_ip::traffic::TrafficReader;
use crate::stats::semantics::EventSemantics;
use crate::stats::{read_optional, read_usage, user_faults};

use super::row::Row;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// The cgroup directory's inode: a new one is a re-made cgroup.
    pub inode: u64,
    pub cpu_usec: Option<u64>,
    pub throttled_usec: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub pids_current: Option<u64>,
    pub pids_peak: Option<u64>,
    pub io_read: Option<u64>,
    pub io_write: Option<u64>,
    /// Bytes received and sent, loopback and external together.
    pub net_rx: Option<u64>,
    pub net_tx: Option<u64>,
    pub memory_max_hits: Option<u64>,
    pub memory_high_hits: Option<u64>,
    pub oom_kills: Option<u64>,
    pub pids_max_hits: Option<u64>,
}

impl Reading {
    /// Reads the user cgroup at `dir` (the fault counters made right on every kernel, as
    /// `read_user_stats` does, for a kernel that counts as `sem` says) and its traffic.
    /// Absent files are absent values.
    pub fn read(
        dir: &Path,
        traffic: Option<&TrafficReader>,
        sem: EventSemantics,
    ) -> Result<Reading> {
        let inode = std::fs::metadata(dir)
            .map(|m| m.ino())
            .map_err(|e| crate::error::Error::io("stat", dir, e))?;
        let s = user_faults(dir, read_usage(dir)?, sem)?;
        let net = crate::stats::users::network_of(traffic, dir)?;
        let pids_peak = read_optional(&dir.join("pids.peak"))?.and_then(|t| t.trim().parse().ok());
        Ok(Reading {
            inode,
            cpu_usec: s.cpu.map(|c| c.usage_usec),
            throttled_usec: s.cpu.and_then(|c| c.throttled_usec),
            nr_throttled: s.cpu.and_then(|c| c.nr_throttled),
            memory_current: s.memory_current,
            memory_peak: s.memory_peak,
            pids_current: s.pids_current,
            pids_peak,
            io_read: s.io.map(|i| i.rbytes),
            io_write: s.io.map(|i| i.wbytes),
            net_rx: net.map(|t| {
                t.loopback
                    .receive_bytes
                    .saturating_add(t.external.receive_bytes)
            }),
            net_tx: net.map(|t| {
                t.loopback
                    .transmit_bytes
                    .saturating_add(t.external.transmit_bytes)
            }),
            memory_max_hits: s.memory_events.map(|m| m.max),
            memory_high_hits: s.memory_events.map(|m| m.high),
            oom_kills: s.memory_events.map(|m| m.oom_kill),
            pids_max_hits: s.pids_events_max,
        })
    }

    /// The row of the `secs` seconds from `before` to `self`. `before` is `None` for a cgroup
    /// made since the last pass: everything it counted is this interval's.
    pub fn row_since(&self, before: Option<&Reading>, secs: u64) -> Row {
        // A re-made cgroup's files start again from zero; the traffic counters (by uid, in a
        // map of their own) do not.
        let remade = before.is_some_and(|b| b.inode != self.inode);
        let cg = if remade { None } else { before };
        let delta = |now: Option<u64>, then: Option<Option<u64>>| -> Option<u64> {
            let now = now?;
            match then {
                // First sight of the cgroup: counted since it was made.
                None => Some(now),
                // The file appeared (a controller enabled meanwhile): its start is unknown.
                Some(None) => None,
                Some(Some(t)) if now >= t => Some(now - t),
                Some(Some(_)) => Some(now),
            }
        };
        // The fault counters are sums over the user's subtree where the kernel counts a fault
        // only in the cgroup it happened in (`user_faults`): the same cgroup counting less has
        // lost a sub-cgroup the customer made and removed itself, whose faults were counted
        // in their own intervals. Nothing new (it used to count all that was left again).
        let faults = |now: Option<u64>, then: Option<Option<u64>>| -> Option<u64> {
            match (now, then) {
                (Some(n), Some(Some(t))) if n < t => Some(0),
                _ => delta(now, then),
            }
        };
        // The interval's peak: the kernel's watermark when it rose during the interval, else
        // at least what is used now.
        let peak = |current: Option<u64>, peak: Option<u64>, then: Option<Option<u64>>| {
            let rose = match (peak, then) {
                (Some(p), None) => Some(p),
                (Some(p), Some(Some(t))) if p > t => Some(p),
                _ => None,
            };
            match (current, rose) {
                (Some(c), Some(r)) => Some(c.max(r)),
                (c, r) => c.or(r),
            }
        };
        Row {
            samples: 1,
            secs,
            cpu_usec: delta(self.cpu_usec, cg.map(|b| b.cpu_usec)),
            throttled_usec: delta(self.throttled_usec, cg.map(|b| b.throttled_usec)),
            nr_throttled: delta(self.nr_throttled, cg.map(|b| b.nr_throttled)),
            memory_sum: self.memory_current,
            memory_peak: peak(
                self.memory_current,
                self.memory_peak,
                cg.map(|b| b.memory_peak),
            ),
            pids_peak: peak(self.pids_current, self.pids_peak, cg.map(|b| b.pids_peak)),
            io_read: delta(self.io_read, cg.map(|b| b.io_read)),
            io_write: delta(self.io_write, cg.map(|b| b.io_write)),
            net_rx: delta(self.net_rx, before.map(|b| b.net_rx)),
            net_tx: delta(self.net_tx, before.map(|b| b.net_tx)),
            memory_max_hits: faults(self.memory_max_hits, cg.map(|b| b.memory_max_hits)),
            memory_high_hits: faults(self.memory_high_hits, cg.map(|b| b.memory_high_hits)),
            oom_kills: faults(self.oom_kills, cg.map(|b| b.oom_kills)),
            pids_max_hits: faults(self.pids_max_hits, cg.map(|b| b.pids_max_hits)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(inode: u64, cpu: u64, oom: u64, net: u64) -> Reading {
        Reading {
            inode,
            cpu_usec: Some(cpu),
            oom_kills: Some(oom),
            net_rx: Some(net),
            memory_current: Some(100),
            memory_peak: Some(500),
            ..Reading::default()
        }
    }

    #[test]
    fn deltas_of_a_living_cgroup() {
        let row = at(7, 3_000_000, 2, 50).row_since(Some(&at(7, 1_000_000, 1, 20)), 60);
        assert_eq!(row.cpu_usec, Some(2_000_000));
        assert_eq!(row.oom_kills, Some(1));
        assert_eq!(row.net_rx, Some(30));
        // The watermark did not rise: the interval's peak is what is used now.
        assert_eq!(row.memory_peak, Some(100));
        assert_eq!(row.throttled_usec, None, "absent stays absent");
    }

    #[test]
    fn a_remade_cgroup_counts_from_zero_never_negative() {
        // Same directory name, new inode, counters back near zero.
        let row = at(8, 400, 0, 60).row_since(Some(&at(7, 9_000_000, 5, 20)), 60);
        assert_eq!(row.cpu_usec, Some(400));
        assert_eq!(row.oom_kills, Some(0));
        // The traffic map is by uid and did not restart.
        assert_eq!(row.net_rx, Some(40));
        assert_eq!(row.memory_peak, Some(500));
        // A counter that went down without a new inode.
        let row = at(7, 10, 0, 5).row_since(Some(&at(7, 9_000, 1, 20)), 60);
        assert_eq!(
            (row.cpu_usec, row.oom_kills, row.net_rx),
            (Some(10), Some(0), Some(5))
        );
    }

    #[test]
    fn a_fault_sum_that_drops_in_the_same_cgroup_counts_nothing() {
        let hits = |inode: u64, pids: u64| Reading {
            pids_max_hits: Some(pids),
            memory_max_hits: Some(pids / 5),
            ..at(inode, 0, 0, 0)
        };
        // The customer removed a sub-cgroup that had 5 refused forks (1 memory.max hit).
        let row = hits(7, 100).row_since(Some(&hits(7, 105)), 60);
        assert_eq!((row.pids_max_hits, row.memory_max_hits), (Some(0), Some(0)));
        let row = hits(7, 103).row_since(Some(&hits(7, 100)), 60);
        assert_eq!(row.pids_max_hits, Some(3));
        // A cgroup made again: all of its count is new.
        let row = hits(8, 2).row_since(Some(&hits(7, 105)), 60);
        assert_eq!(row.pids_max_hits, Some(2));
    }

    #[test]
    fn a_file_that_appears_has_no_known_start() {
        let mut before = at(7, 0, 0, 0);
        before.io_read = None;
        let mut now = at(7, 0, 0, 0);
        now.io_read = Some(1 << 40);
        assert_eq!(now.row_since(Some(&before), 60).io_read, None);
        assert_eq!(now.row_since(None, 60).io_read, Some(1 << 40));
    }
}
