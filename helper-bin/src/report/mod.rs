//! What several verbs report about customers, built once: each customer's summary and
//! life-cycle state, its sessions, and its fault events.

pub mod events;
pub mod sessions;
pub mod summary;
