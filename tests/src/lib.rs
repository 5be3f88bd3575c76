//! Support for the root integration tests and the `pam-session` driver: a minimal libpam
//! client (pam_start_confdir), syslog capture, and guards that create and always remove test
//! users, cgroups and PAM conf dirs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod pam_client;
pub mod support;
pub mod syslog_capture;
