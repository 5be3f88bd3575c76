//! `cgroupctl doctor [--json]`: OK/WARN/FAIL findings about the kernel, the config, the
//! tree, private IPs, /proc hidepid, the PAM stacks and logind, each with why and how to fix.
//! Exit 1 when any finding is FAIL.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use cgroup_core::doctor::{self, Inputs, Status, DEFAULT_SERVICES};

use crate::global::GlobalArgs;
use crate::output::findings::print_findings;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// PAM stack directory to check.
    #[arg(long, value_name = "DIR", default_value = "/etc/pam.d")]
    pub pam_dir: PathBuf,
    /// PAM services that must call the module (repeatable).
    #[arg(long = "service", value_name = "NAME", default_values_t = DEFAULT_SERVICES.iter().map(|s| s.to_string()))]
    pub services: Vec<String>,
    /// The proc filesystem whose self/mountinfo is read (cgroup2 and /proc mounts).
    #[arg(long = "proc", value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,
    /// logind.conf (drop-ins are read from PATH.d/*.conf).
    #[arg(long, value_name = "PATH", default_value = doctor::logind::DEFAULT_CONF)]
    pub logind_conf: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &GlobalArgs, args: &DoctorArgs) -> Result<ExitCode> {
    let findings = doctor::run(&Inputs {
        config: crate::load::config_path(cli),
        proc_root: args.proc_root.clone(),
        pam_dir: args.pam_dir.clone(),
        services: args.services.clone(),
        logind_conf: args.logind_conf.clone(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        print_findings(&findings);
    }
    let failed = findings.iter().any(|f| f.status == Status::Fail);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
