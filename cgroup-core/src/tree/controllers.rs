//! Enabling controllers down the tree. A controller is enabled in every ancestor's
//! `cgroup.subtree_control` from the cgroup2 mount down to `users/<user>`, never in a leaf's
//! (its `cgroup.procs` write would then fail with EBUSY: the "no internal processes" rule).
//! Only controllers the kernel offers are asked for; the rest are reported, never fatal.

use std::path::{Path, PathBuf};

use super::fs::{self, read_controllers, write_file};
use crate::cgroup_files;
use crate::error::Result;
use crate::limits::Controller;

/// What enabling found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControllerReport {
    /// Wanted controllers the kernel does not offer at the mount (absent or bound to v1).
    pub unavailable: Vec<Controller>,
    /// Controllers that could not be enabled at some level, and why.
    pub failed: Vec<(Controller, PathBuf, String)>,
}

/// Controllers the kernel offers at the top of the mount.
pub fn offered(mount_point: &Path) -> Result<Vec<Controller>> {
    Ok(
        read_controllers(&mount_point.join(cgroup_files::CONTROLLERS))?
            .iter()
            .filter_map(|c| Controller::from_name(c))
            .collect(),
    )
}

/// Is every offered controller already enabled in `dir`'s subtree_control?
pub fn already_enabled(dir: &Path, wanted: &[Controller]) -> Result<bool> {
    let enabled = read_controllers(&dir.join(cgroup_files::SUBTREE_CONTROL))?;
    Ok(wanted.iter().all(|c| enabled.iter().any(|e| e == c.name())))
}

/// Enables `wanted` in the subtree_control of each directory of `chain` (top first). A
/// controller that fails at one level is not asked for further down.
pub fn enable_down(chain: &[PathBuf], wanted: &[Controller]) -> Result<ControllerReport> {
    let mut report = ControllerReport::default();
    let mut remaining: Vec<Controller> = wanted.to_vec();
    for (depth, dir) in chain.iter().enumerate() {
        let enabled = read_controllers(&dir.join(cgroup_files::SUBTREE_CONTROL))?;
        // A cgroup holding processes must not get controllers for its children: domain
        // controllers fail with EBUSY, and threaded ones (cpu, pids) succeed but turn it into
        // a thread root, making every child "domain invalid" for good. The top of the mount is
        // exempt from the rule. A systemd unit with Delegate=yes is such a case until its
        // processes have moved into a leaf of their own (`Tree::step_aside`).
        let missing: Vec<Controller> = remaining
            .iter()
            .copied()
            .filter(|c| !enabled.iter().any(|e| e == c.name()))
            .collect();
        if depth > 0 && !missing.is_empty() && !fs::procs(dir)?.is_empty() {
            for c in &missing {
                report.failed.push((
                    *c,
                    dir.clone(),
                    "it holds processes (cgroup v2 allows processes only in leaves)".to_string(),
                ));
            }
            remaining.retain(|c| !missing.contains(c));
            continue;
        }
        let available = read_controllers(&dir.join(cgroup_files::CONTROLLERS))?;
        let mut still = Vec::new();
        for c in remaining {
            if enabled.iter().any(|e| e == c.name()) {
                still.push(c);
                continue;
            }
            if !available.iter().any(|a| a == c.name()) {
                report
                    .failed
                    .push((c, dir.clone(), "not offered by the parent".to_string()));
                continue;
            }
            match write_file(
                &dir.join(cgroup_files::SUBTREE_CONTROL),
                &format!("+{}", c.name()),
            ) {
                Ok(()) => still.push(c),
                Err(e) => report.failed.push((c, dir.clone(), e.to_string())),
            }
        }
        remaining = still;
    }
    Ok(report)
}
