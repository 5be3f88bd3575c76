//! The tables and the schema version (`PRAGMA user_version`). A newer version than this
//! build knows is refused (a downgrade must not write rows the newer one misreads).
//!
//! - `users(id, name, uid)`: one identity per name and uid (a name given again to another uid
//!   is another identity: a new customer never sees its predecessor's rows);
//! - `sample`, `hour`, `day`: the same columns (`row::VALUE_COLUMNS`), keyed by time then user
//!   (rows are appended in time order, so pages fill up); `at` is seconds since the epoch, the
//!   sample's time or the start of its hour or UTC day;
//! - `meta(key, value)`: up to where the hourly and daily rollups were made;
//! - `hour_by_user`: one user's hourly rows for its own answers (the sample rows, ten times
//!   as many, have no such index: a customer reads them only for the hour not yet rolled up);
//! - version 2: `sample_pack`, `hour_pack`: what `sample` and `hour` held once rolled up,
//!   one packed blob per bucket and user (`pack`, `codec`); `sample` and `hour` keep only the
//!   rows not rolled up yet;
//! - version 3: `events` (`create_events`): the fault events (`history::events`).

use std::path::Path;

use rusqlite::Connection;

use super::error::{HistoryDbError, SqlContext};
use super::row::{Table, VALUE_COLUMNS};

pub const SCHEMA_VERSION: i64 = 3;
/// The version that packed the rolled-up rows.
pub const PACKS_VERSION: i64 = 2;
/// The version that added the fault events.
pub const EVENTS_VERSION: i64 = 3;

/// Up to where (exclusive, seconds) the hour table holds every sample's rollup.
pub const META_HOUR_UNTIL: &str = "hour_until";
/// Up to where the day table holds every hour's rollup.
pub const META_DAY_UNTIL: &str = "day_until";
/// From where on (seconds) the sample table still holds every row it was given: 0 in a new
/// file, then the cut of the last removal (retention, the size bound). A file made before
/// this mark existed has none, and its oldest row stands in for it.
pub const META_SAMPLES_KEPT_FROM: &str = "samples_kept_from";
/// The same for the hour table.
pub const META_HOURS_KEPT_FROM: &str = "hours_kept_from";

/// The statements that make version 1 from an empty file.
pub fn create_v1() -> String {
    let mut sql = String::from(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, uid INTEGER NOT NULL, \
         UNIQUE (name, uid));\n\
         CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;\n",
    );
    let columns: Vec<String> = VALUE_COLUMNS
        .iter()
        .map(|c| format!("{c} INTEGER"))
        .collect();
    for t in Table::ALL {
        sql.push_str(&format!(
            "CREATE TABLE {} (at INTEGER NOT NULL, user INTEGER NOT NULL, {}, \
             PRIMARY KEY (at, user)) WITHOUT ROWID;\n",
            t.name(),
            columns.join(", ")
        ));
    }
    // A customer's own hourly rows (`me --history`) without reading every user's.
    sql.push_str("CREATE INDEX hour_by_user ON hour (user, at);\n");
    sql
}

/// The packed tables of version 2. Plain rowid tables, not WITHOUT ROWID: a blob (an hour
/// of one user's samples, about 1.5 KB at one a minute) is larger than the ~1 KB a WITHOUT
/// ROWID page keeps inline, and each would spill into an overflow page of its own.
pub fn create_v2_packs() -> &'static str {
    "CREATE TABLE sample_pack (bucket INTEGER NOT NULL, user INTEGER NOT NULL, \
     data BLOB NOT NULL, PRIMARY KEY (bucket, user));\n\
     CREATE TABLE hour_pack (bucket INTEGER NOT NULL, user INTEGER NOT NULL, \
     data BLOB NOT NULL, PRIMARY KEY (bucket, user));\n"
}

/// The statements that add the fault events (version 3).
///
/// `seq` never repeats (AUTOINCREMENT: a deleted newest event's number is not given again), so
/// `cgroupctl events --follow` goes on from the last one it printed. `body` is the event as
/// JSON (`events::Event`); `at_ms`, `user` (an identity of `users`) and `kind` are copied out
/// of it for the filters. `events_by_time` serves `--since`; `events_by_user` serves `--user`
/// and a customer's own events (`me`); kinds are few, filtered on the rows the indexes give.
pub fn create_events() -> &'static str {
    "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, \
     user INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL);\n\
     CREATE INDEX events_by_time ON events (at_ms);\n\
     CREATE INDEX events_by_user ON events (user, seq);\n"
}

/// Whether the file has the table `name` (a file of an older version lacks the newer ones).
pub(super) fn has_table(
    conn: &Connection,
    path: &Path,
    name: &str,
) -> Result<bool, HistoryDbError> {
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .sql(path, "read the schema")?;
    Ok(n > 0)
}
