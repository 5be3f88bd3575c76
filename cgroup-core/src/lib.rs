//! cgroup-core: all the logic of pam_cgroup. The PAM module and `cgroupctl` are thin shells
//! around this crate: config, the cgroup v2 tree, limits, delegation, NSS, sessions.

pub mod account;
pub mod apply;
pub mod cgroup_files;
pub mod config;
pub mod config_fallback;
pub mod doctor;
pub mod error;
pub mod events;
pub mod gc;
#[cfg(feature = "history")]
pub mod history;
pub mod inventory;
pub mod levers;
pub mod limits;
pub mod log_line;
pub mod mount;
pub mod names;
pub mod notice;
pub mod nss;
pub mod paths;
pub mod policy;
pub mod private_ip;
pub mod process_limits;
pub mod report_once;
pub mod root_lock;
pub mod service;
pub mod session;
pub mod sessions;
pub mod state_dir;
pub mod stats;
pub mod strays;
pub mod survivors;
pub mod time;
pub mod tree;
pub mod user_apply;
pub mod userfile_edit;

pub use error::{Error, Result};
