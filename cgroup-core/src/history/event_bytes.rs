//! Who holds how many bytes of the fault events, and which events go when they are over
//! `[events] history_size`: the user holding the most loses its oldest first.
//!
//! Before, the oldest events of all went, whoever they belonged to: one customer making its
//! own faults once per `repeat_after` with processes named in control bytes (about 90 KB an
//! event) filled the 16 MB in under half an hour, and every other customer's OOM kills and
//! limit hits went from `cgroupctl events` and from their own `cgroupctl me`.
//!
//! The bytes of each user are counted with one pass over the events, then kept up to date
//! by the writer's own inserts and deletions; they are counted again only when another
//! connection committed since (`PRAGMA data_version`: `cgroupctl remove` erasing a user's
//! events, or the daemon's usage sampler, once an interval). An event over the bound then
//! costs one indexed lookup per event deleted, not a pass over all of them, whatever the
//! number of users.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::error::{HistoryDbError, SqlContext};

/// The bytes of the events' bodies (their JSON), by user (an identity of `users`).
#[derive(Debug, Default)]
pub(super) struct Holdings {
    by_user: HashMap<i64, u64>,
    total: u64,
    /// `PRAGMA data_version` when they were counted; `None`: to be counted again (a write of
    /// this connection was rolled back after it had been added here).
    counted_at: Option<i64>,
}

impl Holdings {
    /// Counts them (one pass over the events).
    pub(super) fn count(conn: &Connection, path: &Path) -> Result<Holdings, HistoryDbError> {
        let counted_at = Some(data_version(conn, path)?);
        let mut stmt = conn
            .prepare("SELECT user, sum(length(CAST(body AS BLOB))) FROM events GROUP BY user")
            .sql(path, "count each user's event bytes")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .sql(path, "count each user's event bytes")?;
        let mut by_user = HashMap::new();
        for row in rows {
            let (user, bytes) = row.sql(path, "count each user's event bytes")?;
            by_user.insert(user, u64::try_from(bytes).unwrap_or(0));
        }
        Ok(Holdings {
            total: by_user.values().sum(),
            by_user,
            counted_at,
        })
    }

    /// The bytes of all the events, as counted plus what this connection added since.
    pub(super) fn total(&self) -> u64 {
        self.total
    }

    /// `user` was given an event of `bytes`.
    pub(super) fn added(&mut self, user: i64, bytes: u64) {
        *self.by_user.entry(user).or_insert(0) += bytes;
        self.total += bytes;
    }

    /// What was added since is rolled back: counted again when next needed.
    pub(super) fn rolled_back(&mut self, total_before: u64) {
        self.total = total_before;
        self.counted_at = None;
    }

    /// Keeps the events within `bound`, shared between the users: while they are over it,
    /// the user holding the most bytes loses its oldest event (the newest event of all, the
    /// one just added, never goes). One customer whose faults come all day pushes out only
    /// its own history: a user holding less than an equal share of the bound (the bound over
    /// the number of users with events) loses nothing, and those holding more are cut down
    /// evenly, each from its oldest. Inside the writer's transaction.
    pub(super) fn keep_bound(
        &mut self,
        conn: &Connection,
        path: &Path,
        bound: u64,
    ) -> Result<(), HistoryDbError> {
        if self.total <= bound {
            return Ok(());
        }
        if self.counted_at != Some(data_version(conn, path)?) {
            *self = Holdings::count(conn, path)?;
            if self.total <= bound {
                return Ok(());
            }
        }
        let newest: i64 = conn
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))
            .sql(path, "find the newest event")?;
        // The largest holder on top; of two holding as much, the older identity.
        let mut holders: BinaryHeap<(u64, Reverse<i64>)> = self
            .by_user
            .iter()
            .map(|(user, bytes)| (*bytes, Reverse(*user)))
            .collect();
        while self.total > bound {
            let Some((bytes, Reverse(user))) = holders.pop() else {
                break;
            };
            // None: its only event left is the newest, which stays; the next holder goes on.
            let Some((seq, len)) = oldest_of(conn, path, user, newest)? else {
                continue;
            };
            conn.prepare_cached("DELETE FROM events WHERE seq = ?1")
                .and_then(|mut stmt| stmt.execute([seq]))
                .sql(path, "delete an event")?;
            let left = bytes.saturating_sub(len);
            if left == 0 {
                self.by_user.remove(&user);
            } else {
                self.by_user.insert(user, left);
            }
            self.total = self.total.saturating_sub(len);
            holders.push((left, Reverse(user)));
        }
        Ok(())
    }
}

/// Changes whenever another connection, of this process or another, commits.
fn data_version(conn: &Connection, path: &Path) -> Result<i64, HistoryDbError> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .sql(path, "read the data version")
}

/// The oldest event of `user` before `before`, and its bytes (`events_by_user`).
fn oldest_of(
    conn: &Connection,
    path: &Path,
    user: i64,
    before: i64,
) -> Result<Option<(i64, u64)>, HistoryDbError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, length(CAST(body AS BLOB)) FROM events \
             WHERE user = ?1 AND seq < ?2 ORDER BY seq LIMIT 1",
        )
        .sql(path, "find a user's oldest event")?;
    let found = stmt
        .query_row([user, before], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .optional()
        .sql(path, "find a user's oldest event")?;
    Ok(found.map(|(seq, len)| (seq, u64::try_from(len).unwrap_or(0))))
}
