//! `cgroupctl ip USER [--json]`: the user's private loopback address, 127.0.0.0 | primary gid.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::names::validate_user_name;
use cgroup_core::nss::lookup_user;
use cgroup_core::private_ip::private_address_of;

use crate::global::GlobalArgs;

#[derive(Debug, Args)]
pub struct IpArgs {
    /// The user (looked up through NSS).
    #[arg(value_name = "USER")]
    pub user: String,
    /// Print JSON instead of the bare address.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct IpReport {
    user: String,
    gid: u32,
    address: String,
    /// `[private_ip] enabled`: whether the address is enforced on this host.
    enabled: bool,
}

pub fn run(cli: &GlobalArgs, args: &IpArgs) -> Result<ExitCode> {
    let config = crate::load::load_config(cli)?;
    validate_user_name(&args.user)?;
    let user = lookup_user(&args.user)?;
    let address = private_address_of(&user, config.private_ip.min_gid)?;
    if args.json {
        let report = IpReport {
            user: user.name,
            gid: user.gid,
            address: address.to_string(),
            enabled: config.private_ip.enabled,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{address}");
    }
    Ok(ExitCode::SUCCESS)
}
