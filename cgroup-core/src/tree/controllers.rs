//! Enabling controllers down the tree. A controller is enabled in every ancestor's
//! `cgroup.subtree_control` from the cgroup2 mount down to `users/<user>`, never in a leaf's
//! (its `cgroup.procs` write would then fail with EBUSY: the "no internal processes" rule).
//! Only controllers the kernel offers are asked for; the rest are reported, never fatal.

use std::path::{Path, PathBuf};

use super::dirfd::CgroupDir;
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
    available_in(&CgroupDir::open(mount_point)?)
}

/// Controllers enabled for `dir` by its parent (its cgroup.controllers): the one reader of
/// that file.
pub fn available_in(dir: &CgroupDir) -> Result<Vec<Controller>> {
    Ok(controller_list(&dir.read(cgroup_files::CONTROLLERS)?))
}

fn controller_list(text: &str) -> Vec<Controller> {
    text.split_whitespace()
        .filter_map(Controller::from_name)
        .collect()
}

/// `wanted` minus what `dir` enables for its children already (its subtree_control).
pub fn missing_in(dir: &CgroupDir, wanted: &[Controller]) -> Result<Vec<Controller>> {
    let enabled = controller_list(&dir.read(cgroup_files::SUBTREE_CONTROL)?);
    Ok(wanted
        .iter()
        .copied()
        .filter(|c| !enabled.contains(c))
        .collect())
}

/// Is every offered controller already enabled in `dir`'s subtree_control?
pub fn already_enabled(dir: &Path, wanted: &[Controller]) -> Result<bool> {
    Ok(missing_in(&CgroupDir::open(dir)?, wanted)?.is_empty())
}

/// The one loop that enables controllers: writes `+<c>` to `dir`'s subtree_control for each
/// of `missing` its parent gives it. Returns what could not be enabled and why
/// (`not_offered` for what the parent does not give).
pub fn enable_in(
    dir: &CgroupDir,
    missing: &[Controller],
    not_offered: &str,
) -> Result<Vec<(Controller, String)>> {
    let available = available_in(dir)?;
    let mut failed = Vec::new();
    for c in missing {
        if !available.contains(c) {
            failed.push((*c, not_offered.to_string()));
            continue;
        }
        if let Err(e) = dir.write(cgroup_files::SUBTREE_CONTROL, &format!("+{}", c.name())) {
            failed.push((*c, e.to_string()));
        }
    }
    Ok(failed)
}

/// Enables `wanted` in the subtree_control of each directory of `chain` (top first). A
/// controller that fails at one level is not asked for further down.
pub fn enable_down(chain: &[PathBuf], wanted: &[Controller]) -> Result<ControllerReport> {
    let mut report = ControllerReport::default();
    let mut remaining: Vec<Controller> = wanted.to_vec();
    for (depth, path) in chain.iter().enumerate() {
        let dir = CgroupDir::open(path)?;
        // A cgroup holding processes must not get controllers for its children: domain
        // controllers fail with EBUSY, and threaded ones (cpu, pids) succeed but turn it into
        // a thread root, making every child "domain invalid" for good. The top of the mount is
        // exempt from the rule. A systemd unit with Delegate=yes is such a case until its
        // processes have moved into a leaf of their own (`Tree::step_aside`).
        let missing = missing_in(&dir, &remaining)?;
        if depth > 0 && !missing.is_empty() && !dir.read(cgroup_files::PROCS)?.trim().is_empty() {
            for c in &missing {
                report.failed.push((
                    *c,
                    path.clone(),
                    "it holds processes (cgroup v2 allows processes only in leaves)".to_string(),
                ));
            }
            remaining.retain(|c| !missing.contains(c));
            continue;
        }
        for (c, why) in enable_in(&dir, &missing, "not offered by the parent")? {
            remaining.retain(|r| *r != c);
            report.failed.push((c, path.clone(), why));
        }
    }
    Ok(report)
}
