//! Root integration tests on this machine's real kernel: real libpam (pam_start_confdir with a
//! temporary conf dir), the real cgroup2 mount, real users. Each test makes its own uniquely
//! named tree root, users and conf dir, and removes them even when it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bpf_pins;
mod broken_config;
mod cgroupctl;
mod cgroupctl_daemon;
mod cgroupctl_doctor;
mod check_config;
mod cli_errors;
mod escape;
mod events;
mod faults;
mod fence;
mod held_locks;
mod levers;
mod life_cycle;
mod me;
mod metrics_peer;
mod monitoring;
mod neighbours;
mod net_traffic;
mod panic_boundary;
mod privacy;
mod private_ip;
mod private_ip_login;
mod safety_net;
mod session;
mod spare_leaves;
mod storm;
mod supervisor;
mod survivors;
mod top;
mod usage_history;
