//! Rollups, retention and the size bound, run by the daemon after its samples.
//!
//! - every finished hour of sample rows becomes one hourly row per user, every finished UTC
//!   day of hourly rows one daily row (sums, and the largest of the peaks); the rows rolled
//!   up are packed in the same transaction (`pack`: a blob per user and hour, or day);
//! - rows older than their table's retention go;
//! - then, while the file uses more than `max_size`, the oldest rows go: sample rows already
//!   rolled up first (an hour at a time), then hourly rows already rolled up (a day at a
//!   time), then daily rows; the freed pages are given back to the file system.

use rusqlite::OptionalExtension;

use crate::config::HistoryConfig;

use super::error::{HistoryDbError, SqlContext};
use super::pack::{delete_before, oldest, pack_before};
use super::row::{rollup_of, Table, VALUE_COLUMNS};
use super::schema::{
    META_DAY_UNTIL, META_HOURS_KEPT_FROM, META_HOUR_UNTIL, META_SAMPLES_KEPT_FROM,
};
use super::store::Store;

/// How long each table keeps its rows, and the bound of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub sample_secs: i64,
    pub hour_secs: i64,
    pub day_secs: i64,
    pub max_bytes: u64,
}

impl Retention {
    pub fn of(cfg: &HistoryConfig) -> Retention {
        Retention {
            sample_secs: i64::from(cfg.minutes_kept_days) * 86_400,
            hour_secs: i64::from(cfg.hours_kept_days) * 86_400,
            day_secs: i64::from(cfg.days_kept_days) * 86_400,
            max_bytes: cfg.max_size,
        }
    }

    fn of_table(&self, t: Table) -> i64 {
        match t {
            Table::Sample => self.sample_secs,
            Table::Hour => self.hour_secs,
            Table::Day => self.day_secs,
        }
    }
}

/// What one maintenance did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintained {
    pub rolled_hours: usize,
    pub rolled_days: usize,
    pub expired: usize,
    /// Rows removed to keep the file within its bound.
    pub evicted: usize,
}

fn floor(t: i64, bucket: i64) -> i64 {
    t - t.rem_euclid(bucket)
}

impl Store {
    pub(super) fn meta(&self, key: &str) -> Result<i64, HistoryDbError> {
        Ok(self.meta_if_set(key)?.unwrap_or(0))
    }

    pub(super) fn meta_if_set(&self, key: &str) -> Result<Option<i64>, HistoryDbError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .sql(&self.path, "read the rollup marks")
    }

    /// Removes the rows of `table` before `before`, and moves the table's kept-from mark
    /// there when rows went (a file without the mark keeps none: its oldest row stands in).
    fn remove_before(&self, table: Table, before: i64) -> Result<usize, HistoryDbError> {
        let gone = delete_before(&self.conn, &self.path, table, before)?;
        let key = match table {
            Table::Sample => META_SAMPLES_KEPT_FROM,
            Table::Hour => META_HOURS_KEPT_FROM,
            Table::Day => return Ok(gone),
        };
        if gone > 0 {
            self.conn
                .execute(
                    "UPDATE meta SET value = max(value, ?2) WHERE key = ?1",
                    rusqlite::params![key, before],
                )
                .sql(&self.path, "mark the kept rows")?;
        }
        Ok(gone)
    }

    /// The oldest row's time in `table` (plain or packed).
    pub(super) fn oldest(&self, table: Table) -> Result<Option<i64>, HistoryDbError> {
        oldest(&self.conn, &self.path, table)
    }

    /// Rolls the finished buckets of `from` in `[mark, floor(now))` up into `to`.
    fn roll(
        &mut self,
        from: Table,
        to: Table,
        key: &str,
        now: i64,
    ) -> Result<usize, HistoryDbError> {
        let mark = self.meta(key)?;
        let end = floor(now, to.bucket());
        if end <= mark {
            return Ok(0);
        }
        let picks: Vec<String> = VALUE_COLUMNS
            .iter()
            .map(|c| format!("{}({c})", rollup_of(c)))
            .collect();
        let sql = format!(
            "INSERT OR REPLACE INTO {to} (at, user, {cols}) \
             SELECT at - (at % {b}), user, {picks} FROM {from} \
             WHERE at >= ?1 AND at < ?2 GROUP BY 1, 2",
            to = to.name(),
            from = from.name(),
            b = to.bucket(),
            cols = VALUE_COLUMNS.join(", "),
            picks = picks.join(", ")
        );
        let path = self.path.clone();
        let tx = self.conn.transaction().sql(&path, "begin")?;
        let n = tx.execute(&sql, [mark, end]).sql(&path, "roll up")?;
        pack_before(&tx, &path, from, end)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            rusqlite::params![key, end],
        )
        .sql(&path, "mark the rollup")?;
        tx.commit().sql(&path, "commit")?;
        Ok(n)
    }

    /// Rollups, retention and the size bound at time `now` (seconds).
    pub fn maintain(&mut self, now: i64, keep: &Retention) -> Result<Maintained, HistoryDbError> {
        let mut done = Maintained {
            rolled_hours: self.roll(Table::Sample, Table::Hour, META_HOUR_UNTIL, now)?,
            ..Maintained::default()
        };
        done.rolled_days = self.roll(Table::Hour, Table::Day, META_DAY_UNTIL, now)?;
        // A table's rows go only once rolled up into the next, whatever their age.
        let hour_until = self.meta(META_HOUR_UNTIL)?;
        let day_until = self.meta(META_DAY_UNTIL)?;
        for (t, rolled) in [
            (Table::Sample, hour_until),
            (Table::Hour, day_until),
            (Table::Day, i64::MAX),
        ] {
            let before = (now - keep.of_table(t)).min(rolled);
            done.expired += self.remove_before(t, before)?;
        }
        done.evicted = self.bound(keep.max_bytes, hour_until, day_until)?;
        if done.expired + done.evicted > 0 {
            self.compact()?;
        }
        Ok(done)
    }

    /// Removes the oldest rows while the file uses more than `max_bytes`.
    fn bound(
        &mut self,
        max_bytes: u64,
        hour_until: i64,
        day_until: i64,
    ) -> Result<usize, HistoryDbError> {
        let mut removed = 0;
        // Each round removes one bucket of one table: the loop ends when the file fits or
        // nothing is left that may go.
        while self.used_bytes()? > max_bytes {
            let mut gone = 0;
            for (t, chunk, rolled) in [
                (Table::Sample, 3600, hour_until),
                (Table::Hour, 86_400, day_until),
                (Table::Day, 86_400, i64::MAX),
            ] {
                let Some(oldest) = self.oldest(t)? else {
                    continue;
                };
                let before = (floor(oldest, chunk) + chunk).min(rolled);
                if before <= oldest {
                    continue;
                }
                gone = self.remove_before(t, before)?;
                if gone > 0 {
                    break;
                }
            }
            if gone == 0 {
                break;
            }
            removed += gone;
            self.compact()?;
        }
        Ok(removed)
    }
}
