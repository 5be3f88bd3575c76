//! The fault events in the history database (table `events`, `schema::create_events`):
//! written by the daemon alone (`Writer`), read by `cgroupctl events` (root), by the daemon
//! for a customer's `me` (its own events only), erased by `cgroupctl remove`.
//!
//! - Bounded: the events' JSON together stays within `[events] history_size`, shared between
//!   the users: over it, the user whose events take the most bytes loses its oldest first
//!   (`event_bytes`), so a customer that makes its own faults all day pushes out only
//!   its own history, never its neighbours' OOM kills. An event is stored with its
//!   customer-chosen text cut (`events::cut`); one still larger than half the bound loses its
//!   last processes, then its last OOM victims, until it fits.
//! - On upgrade the daemon imports the ring files older versions wrote (`import_ring`) once:
//!   the import skips what the database already holds, so a crash between the import and the
//!   ring's removal never makes an event appear twice.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::events::cut::cap_event;
use crate::events::legacy_ring::{self, HistoryError};
use crate::events::{Event, FaultKind};

use super::error::{HistoryDbError, SqlContext};
use super::event_bytes::Holdings;
use super::store::{check_files, Store};

/// How long `remove` waits for the daemon's write in progress.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// An event as stored, with its sequence number (increasing, never given twice).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub seq: u64,
    pub event: Event,
}

/// What `cgroupctl events` asks for.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user: Option<String>,
    pub since_ms: u64,
    pub kinds: Vec<FaultKind>,
    /// Only events after this sequence number (`--follow`).
    pub after_seq: u64,
}

/// The events a reader got, and how many stored bodies did not parse (a damaged file).
#[derive(Debug, Default)]
pub struct Listed {
    pub events: Vec<Recorded>,
    pub unreadable: usize,
}

/// The JSON `event` is stored as: its customer-chosen text cut, and at most half the bound
/// (its last processes, then its last OOM victims, dropped until it fits).
fn body_of(event: &Event, bound: u64) -> String {
    let half = usize::try_from(bound / 2).unwrap_or(usize::MAX);
    let mut event = event.clone();
    cap_event(&mut event);
    let mut body = serde_json::to_string(&event).unwrap_or_default();
    while body.len() > half && (event.processes.pop().is_some() || event.killed.pop().is_some()) {
        body = serde_json::to_string(&event).unwrap_or_default();
    }
    body
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The daemon's end: adds events, keeps the bound.
pub struct Writer {
    store: Store,
    bound: u64,
    /// The bytes of the bodies stored, by user: as last counted plus what this writer added
    /// and deleted since (`remove` may have taken some meanwhile: counted again before
    /// anything is deleted when another connection wrote since).
    held: Holdings,
    /// uid of each name, asked of NSS once per name (-1: unknown).
    uids: HashMap<String, i64>,
}

impl Writer {
    /// Opens (making it when missing) the database at `path` for events bounded by `bound`
    /// bytes.
    pub fn open(path: &Path, bound: u64) -> Result<Writer, HistoryDbError> {
        let store = Store::open_writer(path)?;
        let held = Holdings::count(&store.conn, &store.path)?;
        Ok(Writer {
            store,
            bound,
            held,
            uids: HashMap::new(),
        })
    }

    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// A reloaded `[events] history_size`: applied at the next event.
    pub fn set_bound(&mut self, bound: u64) {
        self.bound = bound;
    }

    #[cfg(test)]
    fn count_bytes(&self) -> Result<u64, HistoryDbError> {
        let n: i64 = self
            .store
            .conn
            .query_row(
                "SELECT coalesce(sum(length(CAST(body AS BLOB))), 0) FROM events",
                [],
                |r| r.get(0),
            )
            .sql(&self.store.path, "count the events' bytes")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn uid_of(&mut self, name: &str) -> i64 {
        *self.uids.entry(name.to_string()).or_insert_with(|| {
            crate::nss::lookup_user(name)
                .map(|u| i64::from(u.uid))
                .unwrap_or(-1)
        })
    }

    /// How long `add` waits for another connection's write (the daemon's own rollup) before
    /// it fails with a busy error (`HistoryDbError::is_busy`).
    pub fn set_busy_wait(&self, wait: Duration) -> Result<(), HistoryDbError> {
        self.store
            .conn
            .busy_timeout(wait)
            .sql(&self.store.path, "set the busy timeout")
    }

    /// Adds one event; its sequence number. All or nothing (one transaction, the write lock
    /// taken first): an error leaves the database as it was, so the same event can be added
    /// again later without appearing twice.
    pub fn add(&mut self, event: &Event) -> Result<u64, HistoryDbError> {
        let path = self.store.path.clone();
        let bytes = self.held.total();
        self.store
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .sql(&path, "begin")?;
        let added = self
            .insert(event, false)
            .and_then(|seq| self.keep_bound().map(|()| seq.unwrap_or(0)))
            .and_then(|seq| {
                self.store
                    .conn
                    .execute_batch("COMMIT")
                    .sql(&path, "commit")
                    .map(|()| seq)
            });
        if added.is_err() {
            // Nothing of it stays: the count as it was, and no user id learnt inside it.
            let _ = self.store.conn.execute_batch("ROLLBACK");
            self.held.rolled_back(bytes);
            self.store.forget_ids();
        }
        added
    }

    /// Inserts `event` (with `only_new`: unless the same event is there already); its
    /// sequence number, `None` when it was there.
    fn insert(&mut self, event: &Event, only_new: bool) -> Result<Option<u64>, HistoryDbError> {
        let uid = self.uid_of(&event.user);
        let user = self.store.user_id(&event.user, uid)?;
        let body = body_of(event, self.bound);
        let path = self.store.path.clone();
        let params = rusqlite::params![to_i64(event.time_ms), user, event.kind.name(), body];
        let added = if only_new {
            self.store
                .conn
                .execute(
                    "INSERT INTO events (at_ms, user, kind, body) SELECT ?1, ?2, ?3, ?4 \
                     WHERE NOT EXISTS (SELECT 1 FROM events WHERE at_ms = ?1 AND user = ?2 \
                     AND kind = ?3 AND body = ?4)",
                    params,
                )
                .sql(&path, "add an event")?
        } else {
            self.store
                .conn
                .execute(
                    "INSERT INTO events (at_ms, user, kind, body) VALUES (?1, ?2, ?3, ?4)",
                    params,
                )
                .sql(&path, "add an event")?
        };
        if added == 0 {
            return Ok(None);
        }
        self.held.added(user, body.len() as u64);
        Ok(u64::try_from(self.store.conn.last_insert_rowid()).ok())
    }

    /// Keeps the events within the bound: the user holding the most bytes loses its oldest
    /// first (`Holdings::keep_bound`).
    fn keep_bound(&mut self) -> Result<(), HistoryDbError> {
        self.held
            .keep_bound(&self.store.conn, &self.store.path, self.bound)
    }

    /// Imports the ring files older versions kept in `dir` (one transaction), then removes
    /// them. An event the database holds already (an import a crash interrupted before the
    /// files went) is not added again; a damaged record is skipped, as the old reader did.
    pub fn import_ring(&mut self, dir: &Path) -> Result<Imported, ImportError> {
        let contents = match legacy_ring::read(dir) {
            Ok(c) => c,
            Err(HistoryError::Missing { .. }) => return Ok(Imported::default()),
            Err(e) => return Err(e.into()),
        };
        let path = self.store.path.clone();
        let mut imported = Imported {
            skipped: contents.skipped,
            ..Imported::default()
        };
        self.store
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .sql(&path, "begin the import")?;
        let bytes_before = self.held.total();
        let mut all = || -> Result<(), HistoryDbError> {
            for stored in &contents.events {
                match self.insert(&stored.event, true)? {
                    Some(_) => imported.added += 1,
                    None => imported.present += 1,
                }
            }
            self.keep_bound()
        };
        let done = all().and_then(|()| {
            self.store
                .conn
                .execute_batch("COMMIT")
                .sql(&path, "commit the import")
        });
        if let Err(e) = done {
            let _ = self.store.conn.execute_batch("ROLLBACK");
            self.held.rolled_back(bytes_before);
            return Err(e.into());
        }
        imported.dir_removed = legacy_ring::remove(dir)?;
        Ok(imported)
    }
}

/// What an import of the old ring did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Imported {
    pub added: usize,
    /// Events the database held already.
    pub present: usize,
    /// Damaged records skipped.
    pub skipped: usize,
    /// The directory went too (false: something else is in it; its ring files went).
    pub dir_removed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the old event ring: {0}")]
    Ring(#[from] HistoryError),
    #[error("{0}")]
    Db(#[from] HistoryDbError),
}

/// A read-only connection; `None` when there is no database, or one the daemon has not yet
/// brought to the version with events (nothing recorded there yet).
fn open_reader(path: &Path) -> Result<Option<Store>, HistoryDbError> {
    let store = match Store::open_reader(path) {
        Ok(s) => s,
        Err(HistoryDbError::Missing { .. } | HistoryDbError::OlderSchema { .. }) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Ok(has_events_table(&store.conn, path)?.then_some(store))
}

/// Whether the file has the events table (a file of an older version has none yet).
fn has_events_table(conn: &Connection, path: &Path) -> Result<bool, HistoryDbError> {
    super::schema::has_table(conn, path, "events")
}

fn collect(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    path: &Path,
) -> Result<Listed, HistoryDbError> {
    let mut listed = Listed::default();
    let mut rows = stmt.query(params).sql(path, "read the events")?;
    while let Some(r) = rows.next().sql(path, "read the events")? {
        let seq: i64 = r.get(0).sql(path, "read an event")?;
        let body: String = r.get(1).sql(path, "read an event")?;
        match serde_json::from_str::<Event>(&body) {
            Ok(event) => listed.events.push(Recorded {
                seq: u64::try_from(seq).unwrap_or(0),
                event,
            }),
            Err(_) => listed.unreadable += 1,
        }
    }
    Ok(listed)
}

/// The events `filter` keeps, oldest first (`cgroupctl events`; root: the file is root's).
pub fn list(path: &Path, filter: &Filter) -> Result<Listed, HistoryDbError> {
    let Some(store) = open_reader(path)? else {
        return Ok(Listed::default());
    };
    let kinds: Vec<String> = filter
        .kinds
        .iter()
        .map(|k| format!("'{}'", k.name()))
        .collect();
    let mut sql = String::from(
        "SELECT seq, body FROM events WHERE seq > ?1 AND at_ms >= ?2 \
         AND (?3 IS NULL OR user IN (SELECT id FROM users WHERE name = ?3))",
    );
    if !kinds.is_empty() {
        // Kind names are this build's constants, never the caller's text.
        sql.push_str(&format!(" AND kind IN ({})", kinds.join(", ")));
    }
    sql.push_str(" ORDER BY seq");
    let mut stmt = store.conn.prepare(&sql).sql(path, "read the events")?;
    collect(
        &mut stmt,
        rusqlite::params![
            to_i64(filter.after_seq),
            to_i64(filter.since_ms),
            filter.user.as_deref()
        ],
        path,
    )
}

/// The last `limit` events of `name` with `uid`, oldest first (a customer's `me`: a name
/// given again to another uid does not show its predecessor's events).
pub fn of_customer(
    path: &Path,
    name: &str,
    uid: u32,
    limit: usize,
) -> Result<Vec<Event>, HistoryDbError> {
    let Some(store) = open_reader(path)? else {
        return Ok(Vec::new());
    };
    let Some(id) = store.find_user(name, uid)? else {
        return Ok(Vec::new());
    };
    let mut stmt = store
        .conn
        .prepare("SELECT seq, body FROM events WHERE user = ?1 ORDER BY seq DESC LIMIT ?2")
        .sql(path, "read the events")?;
    let listed = collect(
        &mut stmt,
        rusqlite::params![id, i64::try_from(limit).unwrap_or(i64::MAX)],
        path,
    )?;
    Ok(listed.events.into_iter().rev().map(|r| r.event).collect())
}

fn open_rw(path: &Path) -> Result<Option<Connection>, HistoryDbError> {
    if !check_files(path, false)? {
        return Ok(None);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NOFOLLOW
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).sql(path, "open")?;
    conn.busy_timeout(BUSY_WAIT)
        .sql(path, "set the busy timeout")?;
    Ok(has_events_table(&conn, path)?.then_some(conn))
}

/// How many events of `name` (whatever uid it had) the database holds.
pub fn count_of(path: &Path, name: &str) -> Result<u64, HistoryDbError> {
    let Some(conn) = open_rw(path)? else {
        return Ok(0);
    };
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE user IN (SELECT id FROM users WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )
        .sql(path, "count a user's events")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Deletes every event of `name` (whatever uid it had): `cgroupctl remove`, before the
/// identity itself goes (`forget::forget_user`). The number deleted.
pub fn erase_user(path: &Path, name: &str) -> Result<u64, HistoryDbError> {
    let Some(conn) = open_rw(path)? else {
        return Ok(0);
    };
    let n = conn
        .execute(
            "DELETE FROM events WHERE user IN (SELECT id FROM users WHERE name = ?1)",
            [name],
        )
        .sql(path, "delete a user's events")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::legacy_ring::tests::write600;
    use crate::events::legacy_ring::{encode, file_paths, Stored};
    use crate::events::ProcessInfo;

    fn event(n: u64, user: &str) -> Event {
        Event {
            time_ms: 1_000 + n,
            user: user.into(),
            kind: if n % 2 == 0 {
                FaultKind::OomKill
            } else {
                FaultKind::PidsMax
            },
            delta: n,
            limit: None,
            usage: None,
            processes: vec![ProcessInfo {
                pid: 1,
                comm: "php".into(),
                cmdline: "x".repeat(200),
                uid: Some(0),
                rss_bytes: 1,
                cpu_usec: 2,
                cpu_percent: None,
                cgroup: "session-1".into(),
            }],
            killed: Vec::new(),
            from: None,
        }
    }

    fn db() -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db/history.db");
        (tmp, path)
    }

    #[test]
    fn filters_follow_and_the_bound_drops_each_users_oldest_evenly() {
        let (_tmp, path) = db();
        let bound = 64 * 1024;
        let mut w = Writer::open(&path, bound).unwrap();
        let mut last = 0;
        for n in 0..1000 {
            let seq = w
                .add(&event(n, if n % 3 == 0 { "bob" } else { "root" }))
                .unwrap();
            assert!(seq > last);
            last = seq;
            assert!(w.count_bytes().unwrap() <= bound);
        }
        let all = list(&path, &Filter::default()).unwrap();
        assert_eq!(all.unreadable, 0);
        let deltas: Vec<u64> = all.events.iter().map(|r| r.event.delta).collect();
        assert_eq!(*deltas.last().unwrap(), 999, "the newest is kept");
        assert!(deltas[0] > 0, "the oldest went");
        // Each user keeps its newest events, with no gap; bob (a third of the events) and
        // root (two thirds) end up holding about as much, one event at most apart.
        for user in ["bob", "root"] {
            let his: Vec<u64> = all
                .events
                .iter()
                .filter(|r| r.event.user == user)
                .map(|r| r.event.delta)
                .collect();
            let first = his[0];
            let expected: Vec<u64> = (first..1000)
                .filter(|n| (n % 3 == 0) == (user == "bob"))
                .collect();
            assert_eq!(his, expected, "{user}");
        }
        let count = |user: &str| all.events.iter().filter(|r| r.event.user == user).count();
        assert!(count("bob").abs_diff(count("root")) <= 1);
        let bob = list(
            &path,
            &Filter {
                user: Some("bob".into()),
                kinds: vec![FaultKind::PidsMax],
                since_ms: 1_900,
                ..Filter::default()
            },
        )
        .unwrap();
        assert!(!bob.events.is_empty());
        assert!(bob.events.iter().all(|r| r.event.user == "bob"
            && r.event.kind == FaultKind::PidsMax
            && r.event.time_ms >= 1_900));
        let after = list(
            &path,
            &Filter {
                after_seq: last - 2,
                ..Filter::default()
            },
        )
        .unwrap();
        assert_eq!(after.events.len(), 2);
        // A customer's own, by name and uid: root is uid 0, bob is no user here (-1).
        let mine = of_customer(&path, "root", 0, 5).unwrap();
        assert_eq!(mine.len(), 5);
        assert!(mine.iter().all(|e| e.user == "root"));
        assert_eq!(mine.last().unwrap().delta, 998);
        assert!(of_customer(&path, "bob", 1234, 5).unwrap().is_empty());
        // remove: bob's go, the others stay, the numbers go on.
        let bobs = count_of(&path, "bob").unwrap();
        assert!(bobs > 0);
        assert_eq!(erase_user(&path, "bob").unwrap(), bobs);
        assert_eq!(count_of(&path, "bob").unwrap(), 0);
        assert!(w.add(&event(1000, "root")).unwrap() > last);
    }

    #[test]
    fn an_event_refused_while_another_connection_writes_can_be_added_again_once() {
        let (_tmp, path) = db();
        let mut w = Writer::open(&path, 64 * 1024).unwrap();
        w.add(&event(1, "root")).unwrap();
        w.set_busy_wait(Duration::from_millis(50)).unwrap();
        // Another connection in a write transaction: the daemon's rollup of an hour.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = std::time::Instant::now();
        let err = w.add(&event(2, "carol")).unwrap_err();
        assert!(err.is_busy(), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited only its busy wait"
        );
        other.execute_batch("COMMIT").unwrap();
        // Nothing of the refused one is there; added again, it is there once.
        let before: Vec<u64> = list(&path, &Filter::default())
            .unwrap()
            .events
            .iter()
            .map(|r| r.event.delta)
            .collect();
        assert_eq!(before, vec![1]);
        w.add(&event(2, "carol")).unwrap();
        let after = list(&path, &Filter::default()).unwrap().events;
        let deltas: Vec<u64> = after.iter().map(|r| r.event.delta).collect();
        assert_eq!(deltas, vec![1, 2]);
        assert_eq!(count_of(&path, "carol").unwrap(), 1);
        // Errors that are not a busy lock say so.
        let refused = HistoryDbError::Missing { path: path.clone() };
        assert!(!refused.is_busy());
    }

    #[test]
    fn a_snapshot_too_large_loses_processes() {
        let (_tmp, path) = db();
        let bound = 64 * 1024;
        let mut w = Writer::open(&path, bound).unwrap();
        let mut big = event(1, "root");
        big.processes = vec![big.processes[0].clone(); 1000];
        w.add(&big).unwrap();
        let got = list(&path, &Filter::default()).unwrap().events;
        assert_eq!(got.len(), 1);
        let kept = got[0].event.processes.len();
        assert!(kept > 0 && kept < 1000, "{kept}");
    }

    /// The finding: one customer making its own faults with processes named in control bytes
    /// (six bytes of JSON each) filled the bound, and the oldest events of all went, its
    /// neighbours' too.
    #[test]
    fn a_customer_filling_the_history_pushes_out_only_its_own_events() {
        let (_tmp, path) = db();
        let bound = 64 * 1024;
        let mut w = Writer::open(&path, bound).unwrap();
        w.add(&event(0, "alice")).unwrap();
        let hostile = ProcessInfo {
            comm: "\u{1}".repeat(15),
            cmdline: "\u{1}".repeat(512),
            cgroup: vec!["\u{1}".repeat(255); 4].join("/"),
            ..event(0, "mallory").processes[0].clone()
        };
        for n in 1..=200 {
            let mut oversized = event(n, "mallory");
            oversized.processes = vec![hostile.clone(); 50];
            w.add(&oversized).unwrap();
            assert!(w.count_bytes().unwrap() <= bound, "after {n}");
        }
        let all = list(&path, &Filter::default()).unwrap();
        let alice: Vec<u64> = all
            .events
            .iter()
            .filter(|r| r.event.user == "alice")
            .map(|r| r.event.delta)
            .collect();
        assert_eq!(alice, vec![0], "alice's event survives");
        let mallory: Vec<u64> = all
            .events
            .iter()
            .filter(|r| r.event.user == "mallory")
            .map(|r| r.event.delta)
            .collect();
        assert_eq!(mallory.last(), Some(&200), "mallory's newest is kept");
        assert!(mallory[0] > 1, "mallory's oldest went: {mallory:?}");
        assert!(mallory.windows(2).all(|d| d[1] == d[0] + 1), "{mallory:?}");
        // What is stored of each of her processes is within the caps.
        let kept = &all.events.last().unwrap().event.processes[0];
        assert!(kept.cgroup.ends_with('…') && kept.cmdline.ends_with('…'));
        assert!(serde_json::to_string(kept).unwrap().len() < 1_100);
        // Alice's next event makes room from mallory's, not from alice's own.
        w.add(&event(201, "alice")).unwrap();
        assert_eq!(count_of(&path, "alice").unwrap(), 2);
        assert!(w.count_bytes().unwrap() <= bound);
    }

    #[test]
    fn bytes_erased_by_remove_are_counted_again_before_anything_goes() {
        let (_tmp, path) = db();
        let bound = 64 * 1024;
        let mut w = Writer::open(&path, bound).unwrap();
        let mut n = 0;
        while w.count_bytes().unwrap() + 1_000 < bound {
            w.add(&event(n, if n % 2 == 0 { "bob" } else { "carol" }))
                .unwrap();
            n += 1;
        }
        let bobs = count_of(&path, "bob").unwrap();
        // `cgroupctl remove carol`, another connection: the writer's own count still has her
        // bytes, and would make bob's oldest go for room that is there.
        assert!(erase_user(&path, "carol").unwrap() > 0);
        for _ in 0..3 {
            w.add(&event(n, "bob")).unwrap();
            n += 1;
        }
        assert_eq!(
            count_of(&path, "bob").unwrap(),
            bobs + 3,
            "none of bob's went"
        );
        assert_eq!(
            list(&path, &Filter::default()).unwrap().events[0]
                .event
                .delta,
            0
        );
    }

    #[test]
    fn the_ring_is_imported_once_damage_skipped() {
        use std::os::unix::fs::DirBuilderExt;
        let (tmp, path) = db();
        let ring = tmp.path().join("events");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&ring)
            .unwrap();
        let stored = |n: u64| {
            encode(&Stored {
                seq: n,
                event: event(n, "root"),
            })
        };
        let mut damaged = stored(3);
        damaged[40] ^= 1;
        let [f0, f1] = file_paths(&ring);
        write600(&f0, [stored(1), stored(2)].concat());
        write600(&f1, [damaged, stored(4)].concat());
        let mut w = Writer::open(&path, 1 << 20).unwrap();
        w.add(&event(0, "root")).unwrap();
        let got = w.import_ring(&ring).unwrap();
        assert_eq!(
            got,
            Imported {
                added: 3,
                present: 0,
                skipped: 1,
                dir_removed: true
            }
        );
        assert!(!ring.exists());
        let deltas: Vec<u64> = list(&path, &Filter::default())
            .unwrap()
            .events
            .iter()
            .map(|r| r.event.delta)
            .collect();
        assert_eq!(deltas, vec![0, 1, 2, 4]);
        // Interrupted before the files went: written again, nothing is added twice.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&ring)
            .unwrap();
        write600(&f0, [stored(1), stored(2)].concat());
        let again = w.import_ring(&ring).unwrap();
        assert_eq!((again.added, again.present), (0, 2));
        assert_eq!(list(&path, &Filter::default()).unwrap().events.len(), 4);
        assert_eq!(w.import_ring(&ring).unwrap(), Imported::default());
    }
}
