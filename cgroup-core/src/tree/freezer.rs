//! The freezer's two files, read: what the kernel reached (`frozen` of cgroup.events) and what
//! was asked (cgroup.freeze). In the tree layer because the session records (which show a
//! frozen session) and the levers (which freeze) both read them.

use super::dirfd::CgroupDir;
use crate::cgroup_files::{self, CgroupEvents};
use crate::error::Result;

/// `frozen` of cgroup.events.
pub fn is_frozen(dir: &CgroupDir) -> Result<bool> {
    let events = CgroupEvents::parse(&dir.read(cgroup_files::EVENTS)?);
    Ok(events.frozen.unwrap_or(false))
}

/// `cgroup.freeze` as written (the wanted state, which `frozen` reaches later).
pub fn freeze_requested(dir: &CgroupDir) -> Result<bool> {
    Ok(dir.read(cgroup_files::FREEZE)?.trim() == "1")
}
