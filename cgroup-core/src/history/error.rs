//! Why the history database could not be used.

use std::path::PathBuf;

use thiserror::Error;

use crate::error::StateError;

#[derive(Debug, Error)]
pub enum HistoryDbError {
    /// The file or its directory is not root's alone (or is a symlink, or not a file).
    #[error("{0}")]
    Refused(#[from] StateError),

    #[error("{path}: {op}: {source}")]
    Sqlite {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    #[error("{path}: schema version {found} is newer than this cgroupctl's ({known}): downgrade refused")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error("{path}: schema version {found} is older than this cgroupctl reads (1 to {known}): the daemon converts it when it starts")]
    OlderSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    /// A packed row that does not decode (the file was changed by something else).
    #[error("{path}: {table}: the rows of {user} from {at} are damaged ({why})")]
    Damaged {
        path: PathBuf,
        table: String,
        user: String,
        at: String,
        why: String,
    },

    /// The tree could not be listed or read.
    #[error("{0}")]
    Tree(#[from] Box<crate::Error>),

    #[error("{path}: does not exist (the daemon makes it at its first sample)")]
    Missing { path: PathBuf },
}

impl HistoryDbError {
    /// Another connection held the write lock longer than this one's busy wait (the daemon's
    /// hourly rollup, `cgroupctl remove`): trying again later may work, nothing is wrong.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            HistoryDbError::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        )
    }
}

/// Attaches the database path and the operation to a rusqlite error.
pub(super) trait SqlContext<T> {
    fn sql(self, path: &std::path::Path, op: &'static str) -> Result<T, HistoryDbError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn sql(self, path: &std::path::Path, op: &'static str) -> Result<T, HistoryDbError> {
        self.map_err(|source| HistoryDbError::Sqlite {
            path: path.to_path_buf(),
            op,
            source,
        })
    }
}

impl From<crate::Error> for HistoryDbError {
    fn from(e: crate::Error) -> Self {
        HistoryDbError::Tree(Box::new(e))
    }
}
