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
    three_days(&mut store, start);
    let before = store.used_bytes().unwrap();
    let small = Retention {
        max_bytes: before / 3,
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
    assert_eq!(rows.len(), 2);
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
