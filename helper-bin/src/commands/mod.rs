//! One module per verb.

pub mod check;
pub mod classify;
pub mod daemon;
pub mod deinit;
pub mod doctor;
pub mod escape;
pub mod events;
pub mod gc;
pub mod init;
pub mod ip;
pub mod keep_policy;
pub mod levers;
pub mod list;
pub mod man;
pub mod pidfd;
pub mod proc_apply;
pub mod pty_relay;
pub mod reload;
pub mod run;
pub mod sessions;
pub mod set;
pub mod show;
pub mod stats;
pub mod suspend;
pub mod table;
pub mod view;
