//! cgroup-core: all the logic of pam_cgroup. The PAM module and `cgroupctl` are thin shells
//! around this crate: config, the cgroup v2 tree, limits, delegation, NSS, sessions.

pub mod config;
pub mod error;
pub mod limits;
pub mod mount;
pub mod names;
pub mod nss;
pub mod report_once;
pub mod session;
pub mod tree;

pub use error::{Error, Result};
