//! `cgroupctl path USER [--all]`: the directory of a user's cgroup, `users/<user>.<tag>` (the
//! tag is keyed: only root can compute it, so the admin and the tests ask here). With --all,
//! every existing cgroup of the user, a legacy `users/<user>` an upgrade left included.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use cgroup_core::tree::user_cgroup::UserCgroup;

use crate::global::GlobalArgs;
use crate::load::load;

#[derive(Debug, Args)]
pub struct PathArgs {
    /// The user.
    pub user: String,
    /// Every existing cgroup of the user (its own, then a legacy one), one per line; exit 1
    /// when there is none.
    #[arg(long)]
    pub all: bool,
}

pub fn run(cli: &GlobalArgs, args: &PathArgs) -> Result<ExitCode> {
    let (_config, tree) = load(cli)?;
    if !args.all {
        // Where the user's cgroup is or would be made: it need not exist yet.
        println!("{}", tree.user_dir(&args.user)?.display());
        return Ok(ExitCode::SUCCESS);
    }
    cgroup_core::names::validate_user_name(&args.user)?;
    let all = UserCgroup::open_all(&tree, &args.user)?;
    for uc in &all {
        println!("{}", uc.path().display());
    }
    Ok(if all.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
