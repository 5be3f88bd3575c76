//! The store with explicit times: samples, rollups, retention, the bound, and the queries.

use super::row::{Row, Table};
use super::{Retention, Store};

fn row(cpu: u64, mem: u64, oom: u64) -> Row {
    Row {
        samples: 1,
        secs: 60,
        cpu_usec: Some(cpu),
        memory_sum: Some(mem),
        memory_peak: Some(mem),
        oom_kills: Some(oom),
        ..Row::default()
    }
}

const KEEP: Retention = Retention {
    sample_secs: 2 * 86_400,
    hour_secs: 30 * 86_400,
    day_secs: 365 * 86_400,
    max_bytes: 256 << 20,
};

/// Three days of samples of two users, one a minute, maintained every hour as the daemon does.
fn three_days(store: &mut Store, start: i64) -> (i64, i64) {
    let a = store.user_id("alice", 1001).unwrap();
    let b = store.user_id("bob", 1002).unwrap();
    for m in 0..3 * 1440 {
        let at = start + m * 60;
        store
            .insert(
                Table::Sample,
                at,
                &[
                    (a, row(1_000_000, 100 << 20, u64::from(m % 60 == 0))),
                    (b, row(10, 1 << 20, 0)),
                ],
            )
            .unwrap();
        if at % 3600 == 0 {
            store.maintain(at, &KEEP).unwrap();
        }
    }
    (a, b)
}

#[test]
fn rollups_keep_the_totals_and_retention_drops_old_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/h.db");
    let mut store = Store::open_writer(&path).unwrap();
    let start = 1_800_000_000 - 1_800_000_000 % 86_400;
    let (a, _) = three_days(&mut store, start);
    let end = start + 3 * 86_400;
    store.maintain(end, &KEEP).unwrap();
    // The first day's samples are gone (older than two days), its hours and day remain.
    let oldest = store.oldest(Table::Sample).unwrap().unwrap();
    assert!(oldest >= end - KEEP.sample_secs, "{oldest}");
    assert_eq!(store.oldest(Table::Day).unwrap(), Some(start));
    // Totals over the whole time are exact: every minute once, whichever table holds it.
    let totals = store.totals(start, end).unwrap();
    assert_eq!(totals.len(), 2);
    let alice = &totals[0];
    assert_eq!((alice.user.as_str(), alice.uid), ("alice", 1001));
    assert_eq!(alice.row.samples, 3 * 1440);
    assert_eq!(alice.row.cpu_usec, Some(3 * 1440 * 1_000_000));
    assert_eq!(alice.row.oom_kills, Some(3 * 24));
    assert_eq!(alice.row.memory_avg(), Some(100 << 20));
    assert_eq!(alice.row.memory_peak, Some(100 << 20));
    assert!((alice.row.cpu_percent().unwrap() - 100.0 / 60.0).abs() < 1e-9);
    // Alice's rows over the last 12 h come from the samples, summed into hours.
    let rows = store.user_rows(a, end - 12 * 3600, end, 200).unwrap();
    assert_eq!(rows.len(), 12, "{rows:?}");
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    // Over three days: hours and days, never an interval twice.
    let rows = store.user_rows(a, start, end, 1000).unwrap();
    let samples: u64 = rows.iter().map(|(_, r)| r.samples).sum();
    assert_eq!(samples, 3 * 1440);
}

#[test]
fn the_bound_removes_the_oldest_rolled_up_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/h.db");
    let mut store = Store::open_writer(&path).unwrap();
    let start = 1_800_000_000 - 1_800_000_000 % 86_400;
    // Enough users that the packed samples fill many pages.
    let users: Vec<i64> = (0..40)
        .map(|i| store.user_id(&format!("u{i}"), 2000 + i).unwrap())
        .collect();
    for m in 0..3 * 1440 {
        let at = start + m * 60;
        let rows: Vec<(i64, Row)> = users
            .iter()
            .map(|u| (*u, row(m as u64 * 977 + *u as u64, (m as u64) << 12, 0)))
            .collect();
        store.insert(Table::Sample, at, &rows).unwrap();
        if at % 3600 == 0 {
            store.maintain(at, &KEEP).unwrap();
        }
    }
    let before = store.used_bytes().unwrap();
    // The bound asks half the packed samples' pages back.
    let samples = store.table_bytes("sample_pack").unwrap();
    let small = Retention {
        max_bytes: before - samples / 2,
        ..KEEP
    };
    let done = store.maintain(start + 3 * 86_400, &small).unwrap();
    assert!(done.evicted > 0);
    assert!(store.used_bytes().unwrap() <= small.max_bytes);
    assert!(
        store.file_bytes() <= small.max_bytes + 64 * 1024,
        "{}",
        store.file_bytes()
    );
    // The newest samples stay.
    let last = start + 3 * 86_400 - 60;
    let rows = store.totals(last, last + 60).unwrap();
    assert_eq!(rows.len(), users.len());
}

#[test]
fn the_file_is_root_only_and_symlinks_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/h.db");
    drop(Store::open_writer(&path).unwrap());
    // Readable once the daemon's connection is gone (no -wal or -shm left beside it).
    assert!(Store::open_reader(&path)
        .unwrap()
        .totals(0, 1)
        .unwrap()
        .is_empty());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let link = tmp.path().join("state/link.db");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(Store::open_writer(&link).is_err());
    assert!(Store::open_reader(&link).is_err());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(Store::open_reader(&path).is_err());
    assert!(matches!(
        Store::open_reader(&tmp.path().join("state/none.db")),
        Err(super::HistoryDbError::Missing { .. })
    ));
}

#[test]
fn a_customer_gets_its_own_rows_only() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/h.db");
    let mut store = Store::open_writer(&path).unwrap();
    let start = 1_800_000_000 - 1_800_000_000 % 86_400;
    three_days(&mut store, start);
    // A later bob with another uid: a new identity.
    let other_bob = store.user_id("bob", 2002).unwrap();
    let end = start + 3 * 86_400;
    store
        .insert(Table::Sample, end, &[(other_bob, row(5, 5, 0))])
        .unwrap();
    let me = super::customer::answer(&path, "alice", 1001, 86_400, end);
    assert_eq!(me.rows.len(), 24, "{me:?}");
    assert!(me.rows.iter().any(|r| r.limit_hits > 0));
    assert_eq!(me.rows[0].memory_bytes, Some(100 << 20));
    let bob = super::customer::answer(&path, "bob", 2002, 3600, end + 60);
    assert_eq!(bob.rows.len(), 1);
    assert_eq!(bob.rows[0].memory_bytes, Some(5));
    let nobody = super::customer::answer(&path, "alice", 4242, 86_400, end);
    assert!(nobody.rows.is_empty() && nobody.note.is_none());
    let missing =
        super::customer::answer(&tmp.path().join("state/none.db"), "alice", 1001, 60, end);
    assert!(missing.note.is_some());
}

/// A table's rows: (time, user, row).
type Rows = Vec<(i64, i64, Row)>;

/// Every row of `table`, plain and packed, by (time, user).
fn all_rows(store: &Store, table: Table) -> Rows {
    let mut out = Vec::new();
    super::pack::each_row(
        &store.conn,
        &store.path,
        table,
        None,
        i64::MIN,
        i64::MAX,
        |at, user, row| out.push((at, user, *row)),
    )
    .unwrap();
    out.sort_by_key(|(at, user, _)| (*at, *user));
    out
}

#[test]
fn packed_samples_answer_to_the_second() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/h.db");
    let mut store = Store::open_writer(&path).unwrap();
    let start = 1_800_000_000 - 1_800_000_000 % 86_400;
    let a = store.user_id("alice", 1001).unwrap();
    let b = store.user_id("bob", 1002).unwrap();
    let mut written = Vec::new();
    // A day and a half, the last hour not rolled up; bob idle every third minute.
    for m in 0..36 * 60 + 25 {
        let at = start + m * 60;
        let mut rows = vec![(a, row(m as u64 * 1000 + 7, (m as u64) << 20, 0))];
        if m % 3 != 0 {
            rows.push((b, row(u64::from(u32::MAX) * 1000, 0, 1)));
        }
        store.insert(Table::Sample, at, &rows).unwrap();
        written.extend(rows.into_iter().map(|(u, r)| (at, u, r)));
        if at % 3600 == 0 {
            store.maintain(at, &KEEP).unwrap();
        }
    }
    // Rolled-up hours are packed; the plain table keeps the hour not rolled up.
    let plain: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM sample", [], |r| r.get(0))
        .unwrap();
    assert_eq!(plain, 2 * 25 - 25 / 3 - 1, "one hour's rows at most");
    assert_eq!(all_rows(&store, Table::Sample).len(), written.len());
    // Any period, cut at any minute, inside packed hours or across the one not rolled up.
    let end = start + (36 * 60 + 25) * 60;
    for (from, to) in [
        (start, end),
        (start + 7 * 60, start + 3600 + 13 * 60),
        (start + 35 * 3600 + 59 * 60, end),
        (end - 10 * 60, end + 3600),
        (start + 3600, start + 7200),
    ] {
        let mut expected: std::collections::BTreeMap<i64, Row> = Default::default();
        for (at, user, r) in &written {
            if *at >= from && *at < to {
                expected.entry(*user).or_default().merge(r);
            }
        }
        let got: Vec<Row> = store
            .totals(from, to)
            .unwrap()
            .into_iter()
            .map(|t| t.row)
            .collect();
        let expected: Vec<Row> = expected.into_values().collect();
        assert_eq!(got, expected, "{from}..{to}");
    }
}

/// A version 1 file holding `rows` of each table (written as version 1 did) and `marks`.
fn version_1_file(path: &std::path::Path, tables: &[(Table, Rows)], marks: (i64, i64)) {
    use super::row::VALUE_COLUMNS;
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; BEGIN; {} \
         INSERT INTO users (id, name, uid) VALUES (1, 'alice', 1001), (2, 'bob', 1002); \
         INSERT INTO meta VALUES ('hour_until', {}), ('day_until', {}); \
         PRAGMA user_version = 1; COMMIT;",
        super::schema::create_v1(),
        marks.0,
        marks.1
    ))
    .unwrap();
    for (table, rows) in tables {
        let marks = vec!["?"; VALUE_COLUMNS.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} (at, user, {}) VALUES (?, ?, {marks})",
            table.name(),
            VALUE_COLUMNS.join(", ")
        );
        for (at, user, r) in rows {
            let mut params = vec![Some(*at), Some(*user)];
            params.extend(r.values());
            conn.execute(&sql, rusqlite::params_from_iter(params))
                .unwrap();
        }
    }
    drop(conn);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_version_1_file_is_converted_and_answers_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    // The rows of three days as the daemon keeps them, and the answers they give.
    let path = tmp.path().join("state/h.db");
    let mut store = Store::open_writer(&path).unwrap();
    let start = 1_800_000_000 - 1_800_000_000 % 86_400;
    let (a, b) = three_days(&mut store, start);
    assert_eq!((a, b), (1, 2));
    let end = start + 3 * 86_400;
    let tables: Vec<(Table, Rows)> = Table::ALL
        .iter()
        .map(|t| (*t, all_rows(&store, *t)))
        .collect();
    let marks = (
        store.meta(super::schema::META_HOUR_UNTIL).unwrap(),
        store.meta(super::schema::META_DAY_UNTIL).unwrap(),
    );
    let periods = [
        (start, end),
        (end - 86_400 - 7 * 60, end - 3600 + 60),
        (end - 300, end),
    ];
    let answers = |s: &Store| {
        periods
            .iter()
            .map(|(f, t)| {
                (
                    s.totals(*f, *t).unwrap(),
                    s.user_rows(a, *f, *t, 200).unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let expected = answers(&store);
    drop(store);

    // The same rows in a version 1 file: cgroupctl reads it as it is (and `remove` forgets
    // in it) until the daemon converts it.
    let old = tmp.path().join("state/v1.db");
    version_1_file(&old, &tables, marks);
    assert_eq!(answers(&Store::open_reader(&old).unwrap()), expected);
    let copy = tmp.path().join("state/v1-copy.db");
    version_1_file(&copy, &tables, marks);
    assert!(super::forget::forget_user(&copy, "bob").unwrap() > 0);
    let left = Store::open_reader(&copy)
        .unwrap()
        .totals(start, end)
        .unwrap();
    assert_eq!(left.len(), 1);
    let store = Store::open_writer(&old).unwrap();
    let version: i64 = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::schema::SCHEMA_VERSION);
    for (table, rows) in &tables {
        assert_eq!(&all_rows(&store, *table), rows, "{}", table.name());
    }
    assert_eq!(answers(&store), expected);
    let plain: i64 = store
        .conn
        .query_row(
            "SELECT COUNT(*) FROM sample WHERE at < ?1",
            [marks.0],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(plain, 0, "rolled-up samples are packed");
    drop(store);
    assert!(Store::open_reader(&old).is_ok());

    // A newer version than this build's stays refused, by the daemon and by cgroupctl.
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA user_version = {};",
        super::schema::SCHEMA_VERSION + 1
    ))
    .unwrap();
    drop(conn);
    assert!(matches!(
        Store::open_writer(&old),
        Err(super::HistoryDbError::NewerSchema { .. })
    ));
    assert!(matches!(
        Store::open_reader(&old),
        Err(super::HistoryDbError::NewerSchema { .. })
    ));
}

#[test]
fn a_damaged_blob_is_an_error_naming_the_user_and_hour() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/h.db");
    let mut store = Store::open_writer(&path).unwrap();
    let start = 1_800_000_000 - 1_800_000_000 % 86_400;
    let (a, _) = three_days(&mut store, start);
    let hour = start + 2 * 86_400 + 4 * 3600;
    let n = store
        .conn
        .execute(
            "UPDATE sample_pack SET data = substr(data, 1, 9) WHERE bucket = ?1 AND user = ?2",
            [hour, a],
        )
        .unwrap();
    assert_eq!(n, 1);
    let e = store.totals(start, start + 3 * 86_400).unwrap_err();
    assert!(matches!(e, super::HistoryDbError::Damaged { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("alice"), "{text}");
    assert!(
        text.contains(&crate::time::utc_text(hour as u64 * 1000)),
        "{text}"
    );
    // The other user's answers and the hourly rows are still read.
    let end = start + 3 * 86_400;
    assert_eq!(
        store.user_rows(a, end - 86_400, end, 200).unwrap().len(),
        24
    );
}

/// A file the daemon has not upgraded yet (version 1: no events table) has no events for
/// `cgroupctl events`, `remove` or a customer, rather than an error; upgraded, it gets the
/// table and keeps its usage rows.
#[test]
fn a_file_without_the_events_table_has_no_events_until_it_is_upgraded() {
    use super::events;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = dir.join("h.db");
    version_1_file(&path, &[], (0, 0));
    let listed = events::list(&path, &events::Filter::default()).unwrap();
    assert!(listed.events.is_empty());
    assert_eq!(events::count_of(&path, "alice").unwrap(), 0);
    assert_eq!(events::erase_user(&path, "alice").unwrap(), 0);
    drop(Store::open_writer(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert!(super::schema::has_table(&conn, &path, "events").unwrap());
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::schema::SCHEMA_VERSION);
    let users: i64 = conn
        .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 2);
}

/// Whether this process holds a POSIX lock on byte 128 of the -shm file (SQLite's "dead man
/// switch"), as the kernel answers F_OFD_GETLK for a write lock on that byte through `query`,
/// a descriptor of the file that the test keeps open until it is done (closing it would drop
/// the locks itself): an open file description's query conflicts with this process's own
/// record locks and names their holder. Not /proc/locks: it is read a few lines at a time, and
/// between two reads the list moves as other tests take and release their locks, so a line
/// can be skipped (this test failed in CI once that way).
fn holds_dms_lock(query: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain C struct; every field is an integer, zero is valid.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 128;
    lock.l_len = 1;
    // SAFETY: F_OFD_GETLK reads and writes the flock the pointer names, which outlives the call.
    let rc = unsafe { libc::fcntl(query.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    assert_eq!(rc, 0, "F_OFD_GETLK: {}", std::io::Error::last_os_error());
    lock.l_type != libc::F_UNLCK as libc::c_short && lock.l_pid == std::process::id() as libc::pid_t
}

/// The daemon opens the file from three places (its sampler, its fault events, its answers to
/// `me`): the later ones must leave the first connection's locks as they were. Closing any
/// descriptor of a file drops every POSIX lock the process holds on it; without its lock on
/// the -shm file's "dead man switch" byte (128), the daemon looked gone to the next
/// `cgroupctl report`, which truncated the -shm file under the daemon's mapping of it: the
/// daemon died of SIGBUS (the Debian 12 VM, scenario 20).
#[test]
fn opening_more_connections_keeps_the_first_ones_locks() {
    use super::events;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/h.db");
    let mut store = Store::open_writer(&path).unwrap();
    let a = store.user_id("alice", 1001).unwrap();
    store
        .insert(Table::Sample, 1_800_000_000, &[(a, row(1, 1, 0))])
        .unwrap();
    let shm = tmp.path().join("state/h.db-shm");
    let query = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&shm)
        .unwrap();
    assert!(
        holds_dms_lock(&query),
        "the writer holds no lock on the -shm file's byte 128"
    );
    let reader = Store::open_reader(&path).unwrap();
    drop(reader);
    let writer = events::Writer::open(&path, 1 << 20).unwrap();
    drop(writer);
    assert!(
        holds_dms_lock(&query),
        "the first writer's lock on the -shm file's byte 128 was dropped"
    );
    store
        .insert(Table::Sample, 1_800_000_060, &[(a, row(2, 1, 0))])
        .unwrap();
}

/// A new file's first hour is only partly sampled (the daemon started mid-hour), and its
/// samples are all there is: a period that starts in that hour reads those samples, never the
/// hour's rollup of them (which counts the whole hour: in the Debian 12 VM, a customer's
/// CPU hogs of twenty minutes before the period came first in a two-minute report once the
/// hour had been rolled up).
#[test]
fn a_new_files_first_hour_is_read_from_its_samples_once_rolled_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&tmp.path().join("state/h.db")).unwrap();
    let hour0 = 1_800_000_000; // a whole hour
    let a = store.user_id("alice", 1001).unwrap();
    // Samples from 20 minutes into the hour to 10 minutes into the next: alice busy (60 s
    // of CPU a minute) until 45 minutes in, quiet (1 s a minute) after.
    for m in 20..70 {
        let at = hour0 + m * 60;
        let cpu = if m < 45 { 60_000_000 } else { 1_000_000 };
        store
            .insert(Table::Sample, at, &[(a, row(cpu, 1 << 20, 0))])
            .unwrap();
        store.maintain(at, &KEEP).unwrap();
    }
    assert_eq!(
        store.meta(super::schema::META_HOUR_UNTIL).unwrap(),
        hour0 + 3600
    );
    // From 50 minutes in: samples 50..69, 20 quiet minutes.
    let from = hour0 + 50 * 60;
    let totals = store.totals(from, hour0 + 70 * 60).unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].row.samples, 20, "{:?}", totals[0].row);
    assert_eq!(totals[0].row.cpu_usec, Some(20 * 1_000_000));
}

#[test]
fn a_customers_answer_waits_for_a_lock_held_a_moment_instead_of_saying_cannot_be_read() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/h.db");
    let mut store = Store::open_writer(&path).unwrap();
    let start = 1_800_000_000 - 1_800_000_000 % 86_400;
    let alice = store.user_id("alice", 1001).unwrap();
    store
        .insert(Table::Sample, start, &[(alice, row(5, 5, 0))])
        .unwrap();
    drop(store);
    // Another connection holds the file's lock for a moment (exclusive locking mode: in WAL
    // mode the way a reader meets SQLITE_BUSY when it starts, as it can while the writer
    // checkpoints and resets the log). The reader waits (rusqlite's default busy timeout of
    // 5 s on every connection it opens) rather than answering "cannot be read right now".
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .unwrap();
    let (held, taken) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        held.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
        drop(other);
    });
    taken.recv().unwrap();
    let me = super::customer::answer(&path, "alice", 1001, 3600, start + 60);
    holder.join().unwrap();
    assert!(me.note.is_none(), "{me:?}");
    assert_eq!(me.rows.len(), 1, "{me:?}");
}
