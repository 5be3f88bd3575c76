//! `cgroupctl init [--move-root] [--json]`: makes the tree root and users/, enables the controllers the
//! kernel offers, and attaches the private-IP programs and the traffic counters at the root
//! (pinned in bpffs), or detaches them when `[private_ip] enabled = false`. Safe to run again: the same config
//! changes nothing; a changed `[private_ip]` swaps the programs in place.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::private_ip::{
    ensure_bpffs, install, pin_dir, uninstall, Action, BpffsState, InstallReport, UninstallReport,
    DEFAULT_BPFFS,
};
use cgroup_core::tree;

use crate::global::GlobalArgs;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Set up the tree root the file names although it does not exist yet and the last good
    /// config names another: the tree is being moved. Without it such a root is taken for a
    /// typo, and the last good config's tree is set up (as logins keep using it).
    #[arg(long)]
    pub move_root: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct InitReport {
    tree_root: String,
    /// Controllers that could not be enabled, and why (never fatal).
    controllers_not_enabled: Vec<String>,
    bpffs_mounted_now: bool,
    private_ip_enabled: bool,
    installed: Option<InstallReport>,
    /// With private IPs disabled: what was detached.
    removed: Option<UninstallReport>,
}

pub fn run(cli: &GlobalArgs, args: &InitArgs) -> Result<ExitCode> {
    // A broken file: set up what logins use, its last good copy (the unit runs this at
    // boot, and a typo must not keep the daemon down).
    let (config, tree) = if args.move_root {
        // The administrator's word that the file is meant, new root and all: kept at once.
        let config = cgroup_core::config::last_good::load_and_keep(&crate::load::config_path(cli))?;
        let tree = tree::Tree::locate_root(config.tree.root.as_deref())?;
        (config, tree)
    } else {
        let (config, tree, _) =
            crate::load::load_keeping(cli, cgroup_core::config::last_good::Keep::Settled)?;
        (config, tree)
    };
    // No step_aside here, unlike the daemon: under systemd < 254 this runs as ExecStartPre in
    // the unit's own cgroup, and enabling controllers there would keep systemd from starting
    // the next process of the unit (EBUSY). The daemon, the unit's last process, does it.
    tree.ensure_base()?;
    // The key naming user cgroups, made now rather than by the first login.
    tree::tree_key()?;
    let offered = tree::offered(&tree.mount.mount_point)?;
    let controllers = tree::enable_down(&tree.chain_to(&tree.users_dir()), &offered)?;
    let bpffs = Path::new(DEFAULT_BPFFS);
    let pins = pin_dir(bpffs, &tree.root)?;
    let mut report = InitReport {
        tree_root: tree.root.display().to_string(),
        controllers_not_enabled: controllers
            .failed
            .iter()
            .map(|(c, dir, why)| format!("{} at {}: {why}", c.name(), dir.display()))
            .collect(),
        bpffs_mounted_now: false,
        private_ip_enabled: config.private_ip.enabled,
        installed: None,
        removed: None,
    };
    if config.private_ip.enabled {
        report.bpffs_mounted_now = ensure_bpffs(bpffs)? == BpffsState::Mounted;
        report.installed = Some(install(&tree, &pins, &config.private_ip)?);
    } else {
        report.removed = Some(uninstall(&tree.root, &pins)?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(report: &InitReport) {
    println!("tree {}: ready", report.tree_root);
    for line in &report.controllers_not_enabled {
        println!("  controller not enabled: {line}");
    }
    if report.bpffs_mounted_now {
        println!("mounted bpffs at {DEFAULT_BPFFS}");
    }
    if let Some(installed) = &report.installed {
        println!(
            "private IPs: programs pinned in {}",
            installed.pin_dir.display()
        );
        for p in &installed.programs {
            let what = match (p.action, p.previous_id) {
                (Action::Attached, _) => format!("attached (id {})", p.prog_id),
                (Action::Updated, Some(old)) => {
                    format!("updated in place (id {old} -> {})", p.prog_id)
                }
                (Action::Updated, None) => format!("updated in place (id {})", p.prog_id),
                (Action::Unchanged, _) => format!("unchanged (id {})", p.prog_id),
            };
            println!("  {:<13} {what}", p.program);
        }
        if installed.fence_map_replaced {
            println!("  fence map of an older layout replaced (entries now carry the uid)");
        }
        println!(
            "traffic counters: {}",
            if installed.traffic_map_created {
                "new map (every user starts from 0)"
            } else {
                "map kept (counts continue)"
            }
        );
    }
    if let Some(removed) = &report.removed {
        if removed.detached.is_empty() {
            println!("private IPs disabled in the config: no programs were attached");
        } else {
            println!(
                "private IPs disabled in the config: detached and unpinned {}",
                removed.detached.join(", ")
            );
        }
    }
}
