//! `cgroupctl check [--user U] [--json]`: every config check doctor runs (validity with
//! file:line:col: key, permissions, user files, the tree root's place, plan groups, limits
//! that cannot act), and a user's effective limits with where each came from (default,
//! profile, user file). Exit 3 when the file is broken (logins then use its last good copy), 1
//! when another check FAILs; a good file is kept as the last good one.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::config::last_good::Keep;
use cgroup_core::config::{Config, ConfigError};
use cgroup_core::doctor::{self, Finding, Status};
use cgroup_core::limits::human::human_lines;
use cgroup_core::names::validate_user_name;
use cgroup_core::nss::{group_names, lookup_user};
use cgroup_core::policy::exemption;

use crate::exit::{CONFIG_ERROR, PROBLEMS_FOUND};
use crate::global::GlobalArgs;

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
    /// No finding is FAIL.
    valid: bool,
    /// Every config check doctor runs (doctor's finding format).
    findings: Vec<Finding>,
    user: Option<UserReport>,
    #[serde(flatten)]
    broken: Option<BrokenFile>,
}

/// Where a file that does not parse is broken (`check --json`'s top-level fields).
#[derive(Debug, Serialize)]
struct BrokenFile {
    error: String,
    code: u8,
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    key: Option<String>,
    reason: String,
}

impl BrokenFile {
    fn of(e: &ConfigError) -> BrokenFile {
        BrokenFile {
            error: e.to_string(),
            code: CONFIG_ERROR,
            file: e.file.display().to_string(),
            line: e.line,
            column: e.column,
            key: e.key.clone(),
            reason: e.reason.clone(),
        }
    }
}

pub fn run(cli: &GlobalArgs, args: &CheckArgs) -> Result<ExitCode> {
    let path = crate::load::config_path(cli);
    // The administrator's word that the file is meant: a good one is kept at once.
    let (findings, config) = doctor::check_config(&path, Keep::as_root(Keep::Now));
    let valid = !findings.iter().any(|f| f.status == Status::Fail);
    let user = match (&args.user, &config) {
        (Some(name), Some(config)) => Some(user_report(config, name)?),
        _ => None,
    };
    // A file that does not parse: its error, with the place, at the top of the JSON too.
    let broken = match Config::load(&path) {
        Err(e) => Some(BrokenFile::of(&e)),
        Ok(_) => None,
    };
    let report = CheckReport {
        config: path.display().to_string(),
        valid,
        findings,
        user,
        broken,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        // The one-line error on stderr too, as without --json.
        if let Some(b) = &report.broken {
            eprintln!("cgroupctl: {}", crate::output::escape::term(&b.error));
        }
    } else {
        print_text(&report);
    }
    // A broken file is a config error (3) as it always was; another FAIL, problems found (1).
    let broken = report
        .findings
        .iter()
        .any(|f| f.check == "config" && f.status == Status::Fail);
    Ok(if broken {
        ExitCode::from(CONFIG_ERROR)
    } else if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(PROBLEMS_FOUND)
    })
}

fn user_report(config: &Config, name: &str) -> Result<UserReport> {
    validate_user_name(name)?;
    let user = lookup_user(name)?;
    let groups = group_names(&user)?;
    // What applies: a broken file's last good copy (the findings FAIL the file itself).
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
    // sessions.max is not a cgroup file, but it is resolved with the precedence of the limits.
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
    crate::output::findings::print_findings(&report.findings);
    println!(
        "{}: {}",
        report.config,
        if report.valid { "OK" } else { "FAILED" }
    );
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
