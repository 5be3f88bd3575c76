//! pam_cgroup.so: a thin PAM session and account module. It parses its arguments, reads the PAM items it
//! needs, calls cgroup-core, logs, and maps the result to a PAM code. All logic is in
//! cgroup-core; nothing here writes to stdout or stderr, and no panic crosses into libpam.

mod account;
pub mod args;
mod guard;
mod hooks;
mod items;
pub mod log;

use pam::pam_hooks;

/// The hooks libpam calls (pam_sm_open_session, pam_sm_close_session, pam_sm_acct_mgmt); the
/// other hooks keep pam-bindings' default answer, PAM_IGNORE.
pub struct PamCgroup;

pam_hooks!(PamCgroup);
