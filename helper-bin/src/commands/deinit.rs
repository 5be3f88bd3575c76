//! `cgroupctl deinit [--json]`: detaches and unpins the private-IP programs, then removes the
//! tree if no user cgroup remains (a tree that still holds users is left, and said so).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::private_ip::{pin_dir, uninstall, UninstallReport, DEFAULT_BPFFS};
use cgroup_core::tree::fs::{remove_dir, Removed};
use cgroup_core::tree::Tree;

use crate::global::GlobalArgs;

#[derive(Debug, Args)]
pub struct DeinitArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct DeinitReport {
    removed: UninstallReport,
    tree_root: String,
    /// Whether a directory of the tree was removed now (false: it was already gone or left).
    tree_removed: bool,
    /// Why the tree was left in place (it still holds cgroups).
    tree_left: Option<String>,
}

pub fn run(cli: &GlobalArgs, args: &DeinitArgs) -> Result<ExitCode> {
    let config = crate::load::load_config(cli)?;
    let tree = Tree::locate_root(config.tree.root.as_deref())?;
    let removed = uninstall(&tree.root, &pin_dir(Path::new(DEFAULT_BPFFS), &tree.root)?)?;
    // Bottom-up; each rmdir fails (Busy) while anything is below, which is what we want.
    let mut tree_left = None;
    let mut tree_removed = false;
    for dir in [tree.unconfined_dir(), tree.users_dir(), tree.root.clone()] {
        match remove_dir(&dir)? {
            Removed::Removed => tree_removed = true,
            Removed::AlreadyGone => {}
            Removed::Busy => {
                tree_left = Some(format!("{} still holds cgroups", dir.display()));
                break;
            }
        }
    }
    let report = DeinitReport {
        removed,
        tree_root: tree.root.display().to_string(),
        tree_removed,
        tree_left,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(report: &DeinitReport) {
    if report.removed.detached.is_empty() {
        println!("private IPs: no programs were attached");
    } else {
        println!(
            "private IPs: detached and unpinned {}",
            report.removed.detached.join(", ")
        );
    }
    match (&report.tree_left, report.tree_removed) {
        (Some(why), _) => println!("tree {}: left in place ({why})", report.tree_root),
        (None, true) => println!("tree {}: removed", report.tree_root),
        (None, false) => println!("tree {}: not present", report.tree_root),
    }
}
