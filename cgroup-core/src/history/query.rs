//! Reading the history back: totals per user over a period (`cgroupctl report`), and one
//! user's rows (`cgroupctl me --history`).
//!
//! A period is read from the finest rows that still cover it: sample rows where they are
//! kept, hourly rows before, daily rows before that; the cuts fall on whole hours and days, so
//! no interval is counted twice. At the period's ends a coarse row is counted whole when it
//! overlaps the period (a period is as precise as the rows it reaches). A table is "kept"
//! from the cut of its last removal: a new file's first hour, sampled from the daemon's start
//! in mid-hour, is read from its samples, which are all there is of it.

use std::collections::{BTreeMap, HashMap};

use super::error::{HistoryDbError, SqlContext};
use super::pack::each_row;
use super::row::{Row, Table};
use super::schema::{
    META_DAY_UNTIL, META_HOURS_KEPT_FROM, META_HOUR_UNTIL, META_SAMPLES_KEPT_FROM,
};
use super::store::Store;

/// Rows of `table` with `at` in `[from, to)` (before rounding to its buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub table: Table,
    pub from: i64,
    pub to: i64,
}

/// What the tables hold: up to where each coarse table has every rollup, from where the
/// finer tables hold every row (None in a file older than that mark), and their oldest rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coverage {
    pub hour_until: i64,
    pub day_until: i64,
    pub samples_kept_from: Option<i64>,
    pub hours_kept_from: Option<i64>,
    pub oldest_sample: Option<i64>,
    pub oldest_hour: Option<i64>,
}

fn ceil(t: i64, bucket: i64) -> i64 {
    let r = t.rem_euclid(bucket);
    if r == 0 {
        t
    } else {
        t - r + bucket
    }
}

/// The segments that cover `[from, to)`, finest first. Sample rows cover whole hours from the
/// first full hour they hold (and everything not yet rolled up); hourly rows whole days
/// likewise; daily rows the rest.
pub fn segments(from: i64, to: i64, c: &Coverage) -> Vec<Segment> {
    // Where a finer table's rows are complete: from its kept mark, or in a file without one
    // from its oldest row (removals cut anywhere in an hour: that hour is the coarser row's).
    let cut = |kept: Option<i64>, oldest: Option<i64>, rolled: i64, bucket: i64| {
        kept.or(oldest)
            .map_or(rolled, |k| ceil(k, bucket).min(rolled))
    };
    let cut_sample = cut(c.samples_kept_from, c.oldest_sample, c.hour_until, 3600);
    let cut_hour = cut(c.hours_kept_from, c.oldest_hour, c.day_until, 86_400).min(cut_sample);
    let mut out = Vec::new();
    for (table, lo, hi) in [
        (Table::Sample, cut_sample, i64::MAX),
        (Table::Hour, cut_hour, cut_sample),
        (Table::Day, i64::MIN, cut_hour),
    ] {
        let (a, b) = (from.max(lo), to.min(hi));
        if a < b {
            out.push(Segment {
                table,
                from: a,
                to: b,
            });
        }
    }
    out
}

/// One user's totals over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub user: String,
    /// -1: NSS did not know the user when it was first sampled.
    pub uid: i64,
    pub row: Row,
}

impl Store {
    pub fn coverage(&self) -> Result<Coverage, HistoryDbError> {
        Ok(Coverage {
            hour_until: self.meta(META_HOUR_UNTIL)?,
            day_until: self.meta(META_DAY_UNTIL)?,
            samples_kept_from: self.meta_if_set(META_SAMPLES_KEPT_FROM)?,
            hours_kept_from: self.meta_if_set(META_HOURS_KEPT_FROM)?,
            oldest_sample: self.oldest(Table::Sample)?,
            oldest_hour: self.oldest(Table::Hour)?,
        })
    }

    /// Every user's totals over `[from, to)` (seconds), by user name (a name that belonged to
    /// two uids over the period gives two entries).
    pub fn totals(&self, from: i64, to: i64) -> Result<Vec<Totals>, HistoryDbError> {
        let segs = segments(from, to, &self.coverage()?);
        let mut by_user: HashMap<i64, Row> = HashMap::new();
        for s in &segs {
            // A row counts when it overlaps the segment: its time after `from - bucket`.
            let lo = s.from.saturating_sub(s.table.bucket()).saturating_add(1);
            each_row(
                &self.conn,
                &self.path,
                s.table,
                None,
                lo,
                s.to,
                |_, user, row| by_user.entry(user).or_default().merge(row),
            )?;
        }
        if by_user.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, uid FROM users")
            .sql(&self.path, "read the users")?;
        let users = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))
            .sql(&self.path, "read the users")?;
        let mut out = Vec::with_capacity(by_user.len());
        for u in users {
            let (id, user, uid): (i64, String, i64) = u.sql(&self.path, "read the users")?;
            if let Some(row) = by_user.remove(&id) {
                out.push(Totals { user, uid, row });
            }
        }
        out.sort_by(|a, b| (&a.user, a.uid).cmp(&(&b.user, b.uid)));
        Ok(out)
    }

    /// The rows of one identity over `[from, to)`, oldest first: hourly (or daily) rows, and
    /// the samples of the hour not yet rolled up, summed into hours or days when there would
    /// be more than `max_rows`. Each row: its time and values.
    pub fn user_rows(
        &self,
        user: i64,
        from: i64,
        to: i64,
        max_rows: i64,
    ) -> Result<Vec<(i64, Row)>, HistoryDbError> {
        // Sample rows only for the hour not yet rolled up: what a customer reads stays
        // proportionate to its own rows, not to the host's users times a day of samples.
        let mut coverage = self.coverage()?;
        coverage.samples_kept_from = Some(coverage.hour_until);
        let segs = segments(from, to, &coverage);
        let mut out = Vec::new();
        // Coarsest first, so the rows come out oldest first.
        for s in segs.iter().rev() {
            // The sample table's rows are one interval apart: too many for a long period are
            // summed into hours here (the hour table holds only finished hours).
            let span = s.to.saturating_sub(s.from);
            // Past a few hours, the samples of the hour not yet rolled up are summed into
            // that hour, so every row of the answer spans the same time.
            let group = match s.table {
                Table::Sample if span / 60 > max_rows || to - from > 3 * 3600 => 3600,
                Table::Hour if span / 3600 > max_rows => 86_400,
                t => t.bucket(),
            };
            let lo = s.from.saturating_sub(s.table.bucket()).saturating_add(1);
            let mut grouped: BTreeMap<i64, Row> = BTreeMap::new();
            each_row(
                &self.conn,
                &self.path,
                s.table,
                Some(user),
                lo,
                s.to,
                |at, _, row| grouped.entry(at - at % group).or_default().merge(row),
            )?;
            out.extend(grouped);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cut_on_whole_buckets_and_never_overlap() {
        let day = 86_400;
        let c = Coverage {
            hour_until: 10 * day + 5 * 3600,
            day_until: 10 * day,
            samples_kept_from: None,
            hours_kept_from: None,
            oldest_sample: Some(8 * day + 1234),
            oldest_hour: Some(3 * day + 7200),
        };
        let segs = segments(0, 11 * day, &c);
        assert_eq!(
            segs,
            vec![
                Segment {
                    table: Table::Sample,
                    from: 8 * day + 3600,
                    to: 11 * day
                },
                Segment {
                    table: Table::Hour,
                    from: 4 * day,
                    to: 8 * day + 3600
                },
                Segment {
                    table: Table::Day,
                    from: 0,
                    to: 4 * day
                },
            ]
        );
        // A recent period reads samples only.
        let recent = segments(9 * day, 9 * day + 60, &c);
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].table, Table::Sample);
        // Nothing rolled up yet: samples only, whatever the period.
        let fresh = Coverage {
            oldest_sample: Some(5),
            ..Coverage::default()
        };
        let all = segments(day, 2 * day, &fresh);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].table, Table::Sample);
        // Kept marks, where a file has them, come before the oldest rows: samples kept from
        // the start read every hour rolled up since; a removal's cut in mid-hour leaves that
        // hour to the hour table.
        let kept = Coverage {
            samples_kept_from: Some(0),
            hours_kept_from: Some(0),
            ..c
        };
        let segs = segments(day + 1800, 11 * day, &kept);
        assert_eq!(
            segs,
            vec![Segment {
                table: Table::Sample,
                from: day + 1800,
                to: 11 * day
            }]
        );
        let cut = Coverage {
            samples_kept_from: Some(9 * day + 100),
            ..kept
        };
        assert_eq!(
            segments(9 * day, 11 * day, &cut),
            vec![
                Segment {
                    table: Table::Sample,
                    from: 9 * day + 3600,
                    to: 11 * day
                },
                Segment {
                    table: Table::Hour,
                    from: 9 * day,
                    to: 9 * day + 3600
                },
            ]
        );
    }
}
