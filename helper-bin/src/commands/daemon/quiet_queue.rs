//! Paths noted as events come, handed over once the tree has been quiet for a while, and at
//! most a bound after the first: what the daemon defers out of a burst of logins (the spares
//! it makes, the emptied leaves it reaps).

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Paths noted (each once), due `quiet` after the last note, at most `max_wait` after the first.
#[derive(Debug)]
pub struct QuietQueue {
    quiet: Duration,
    max_wait: Duration,
    seen: Vec<PathBuf>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl QuietQueue {
    pub const fn new(quiet: Duration, max_wait: Duration) -> QuietQueue {
        QuietQueue {
            quiet,
            max_wait,
            seen: Vec::new(),
            first: None,
            last: None,
        }
    }

    pub fn note(&mut self, paths: &[PathBuf], now: Instant) {
        if paths.is_empty() {
            return;
        }
        for path in paths {
            if !self.seen.contains(path) {
                self.seen.push(path.clone());
            }
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the queued paths are due.
    pub fn due(&self) -> Option<Instant> {
        Some((self.last? + self.quiet).min(self.first? + self.max_wait))
    }

    /// The queued paths once due (and the queue emptied).
    pub fn take_due(&mut self, now: Instant) -> Vec<PathBuf> {
        if self.due().is_none_or(|due| now < due) {
            return Vec::new();
        }
        self.first = None;
        self.last = None;
        std::mem::take(&mut self.seen)
    }
}
