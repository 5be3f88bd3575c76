//! The usage history: what every user cgroup used, interval by interval, kept in one SQLite
//! file written by the daemon alone and read by `cgroupctl report` (root) and, through the
//! daemon, by each customer's `cgroupctl me --history` (its own rows only).
//!
//! - `row`: one row's values, the same in the three tables (per sample, hourly, daily);
//! - `reading`: a user cgroup's counters now, and the row of one interval between two
//!   readings (counters stored as deltas, robust to a re-made cgroup);
//! - `schema`: the tables and the schema version;
//! - `codec`: one user's rows of an hour or a day packed into one blob;
//! - `pack`: the rolled-up rows kept packed, and the reads over plain and packed rows;
//! - `store`: the database file (root-only, WAL, checked before SQLite sees it);
//! - `sampler`: one pass over every user cgroup, one transaction;
//! - `rollup`: hourly and daily rollups, retention, the size bound;
//! - `query`: totals per user over a period, and one user's rows;
//! - `forget`: a removed customer's rows and identity deleted;
//! - `events`: the fault events (which customer hit which limit), bounded, and the import
//!   of the ring files older versions kept them in;
//! - `event_bytes`: the events' bytes by user, and which go first when they are over the
//!   bound (the largest holder's oldest).
//!
//! Feature `history` (rusqlite, the system's libsqlite3): cgroupctl and the tests have it, the
//! PAM module has not: a login never opens the database.

mod codec;
pub mod customer;
mod error;
mod event_bytes;
pub mod events;
pub mod forget;
mod pack;
pub mod query;
pub mod reading;
pub mod rollup;
pub mod row;
pub mod sampler;
mod schema;
pub mod store;

pub use error::HistoryDbError;
pub use query::{segments, Segment, Totals};
pub use reading::Reading;
pub use rollup::Retention;
pub use row::{Row, Table};
pub use sampler::Sampler;
pub use store::Store;

#[cfg(test)]
mod tests;
