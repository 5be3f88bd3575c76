//! One module per verb (the daemon: a folder), and nothing else: what verbs share lives beside
//! `commands/` (see main.rs), and no verb imports another.

pub mod check;
pub mod classify;
pub mod completions;
pub mod daemon;
pub mod deinit;
pub mod doctor;
pub mod events;
pub mod gc;
pub mod init;
pub mod ip;
pub mod levers;
pub mod list;
pub mod man;
pub mod me;
pub mod path;
pub mod plans;
pub mod proc_apply;
pub mod reload;
pub mod remove;
pub mod run;
pub mod sessions;
pub mod set;
pub mod show;
pub mod stats;
pub mod suspend;
pub mod top;
pub mod usage_report;
