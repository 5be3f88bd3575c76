//! Where the rows of `sample` and `hour` go once rolled up: one packed blob (`codec`) per
//! user and bucket in `sample_pack` (two hours of samples) and `hour_pack` (two days of
//! hourly rows). The plain tables keep what is not rolled up yet (the current hour's
//! samples, the current day's hours): each sample is its own row the moment it is written,
//! so a crash loses nothing, and the rollup packs the rows it rolled up in the same
//! transaction. Every reader goes through `each_row`, which reads both forms.

use std::path::Path;

use rusqlite::Connection;

use super::codec;
use super::error::{HistoryDbError, SqlContext};
use super::row::{Row, Table, VALUE_COLUMNS};

/// The packed table of `table`, and the seconds of one blob: two hours of samples (120 at
/// one a minute, about 2.4 KB), two days of hourly rows; a blob's own cost (each column's
/// base and widths, about 110 bytes, and its cell) is shared by twice the rows an hour or a
/// day would give it. The rollup of the second hour (day) adds its rows to the blob.
pub(super) fn packed(table: Table) -> Option<(&'static str, i64)> {
    match table {
        Table::Sample => Some(("sample_pack", 2 * 3600)),
        Table::Hour => Some(("hour_pack", 2 * 86_400)),
        Table::Day => None,
    }
}

/// The packed table of `table` when the file has it: a file of version 1 (before the daemon
/// converted it) is read, and its customers forgotten, from its plain rows alone.
pub(super) fn packed_in(
    conn: &Connection,
    path: &Path,
    table: Table,
) -> Result<Option<(&'static str, i64)>, HistoryDbError> {
    let Some((pack, span)) = packed(table) else {
        return Ok(None);
    };
    Ok(super::schema::has_table(conn, path, pack)?.then_some((pack, span)))
}

fn floor(t: i64, bucket: i64) -> i64 {
    t.saturating_sub(t.rem_euclid(bucket))
}

/// The error for a blob that does not decode: names the table, the user and the bucket.
fn damaged(
    conn: &Connection,
    path: &Path,
    pack: &str,
    user: i64,
    at: i64,
    why: &str,
) -> HistoryDbError {
    let name = conn
        .query_row("SELECT name FROM users WHERE id = ?1", [user], |r| {
            r.get::<_, String>(0)
        })
        .unwrap_or_else(|_| format!("user id {user}"));
    HistoryDbError::Damaged {
        path: path.to_path_buf(),
        table: pack.to_string(),
        user: name,
        at: crate::time::utc_text((at.max(0) as u64).saturating_mul(1000)),
        why: why.to_string(),
    }
}

fn decode(
    conn: &Connection,
    path: &Path,
    pack: &str,
    span: i64,
    (bucket, user, data): (i64, i64, Vec<u8>),
) -> Result<Vec<(i64, Row)>, HistoryDbError> {
    codec::decode(bucket, span, &data).map_err(|why| damaged(conn, path, pack, user, bucket, why))
}

/// Calls `f(at, user, row)` for every row of `table` (plain and packed) with `at` in
/// `[lo, hi)`, of `user` only when given.
pub(super) fn each_row(
    conn: &Connection,
    path: &Path,
    table: Table,
    user: Option<i64>,
    lo: i64,
    hi: i64,
    mut f: impl FnMut(i64, i64, &Row),
) -> Result<(), HistoryDbError> {
    let only = if user.is_some() { "AND user = ?3" } else { "" };
    let sql = format!(
        "SELECT at, user, {} FROM {} WHERE at >= ?1 AND at < ?2 {only}",
        VALUE_COLUMNS.join(", "),
        table.name()
    );
    let mut stmt = conn.prepare_cached(&sql).sql(path, "prepare a read")?;
    let mut params = vec![lo, hi];
    params.extend(user);
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .sql(path, "read rows")?;
    while let Some(r) = rows.next().sql(path, "read rows")? {
        let row = Row::from_sql_row(r, 2).sql(path, "read rows")?;
        f(
            r.get(0).sql(path, "read rows")?,
            r.get(1).sql(path, "read rows")?,
            &row,
        );
    }
    let Some((pack, span)) = packed_in(conn, path, table)? else {
        return Ok(());
    };
    let sql =
        format!("SELECT bucket, user, data FROM {pack} WHERE bucket >= ?1 AND bucket < ?2 {only}");
    let mut stmt = conn.prepare_cached(&sql).sql(path, "prepare a read")?;
    params[0] = floor(lo, span);
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .sql(path, "read packed rows")?;
    while let Some(r) = rows.next().sql(path, "read packed rows")? {
        let blob: (i64, i64, Vec<u8>) = (
            r.get(0).sql(path, "read packed rows")?,
            r.get(1).sql(path, "read packed rows")?,
            r.get(2).sql(path, "read packed rows")?,
        );
        let user = blob.1;
        for (at, row) in decode(conn, path, pack, span, blob)? {
            if at >= lo && at < hi {
                f(at, user, &row);
            }
        }
    }
    Ok(())
}

/// The oldest row's time in `table`, plain or packed.
pub(super) fn oldest(
    conn: &Connection,
    path: &Path,
    table: Table,
) -> Result<Option<i64>, HistoryDbError> {
    let plain: Option<i64> = conn
        .query_row(&format!("SELECT MIN(at) FROM {}", table.name()), [], |r| {
            r.get(0)
        })
        .sql(path, "find the oldest row")?;
    let Some((pack, span)) = packed_in(conn, path, table)? else {
        return Ok(plain);
    };
    // The oldest bucket's blobs: the first row of each (a bucket may start late).
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT bucket, user, data FROM {pack} WHERE bucket = (SELECT MIN(bucket) FROM {pack})"
        ))
        .sql(path, "find the oldest row")?;
    let blobs = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .sql(path, "find the oldest row")?
        .collect::<rusqlite::Result<Vec<(i64, i64, Vec<u8>)>>>()
        .sql(path, "find the oldest row")?;
    let mut first = plain;
    for blob in blobs {
        if let Some((at, _)) = decode(conn, path, pack, span, blob)?.first() {
            first = Some(first.map_or(*at, |f| f.min(*at)));
        }
    }
    Ok(first)
}

/// Deletes the rows of `table` older than `before`: plain rows by their time, packed ones a
/// whole blob at a time when every row in it is older, and the blobs that straddle `before`
/// written again with their newer rows only. The number of plain rows, whole blobs and
/// packed rows deleted (more than 0 whenever anything went).
pub(super) fn delete_before(
    conn: &Connection,
    path: &Path,
    table: Table,
    before: i64,
) -> Result<usize, HistoryDbError> {
    let mut n = conn
        .execute(
            &format!("DELETE FROM {} WHERE at < ?1", table.name()),
            [before],
        )
        .sql(path, "remove old rows")?;
    let Some((pack, span)) = packed(table) else {
        return Ok(n);
    };
    n += conn
        .execute(
            &format!("DELETE FROM {pack} WHERE bucket <= ?1 - {span}"),
            [before],
        )
        .sql(path, "remove old rows")?;
    let straddling = {
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT bucket, user, data FROM {pack} WHERE bucket > ?1 - {span} AND bucket < ?1"
            ))
            .sql(path, "read old rows")?;
        let rows = stmt
            .query_map([before], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .sql(path, "read old rows")?;
        rows.collect::<rusqlite::Result<Vec<(i64, i64, Vec<u8>)>>>()
            .sql(path, "read old rows")?
    };
    for blob in straddling {
        let (bucket, user) = (blob.0, blob.1);
        let rows = decode(conn, path, pack, span, blob)?;
        let kept: Vec<(i64, Row)> = rows
            .iter()
            .filter(|(at, _)| *at >= before)
            .copied()
            .collect();
        if kept.len() == rows.len() {
            continue;
        }
        n += rows.len() - kept.len();
        if kept.is_empty() {
            conn.execute(
                &format!("DELETE FROM {pack} WHERE bucket = ?1 AND user = ?2"),
                [bucket, user],
            )
            .sql(path, "remove old rows")?;
        } else {
            conn.execute(
                &format!("UPDATE {pack} SET data = ?3 WHERE bucket = ?1 AND user = ?2"),
                rusqlite::params![bucket, user, codec::encode(bucket, &kept)],
            )
            .sql(path, "remove old rows")?;
        }
    }
    Ok(n)
}

/// Writes one user's rows of one bucket, with the blob already there if any (a row of the
/// same time replaces the one in the blob, as a plain row would).
fn write_blob(
    conn: &Connection,
    path: &Path,
    pack: &str,
    span: i64,
    bucket: i64,
    user: i64,
    rows: Vec<(i64, Row)>,
) -> Result<(), HistoryDbError> {
    let old: Option<Vec<u8>> = conn
        .query_row(
            &format!("SELECT data FROM {pack} WHERE bucket = ?1 AND user = ?2"),
            [bucket, user],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .sql(path, "read a packed row")?;
    let rows = match old {
        None => rows,
        Some(data) => {
            let mut all: std::collections::BTreeMap<i64, Row> =
                decode(conn, path, pack, span, (bucket, user, data))?
                    .into_iter()
                    .collect();
            all.extend(rows);
            all.into_iter().collect()
        }
    };
    conn.execute(
        &format!("INSERT OR REPLACE INTO {pack} (bucket, user, data) VALUES (?1, ?2, ?3)"),
        rusqlite::params![bucket, user, codec::encode(bucket, &rows)],
    )
    .sql(path, "write a packed row")?;
    Ok(())
}

/// Moves every plain row of `table` before `end` into its packed table, a bucket at a time
/// (one user's rows in memory at once); the number of plain rows moved. Run inside the
/// caller's transaction.
pub(super) fn pack_before(
    conn: &Connection,
    path: &Path,
    table: Table,
    end: i64,
) -> Result<usize, HistoryDbError> {
    let Some((pack, span)) = packed(table) else {
        return Ok(0);
    };
    let t = table.name();
    let mut moved = 0;
    loop {
        let first: Option<i64> = conn
            .query_row(
                &format!("SELECT MIN(at) FROM {t} WHERE at < ?1"),
                [end],
                |r| r.get(0),
            )
            .sql(path, "find rows to pack")?;
        let Some(first) = first else { break };
        let bucket = floor(first, span);
        let until = (bucket + span).min(end);
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT at, user, {} FROM {t} WHERE at >= ?1 AND at < ?2 ORDER BY user, at",
                VALUE_COLUMNS.join(", ")
            ))
            .sql(path, "prepare packing")?;
        let mut rows = stmt.query([bucket, until]).sql(path, "read rows to pack")?;
        let mut current: Option<(i64, Vec<(i64, Row)>)> = None;
        while let Some(r) = rows.next().sql(path, "read rows to pack")? {
            let at: i64 = r.get(0).sql(path, "read rows to pack")?;
            let user: i64 = r.get(1).sql(path, "read rows to pack")?;
            let row = Row::from_sql_row(r, 2).sql(path, "read rows to pack")?;
            moved += 1;
            match &mut current {
                Some((u, list)) if *u == user => list.push((at, row)),
                _ => {
                    if let Some((u, list)) = current.replace((user, vec![(at, row)])) {
                        write_blob(conn, path, pack, span, bucket, u, list)?;
                    }
                }
            }
        }
        if let Some((u, list)) = current {
            write_blob(conn, path, pack, span, bucket, u, list)?;
        }
        conn.execute(
            &format!("DELETE FROM {t} WHERE at >= ?1 AND at < ?2"),
            [bucket, until],
        )
        .sql(path, "remove packed rows")?;
    }
    Ok(moved)
}
