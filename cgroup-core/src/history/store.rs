//! The database file: root's alone, opened for writing by the daemon only.
//!
//! Before SQLite sees the path, its directory is opened and checked like every root-only
//! state directory (root-owned, no access for group or others, no symlink on the way) and the
//! file itself is opened through it (a regular root-owned 0600 file, never a symlink); the
//! -wal and -shm files SQLite keeps next to it get the same check. SQLite then opens it with
//! SQLITE_OPEN_NOFOLLOW. A customer can neither read it (0600 in a 0700 directory) nor plant
//! a file the daemon would write through.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::state_dir::StateDir;

use super::error::{HistoryDbError, SqlContext};
use super::pack::pack_before;
use super::row::{Row, Table, VALUE_COLUMNS};
use super::schema::{
    create_events, create_v1, create_v2_packs, EVENTS_VERSION, META_DAY_UNTIL,
    META_HOURS_KEPT_FROM, META_HOUR_UNTIL, META_SAMPLES_KEPT_FROM, PACKS_VERSION, SCHEMA_VERSION,
};

/// The page size of a new file (a file of version 1 keeps its own: 4096).
const PAGE_SIZE: u32 = 65_536;

pub struct Store {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    /// (name, uid) -> users.id, for this connection's writes.
    ids: HashMap<(String, i64), i64>,
}

/// Checks the directory and the files of the database; creates the file (0600) when
/// `create`. `Ok(false)`: it does not exist.
pub(super) fn check_files(path: &Path, create: bool) -> Result<bool, HistoryDbError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(crate::error::StateError {
            path: path.to_path_buf(),
            reason: "not a file name".into(),
            errno: None,
        }
        .into());
    };
    let Some(dir) = StateDir::open(dir, create)? else {
        return Ok(false);
    };
    // Checked by fstatat, never opened: the daemon's other connection (its sampler, its
    // fault events, its answers to `me`) may hold SQLite's POSIX locks on these files, and
    // closing any descriptor of a file drops all of this process's locks on it. Without its
    // lock on the -shm file, the next `cgroupctl report` of another process took itself for
    // the first user of the database and truncated the -shm file under the daemon's mapping
    // of it: the daemon died of SIGBUS (seen in the Debian 12 VM, scenario 20).
    if create {
        dir.create_empty(name)?;
    }
    if !dir.check_file(name)? {
        return Ok(false);
    }
    for side in ["-wal", "-shm"] {
        dir.check_file(&format!("{name}{side}"))?;
    }
    Ok(true)
}

fn schema_version(conn: &Connection, path: &Path) -> Result<i64, HistoryDbError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .sql(path, "read the schema version")
}

/// How long a writer waits for the other writer's transaction (the daemon's two threads).
const WRITER_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Brings the file to `SCHEMA_VERSION`, one step at a time, in one write transaction (the
/// version read again inside it: the daemon's two writers may both open a new file at once):
/// an interrupted upgrade leaves the file as it was, and the next start upgrades it again.
/// Returns whether rows were packed (version 1 to 2: the file is compacted after).
fn upgrade(conn: &Connection, path: &Path) -> Result<bool, HistoryDbError> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .sql(path, "begin the upgrade")?;
    let steps = || -> Result<bool, HistoryDbError> {
        let version = schema_version(conn, path)?;
        let mut packed = false;
        if version < 1 {
            conn.execute_batch(&create_v1())
                .sql(path, "create the tables")?;
            // A new file: every row it will hold is kept until a removal says otherwise (a
            // report over its first, partly sampled hour reads the samples, not the hour).
            for key in [META_SAMPLES_KEPT_FROM, META_HOURS_KEPT_FROM] {
                conn.execute("INSERT INTO meta (key, value) VALUES (?1, 0)", [key])
                    .sql(path, "mark the kept rows")?;
            }
        }
        if version < PACKS_VERSION {
            conn.execute_batch(create_v2_packs())
                .sql(path, "create the packed tables")?;
            if version == 1 {
                // The rows already rolled up are packed, as the rollups of version 2 would
                // have done.
                packed = migrate_v1(conn, path)?;
            }
        }
        if version < EVENTS_VERSION {
            conn.execute_batch(create_events())
                .sql(path, "create the events table")?;
        }
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .sql(path, "set the schema version")?;
        Ok(packed)
    };
    match steps() {
        Ok(packed) => conn
            .execute_batch("COMMIT")
            .sql(path, "commit the upgrade")
            .map(|()| packed),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Version 1 to 2, inside `upgrade`'s transaction: every plain row already rolled up goes
/// into its packed table. Whether anything was packed.
fn migrate_v1(conn: &Connection, path: &Path) -> Result<bool, HistoryDbError> {
    let mark = |key: &str| -> Result<i64, HistoryDbError> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .sql(path, "read the rollup marks")
            .map(|v| v.unwrap_or(0))
    };
    let (hour_until, day_until) = (mark(META_HOUR_UNTIL)?, mark(META_DAY_UNTIL)?);
    let moved = pack_before(conn, path, Table::Sample, hour_until)?
        + pack_before(conn, path, Table::Hour, day_until)?;
    Ok(moved > 0)
}

impl Store {
    /// The daemon's connection: makes the directory (0700), the file (0600) and the schema
    /// when missing; WAL mode, space given back as rows go (incremental vacuum).
    pub fn open_writer(path: &Path) -> Result<Store, HistoryDbError> {
        check_files(path, true)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).sql(path, "open")?;
        // The daemon's samples and its fault events are written by two threads, each with
        // its connection: one waits for the other's transaction.
        conn.busy_timeout(WRITER_BUSY_WAIT)
            .sql(path, "set the busy timeout")?;
        let version = schema_version(&conn, path)?;
        if version > SCHEMA_VERSION {
            return Err(HistoryDbError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            // Before anything is written (WAL keeps the page size it starts with): a page
            // holds a dozen packed blobs (about 1.2 KB each) and wastes part of one, where
            // a 4 KB page holds three and wastes a tenth.
            conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE};"))
                .sql(path, "set the page size")?;
        }
        // auto_vacuum must be set before the first table exists.
        conn.execute_batch(
            "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 8388608;",
        )
        .sql(path, "set the journal mode")?;
        let packed = version < SCHEMA_VERSION && upgrade(&conn, path)?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            ids: HashMap::new(),
        };
        if packed {
            store.compact()?;
        }
        Ok(store)
    }

    /// A reader's connection (`cgroupctl report`, the daemon's answers to customers): read
    /// only, the same checks, nothing created.
    pub fn open_reader(path: &Path) -> Result<Store, HistoryDbError> {
        if !check_files(path, false)? {
            return Err(HistoryDbError::Missing {
                path: path.to_path_buf(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).sql(path, "open")?;
        let version = schema_version(&conn, path)?;
        // Version 1 is read as it is (no packed rows yet) until the daemon converts it.
        if version < 1 {
            return Err(HistoryDbError::OlderSchema {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version > SCHEMA_VERSION {
            return Err(HistoryDbError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            ids: HashMap::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The identity of `name` with `uid` (-1: NSS did not know the name), made at first use.
    pub fn user_id(&mut self, name: &str, uid: i64) -> Result<i64, HistoryDbError> {
        if let Some(id) = self.ids.get(&(name.to_string(), uid)) {
            return Ok(*id);
        }
        self.conn
            .execute(
                "INSERT OR IGNORE INTO users (name, uid) VALUES (?1, ?2)",
                rusqlite::params![name, uid],
            )
            .sql(&self.path, "add a user")?;
        let id: i64 = self
            .conn
            .query_row(
                "SELECT id FROM users WHERE name = ?1 AND uid = ?2",
                rusqlite::params![name, uid],
                |r| r.get(0),
            )
            .sql(&self.path, "find a user")?;
        self.ids.insert((name.to_string(), uid), id);
        Ok(id)
    }

    /// Forgets the identities learnt so far (a transaction that made one was rolled back).
    pub fn forget_ids(&mut self) {
        self.ids.clear();
    }

    /// The identities of `name` with `uid`, if any rows were ever kept for them.
    pub fn find_user(&self, name: &str, uid: u32) -> Result<Option<i64>, HistoryDbError> {
        self.conn
            .query_row(
                "SELECT id FROM users WHERE name = ?1 AND uid = ?2",
                rusqlite::params![name, i64::from(uid)],
                |r| r.get(0),
            )
            .optional()
            .sql(&self.path, "find a user")
    }

    /// Writes rows of `table` at `at`, one per user id, in one transaction (a row already
    /// there for that time and user is replaced).
    pub fn insert(
        &mut self,
        table: Table,
        at: i64,
        rows: &[(i64, Row)],
    ) -> Result<(), HistoryDbError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().sql(&path, "begin")?;
        {
            let marks = vec!["?"; VALUE_COLUMNS.len()].join(", ");
            let sql = format!(
                "INSERT OR REPLACE INTO {} (at, user, {}) VALUES (?, ?, {marks})",
                table.name(),
                VALUE_COLUMNS.join(", ")
            );
            let mut stmt = tx.prepare_cached(&sql).sql(&path, "prepare an insert")?;
            for (user, row) in rows {
                let mut params: Vec<Option<i64>> = vec![Some(at), Some(*user)];
                params.extend(row.values());
                stmt.execute(rusqlite::params_from_iter(params))
                    .sql(&path, "insert a row")?;
            }
        }
        tx.commit().sql(&path, "commit")
    }

    /// Bytes the file uses for rows (free pages not counted: they are given back by the next
    /// incremental vacuum).
    pub fn used_bytes(&self) -> Result<u64, HistoryDbError> {
        let get = |pragma: &str| -> Result<i64, HistoryDbError> {
            self.conn
                .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
                .sql(&self.path, "read the size")
        };
        let used = (get("page_count")? - get("freelist_count")?) * get("page_size")?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    /// Bytes of each table and index (SQLite's `dbstat`), largest first: where the file's
    /// space goes (the bench prints it). Each: its name, its pages' bytes, the bytes of its
    /// rows' payload in them.
    pub fn space_by_table(&self) -> Result<Vec<(String, u64, u64)>, HistoryDbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, SUM(pgsize), SUM(payload) FROM dbstat GROUP BY name ORDER BY 2 DESC",
            )
            .sql(&self.path, "read the space per table")?;
        let bytes = |v: i64| u64::try_from(v).unwrap_or(0);
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, bytes(r.get(1)?), bytes(r.get(2)?)))
            })
            .sql(&self.path, "read the space per table")?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .sql(&self.path, "read the space per table")
    }

    /// Bytes of the pages of one table or index (0: no such name).
    pub fn table_bytes(&self, name: &str) -> Result<u64, HistoryDbError> {
        Ok(self
            .space_by_table()?
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map_or(0, |(_, bytes, _)| bytes))
    }

    /// The size of the file on disk.
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Gives free pages back to the file system and empties the write-ahead log.
    pub fn compact(&self) -> Result<(), HistoryDbError> {
        // Each step of incremental_vacuum frees one page: stepped until done.
        let mut stmt = self
            .conn
            .prepare("PRAGMA incremental_vacuum")
            .sql(&self.path, "vacuum")?;
        let mut rows = stmt.query([]).sql(&self.path, "vacuum")?;
        while rows.next().sql(&self.path, "vacuum")?.is_some() {}
        drop(rows);
        drop(stmt);
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .sql(&self.path, "checkpoint")
    }
}
