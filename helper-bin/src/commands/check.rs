//! `cgroupctl check [--user U] [--json]`: validate the config and show a user's effective
//! limits with where each came from (default, profile, user file).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::config::{Config, ConfigError};
use cgroup_core::limits::human::human_lines;
use cgroup_core::names::validate_user_name;
use cgroup_core::nss::{group_names, lookup_user};
use cgroup_core::session::exemption;

use crate::Cli;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the effective limits of this user.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct LimitRow {
    key: String,
    value: String,
    source: String,
}

#[derive(Debug, Serialize)]
struct UserReport {
    user: String,
    uid: u32,
    exempt: Option<String>,
    profile: Option<String>,
    user_file: Option<String>,
    limits: Vec<LimitRow>,
}

#[derive(Debug, Serialize)]
struct CheckReport {
    config: String,
    valid: bool,
    user: Option<UserReport>,
}

pub fn run(cli: &Cli, args: &CheckArgs) -> Result<ExitCode> {
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) if args.json => return broken_json(cli, &e),
        Err(e) => return Err(e.into()),
    };
    super::keep_policy::keep(&config);
    let user = match &args.user {
        Some(name) => Some(user_report(&config, name)?),
        None => None,
    };
    let report = CheckReport {
        config: cli.config.display().to_string(),
        valid: true,
        user,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// `check --json` on a file that does not parse: the report says so, with the place, on
/// stdout (and the one-line error on stderr, as without --json); exit 3 as a config error.
fn broken_json(cli: &Cli, e: &ConfigError) -> Result<ExitCode> {
    let report = serde_json::json!({
        "config": cli.config.display().to_string(),
        "valid": false,
        "error": e.to_string(),
        "code": crate::exit::CONFIG_ERROR,
        "file": e.file.display().to_string(),
        "line": e.line,
        "column": e.column,
        "key": e.key,
        "reason": e.reason,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!("cgroupctl: {}", super::escape::term(&e.to_string()));
    Ok(ExitCode::from(crate::exit::CONFIG_ERROR))
}

fn user_report(config: &Config, name: &str) -> Result<UserReport> {
    validate_user_name(name)?;
    let user = lookup_user(name)?;
    let groups = group_names(&user)?;
    let user_file = config.load_user_file(name)?;
    let effective = config.effective_limits(&groups, user_file.as_ref());
    let mut limits: Vec<LimitRow> = effective
        .limits
        .values()
        .map(|r| LimitRow {
            key: r.limit.key.file_name().to_string(),
            value: r.limit.lines.join("; "),
            source: r.source.to_string(),
        })
        .collect();
    // Not a cgroup file, resolved with the same precedence (issue 13).
    if let Some((max, source)) = config.sessions_max_for(&groups, user_file.as_ref()) {
        limits.push(LimitRow {
            key: cgroup_core::limits::SESSIONS_MAX_KEY.to_string(),
            value: max.to_string(),
            source: source.to_string(),
        });
    }
    Ok(UserReport {
        user: user.name.clone(),
        uid: user.uid,
        exempt: exemption(&config.policy, &user, Some(&groups)),
        profile: effective.profile,
        user_file: user_file.map(|f| f.path.display().to_string()),
        limits,
    })
}

fn print_text(report: &CheckReport) {
    println!("{}: OK", report.config);
    let Some(user) = &report.user else { return };
    println!("user {} (uid {})", user.user, user.uid);
    if let Some(reason) = &user.exempt {
        println!("  exempt: {reason} (never confined; limits below are not applied)");
    }
    println!("  profile: {}", user.profile.as_deref().unwrap_or("(none)"));
    println!(
        "  user file: {}",
        user.user_file.as_deref().unwrap_or("(none)")
    );
    if user.limits.is_empty() {
        println!("  limits: (none)");
        return;
    }
    let key_width = user.limits.iter().map(|l| l.key.len()).max().unwrap_or(0);
    // Human units here (4G, 200%); JSON keeps the kernel's text.
    let shown: Vec<String> = user
        .limits
        .iter()
        .map(|l| human_lines(&l.key, &l.value))
        .collect();
    let value_width = shown.iter().map(String::len).max().unwrap_or(0);
    for (l, value) in user.limits.iter().zip(&shown) {
        println!(
            "  {:key_width$}  {value:value_width$}  ({})",
            l.key, l.source
        );
    }
}
