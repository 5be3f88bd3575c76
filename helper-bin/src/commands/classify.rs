//! `cgroupctl classify PID --user U [--service NAME]`: move a running process (all its
//! threads) into a fresh leaf `users/<U>/<NAME>/pid-<PID>`, like cgclassify.
//!
//! The process must run as the user (real, effective and saved uid): a user controls the
//! processes in its delegated subtree (it can move them between its own cgroups and limit
//! them there), so another user's or root's process is only moved with --force.
//!
//! PID reuse: the process is pinned with a pidfd before its uid is read, and checked alive
//! (so its PID still names it) after the read, right before the move and after it. If it
//! exited meanwhile, whatever process the PID reached is moved back where that PID's process
//! was just before the write, and classify fails. The only window left is between that last
//! read of /proc/PID/cgroup and the write: the process would have to exit, be reaped and its
//! PID be handed out again within a few microseconds, and even then it is moved back.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use cgroup_core::inventory::status_ids;
use cgroup_core::nss::lookup_user;
use cgroup_core::service::{new_service_leaf, release_leaf, DEFAULT_SERVICE};

use crate::global::GlobalArgs;
use crate::load::load;
use crate::process::pidfd::{move_pinned, PidFd};

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// The process to move (with all its threads).
    pub pid: u32,
    /// The user whose cgroup receives it.
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// The service cgroup under the user's (created if needed).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SERVICE)]
    pub service: String,
    /// Move the process even if it does not run as the user.
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Moved {
    pid: u32,
    user: String,
    cgroup: String,
}

pub fn run(cli: &GlobalArgs, args: &ClassifyArgs) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    cgroup_core::names::validate_user_name(&args.user)?;
    let info = lookup_user(&args.user)?;
    let process = PidFd::open(args.pid).with_context(|| format!("process {}", args.pid))?;
    let status_path = Path::new("/proc").join(args.pid.to_string()).join("status");
    // Not strict UTF-8: the process's name (`Name:`) is its owner's choice.
    let status = cgroup_core::tree::fs::read_proc_file(&status_path)
        .with_context(|| format!("process {} (read {})", args.pid, status_path.display()))?;
    if !process.alive() {
        bail!("process {} exited", args.pid);
    }
    let uids = status_ids(&status, "Uid:")
        .with_context(|| format!("{}: no Uid line", status_path.display()))?;
    if !args.force && uids[..3].iter().any(|u| *u != info.uid) {
        bail!(
            "process {} runs as uid {}/{}/{} (real/effective/saved), not {}'s uid {}: refusing (--force moves it anyway)",
            args.pid, uids[0], uids[1], uids[2], info.name, info.uid
        );
    }
    // Handed to the user only once the process is in: see NewServiceLeaf.
    let new = new_service_leaf(&tree, &config, &info, &args.service, "pid", args.pid)?;
    test_hook_before_move();
    if let Err(e) = move_pinned(&tree, &process, new.path()) {
        let _ = release_leaf(&tree, new.path());
        return Err(e);
    }
    let moved_to = new.path().display().to_string();
    let leaf = new.hand_over().with_context(|| {
        format!(
            "process {} is in {moved_to}, but the leaf could not be handed to {}",
            args.pid, info.name
        )
    })?;
    let report = Moved {
        pid: args.pid,
        user: info.name,
        cgroup: leaf.display().to_string(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("moved {} to {}", report.pid, report.cgroup);
    }
    Ok(ExitCode::SUCCESS)
}

/// Debug builds only: lets tests/root recycle the PID between the check and the move.
/// `CGROUPCTL_TEST_PAUSE_BEFORE_MOVE=FILE`: create FILE, then wait until the test removes it.
fn test_hook_before_move() {
    #[cfg(debug_assertions)]
    if let Some(flag) = std::env::var_os("CGROUPCTL_TEST_PAUSE_BEFORE_MOVE") {
        let flag = std::path::PathBuf::from(flag);
        if std::fs::write(&flag, b"ready\n").is_ok() {
            while flag.exists() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}
