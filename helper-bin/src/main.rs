//! cgroupctl: the administrator's interface to pam_cgroup's tree. Each verb lives in its own
//! file under `commands/`; errors are reported in one line with a deliberate exit code.

mod commands;
mod exit;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cgroup_core::config::DEFAULT_CONFIG_PATH;

#[derive(Debug, Parser)]
#[command(
    name = "cgroupctl",
    version,
    about = "Manage pam_cgroup's per-user cgroup v2 tree",
    long_about = "cgroupctl manages the per-user cgroup v2 tree that pam_cgroup.so places every \
                  login in: it validates the configuration, shows users' limits and usage, \
                  changes limits live, and attaches the private-IP programs.\n\n\
                  Exit codes: 0 success, 1 a check found problems, 2 usage error, \
                  3 configuration error, 4 system error (cgroupfs, BPF, NSS)."
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration (like `sshd -t`); with --user, print that user's effective
    /// limits and where each comes from.
    Check(commands::check::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Check(args) => commands::check::run(&cli, args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("cgroupctl: {}", exit::one_line(&err));
            exit::code_for(&err)
        }
    }
}
