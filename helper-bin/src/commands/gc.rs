//! `cgroupctl gc [--dry-run] [--min-age DURATION] [--json]`: remove empty session and service
//! leaves pam_cgroup made (session leaves outlived by nohup processes that have since exited,
//! leaves of finished `cgroupctl run`s), and say what was removed. Cgroups users made
//! themselves are never removed, nor user cgroups, except a legacy `users/<user>` (made before
//! the keyed names) once it is empty.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use cgroup_core::gc::{collect, GcOptions};

use crate::global::GlobalArgs;
use crate::load::load;

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Show what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep empty leaves younger than this (a login may be between creating its leaf and
    /// entering it): seconds, or a duration like 90s, 10m, 2h.
    #[arg(long, value_name = "DURATION", default_value = "5", value_parser = crate::duration::secs)]
    pub min_age: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &GlobalArgs, args: &GcArgs) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    let removed = collect(
        &tree,
        GcOptions::new(
            Duration::from_secs(args.min_age),
            args.dry_run,
            config.tree.spare_leaves,
        ),
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&removed)?);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for r in &removed {
        println!(
            "{verb} {}",
            crate::output::escape::term(&r.path.display().to_string())
        );
    }
    println!("{} empty leaves {verb}", removed.len());
    Ok(ExitCode::SUCCESS)
}
