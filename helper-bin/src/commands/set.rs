//! `cgroupctl set USER KEY=VALUE... | set --profile P USER`: change a user's limits or plan.
//! Each value is validated, the user's file (`users/<user>.toml` next to the config) is
//! rewritten atomically with its comments kept, and the result is applied to the live cgroup
//! at once; a user without a live cgroup gets it at the next login.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::apply::{apply_user, ApplyReport};
use cgroup_core::nss::lookup_user;
use cgroup_core::userfile_edit::{parse_assignments, update_user_file, Edit};

use crate::apply_all::describe;
use crate::global::GlobalArgs;
use crate::load::load;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  cgroupctl set alice memory.max=2G pids.max=300\n  \
    cgroupctl set alice memory.max=        # remove the key: the profile's or default value applies\n  \
    cgroupctl set --profile pro alice\n  \
    cgroupctl set alice io.max='8:0 rbps=10M' io.max='8:16 wbps=5M'   # one line per device"
)]
pub struct SetArgs {
    /// The user.
    pub user: String,
    /// Limits as KEY=VALUE (cgroup file names: memory.max, cpu.max, pids.max, ...). An empty
    /// VALUE removes the key from the user's file.
    #[arg(value_name = "KEY=VALUE")]
    pub assignments: Vec<String>,
    /// Put the user on this plan ([profiles.NAME] of the config).
    #[arg(long, value_name = "NAME", conflicts_with = "clear_profile")]
    pub profile: Option<String>,
    /// Remove the user file's `profile` (the user's groups decide the plan again).
    #[arg(long)]
    pub clear_profile: bool,
    /// Only write the file; leave the live cgroup until the next login or reload.
    #[arg(long)]
    pub no_apply: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct SetReport {
    file: String,
    content: String,
    applied: Option<ApplyReport>,
}

pub fn run(cli: &GlobalArgs, args: &SetArgs) -> Result<ExitCode> {
    let mut edits = parse_assignments(&args.assignments)?;
    if let Some(p) = &args.profile {
        edits.push(Edit::Profile(Some(p.clone())));
    }
    if args.clear_profile {
        edits.push(Edit::Profile(None));
    }
    if edits.is_empty() {
        return Err(crate::exit::Usage(
            "nothing to set: give KEY=VALUE arguments, --profile NAME or --clear-profile".into(),
        )
        .into());
    }
    let (config, tree) = load(cli)?;
    cgroup_core::names::validate_user_name(&args.user)?;
    // An unknown user is a typo far more often than a plan: refuse before writing.
    let info = lookup_user(&args.user)?;
    let update = update_user_file(&config, &args.user, &edits)?;
    let applied = if args.no_apply {
        None
    } else {
        Some(apply_user(&tree, &config, &info, false)?)
    };
    if args.json {
        let report = SetReport {
            file: update.path.display().to_string(),
            content: update.new_text,
            applied,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("wrote {}", update.path.display());
    match &applied {
        Some(r) => describe(r).iter().for_each(|l| println!("{l}")),
        None => println!("{}: live cgroup not touched (--no-apply)", args.user),
    }
    Ok(ExitCode::SUCCESS)
}
