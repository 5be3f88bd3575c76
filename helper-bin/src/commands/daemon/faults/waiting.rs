//! Fault events waiting for the history database.
//!
//! The daemon's usage sampler rolls an hour of samples up in one transaction: 0.4-0.8 s at
//! 1,000 users, 3-7 s at 10,000. The fault pass used to wait for it (a 10 s busy timeout),
//! so the once-a-second fault sampling stalled meanwhile, and a rollup longer than the
//! timeout lost the event from the database. Now an event the database refuses because it
//! is busy waits here, in order, and is written at the next pass; the pass itself waits a
//! short moment only. The queue is bounded: past `MAX` the oldest go, counted as unsaved
//! (they are in the journal all the same).

use std::collections::VecDeque;

use cgroup_core::events::Event;

/// Events kept in memory at most while the database stays busy: a rollup lasts seconds.
/// An event's snapshot holds `top_processes` processes (10 by default, 50 at most) with their
/// command lines cut at 512 bytes and cgroup paths at 256 (`events::cut`): a database held
/// for good (an admin's open write transaction) costs the daemon about 7 MB, 45 MB at most.
pub const MAX: usize = 1_000;

/// Why one write did not happen.
pub enum WriteError {
    /// Busy: try again at the next pass.
    Busy,
    /// Anything else: this event is given up (the caller logs why).
    Failed(String),
}

/// What one flush did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    pub written: usize,
    /// Given up: a write failed for another reason than a busy database.
    pub failed: Vec<String>,
    /// Still waiting (the database was busy).
    pub waiting: usize,
}

#[derive(Default)]
pub struct Waiting {
    events: VecDeque<Event>,
}

impl Waiting {
    /// Queues `event` behind the others; the oldest one if the queue was full (it is lost to
    /// the database).
    pub fn push(&mut self, event: Event) -> Option<Event> {
        let dropped = if self.events.len() >= MAX {
            self.events.pop_front()
        } else {
            None
        };
        self.events.push_back(event);
        dropped
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Removes every event (the database cannot be opened: they go to the journal only).
    pub fn drain(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.events.drain(..)
    }

    /// Writes the waiting events in order until the database is busy.
    pub fn flush(&mut self, mut write: impl FnMut(&Event) -> Result<(), WriteError>) -> Flushed {
        let mut done = Flushed::default();
        while let Some(event) = self.events.front() {
            match write(event) {
                Ok(()) => done.written += 1,
                Err(WriteError::Busy) => break,
                Err(WriteError::Failed(why)) => done.failed.push(why),
            }
            self.events.pop_front();
        }
        done.waiting = self.events.len();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgroup_core::events::FaultKind;

    fn event(n: u64) -> Event {
        Event {
            time_ms: n,
            user: "alice".into(),
            kind: FaultKind::PidsMax,
            delta: n,
            limit: None,
            usage: None,
            processes: Vec::new(),
            killed: Vec::new(),
            from: None,
        }
    }

    #[test]
    fn a_busy_database_keeps_the_events_in_order_until_it_frees() {
        let mut waiting = Waiting::default();
        let mut stored = Vec::new();
        waiting.push(event(1));
        waiting.push(event(2));
        // Busy from the start: nothing written, both kept.
        let done = waiting.flush(|_| Err(WriteError::Busy));
        assert_eq!((done.written, done.waiting), (0, 2));
        waiting.push(event(3));
        // Free for one write, then busy again.
        let mut budget = 1;
        let done = waiting.flush(|e| {
            if budget == 0 {
                return Err(WriteError::Busy);
            }
            budget -= 1;
            stored.push(e.delta);
            Ok(())
        });
        assert_eq!((done.written, done.waiting), (1, 2));
        // Free: the rest, in order; a write that fails otherwise is given up, not retried.
        let done = waiting.flush(|e| {
            if e.delta == 2 {
                return Err(WriteError::Failed("disk full".into()));
            }
            stored.push(e.delta);
            Ok(())
        });
        assert_eq!(done.failed, vec!["disk full".to_string()]);
        assert_eq!((done.written, done.waiting), (1, 0));
        assert_eq!(stored, vec![1, 3]);
    }

    #[test]
    fn past_the_bound_the_oldest_go() {
        let mut waiting = Waiting::default();
        for n in 0..MAX as u64 {
            assert!(waiting.push(event(n)).is_none());
        }
        let dropped = waiting.push(event(MAX as u64)).map(|e| e.delta);
        assert_eq!(dropped, Some(0));
        assert_eq!(waiting.len(), MAX);
        let mut first = None;
        waiting.flush(|e| {
            first.get_or_insert(e.delta);
            Ok(())
        });
        assert_eq!(first, Some(1));
    }
}
