//! `cgroupctl remove`: a removed customer's usage rows go with it. Identities are (name, uid):
//! a new account given the same name and uid would otherwise read its predecessor's rows in
//! `me --history`, and the administrator's promise that nothing of the customer is left
//! would not hold inside the database.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::error::{HistoryDbError, SqlContext};
use super::pack::packed_in;
use super::row::Table;
use super::store::check_files;

/// How long the removal waits for the daemon's write in progress (one sampling pass or a
/// rollup: well under a second at 10,000 users); the daemon is root's, never a customer's.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// Deletes every row and identity of `name` (whatever uid it had); the number of rows
/// deleted. A database that does not exist holds nothing to forget.
pub fn forget_user(path: &Path, name: &str) -> Result<u64, HistoryDbError> {
    if !check_files(path, false)? {
        return Ok(0);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NOFOLLOW
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).sql(path, "open")?;
    conn.busy_timeout(BUSY_WAIT)
        .sql(path, "set the busy timeout")?;
    let tx = conn.transaction().sql(path, "begin")?;
    let mut rows = 0u64;
    let mut names = Vec::new();
    for t in Table::ALL {
        names.push(t.name());
        names.extend(packed_in(&tx, path, t)?.map(|(pack, _)| pack));
    }
    for table in names {
        let sql =
            format!("DELETE FROM {table} WHERE user IN (SELECT id FROM users WHERE name = ?1)");
        let n = tx.execute(&sql, [name]).sql(path, "delete a user's rows")?;
        rows += u64::try_from(n).unwrap_or(0);
    }
    tx.execute("DELETE FROM users WHERE name = ?1", [name])
        .sql(path, "delete a user's identity")?;
    tx.commit().sql(path, "commit")?;
    Ok(rows)
}

/// Whether the database keeps anything of `name` (`remove` of a customer whose account,
/// cgroup and files are gone but whose rows are not).
pub fn knows_user(path: &Path, name: &str) -> Result<bool, HistoryDbError> {
    if !check_files(path, false)? {
        return Ok(false);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NOFOLLOW
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).sql(path, "open")?;
    conn.busy_timeout(BUSY_WAIT)
        .sql(path, "set the busy timeout")?;
    let n: i64 = conn
        .query_row("SELECT count(*) FROM users WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .sql(path, "find a user")?;
    Ok(n > 0)
}
