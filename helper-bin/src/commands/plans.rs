//! `cgroupctl plans [--json]`: every plan (`[profiles.NAME]`) with its limits, the NSS groups
//! mapped to it (`[groups]`) and its members (like lvectl package-list): the customers known
//! here (a user cgroup, or a user file) whose effective plan it is, resolved as a login
//! resolves it (user file, then groups). Customers NSS cannot resolve are listed apart.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::config::Config;
use cgroup_core::inventory::user_cgroups;
use cgroup_core::nss::{group_names, lookup_user};

use crate::global::GlobalArgs;
use crate::load::load;
use crate::output::escape::term;
use crate::output::table;

#[derive(Debug, Args)]
pub struct PlansArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Plan {
    /// The plan's name; null for the customers on `[limits]` alone (no plan).
    plan: Option<String>,
    /// Limit file -> value as configured (the plan's own keys; `[limits]` fills the rest).
    limits: std::collections::BTreeMap<String, String>,
    /// NSS groups mapped to the plan in `[groups]`.
    groups: Vec<String>,
    members: Vec<String>,
}

#[derive(Debug, Serialize)]
struct PlansReport {
    plans: Vec<Plan>,
    /// Customers known here whose plan cannot be told (NSS does not resolve them, or their
    /// user file is broken), with why.
    unresolved: Vec<(String, String)>,
}

/// Customers known on this host: a cgroup under users/ or a file in the users directory.
fn known_customers(config: &Config, tree: &cgroup_core::tree::Tree) -> Result<BTreeSet<String>> {
    let mut out: BTreeSet<String> = user_cgroups(tree)?.into_iter().map(|u| u.name).collect();
    if let Ok(entries) = std::fs::read_dir(config.users_dir()) {
        for e in entries.filter_map(|e| e.ok()) {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if let Some(user) = name.strip_suffix(".toml") {
                if cgroup_core::names::validate_user_name(user).is_ok() {
                    out.insert(user.to_string());
                }
            }
        }
    }
    Ok(out)
}

fn limit_texts(
    limits: &std::collections::BTreeMap<cgroup_core::limits::LimitKey, cgroup_core::limits::Limit>,
) -> std::collections::BTreeMap<String, String> {
    limits
        .values()
        .map(|l| (l.key.file_name().to_string(), l.lines.join("; ")))
        .collect()
}

pub fn run(cli: &GlobalArgs, args: &PlansArgs) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    let mut plans: Vec<Plan> = std::iter::once(Plan {
        plan: None,
        limits: limit_texts(&config.limits),
        groups: Vec::new(),
        members: Vec::new(),
    })
    .chain(config.profiles.iter().map(|(name, limits)| {
        Plan {
            plan: Some(name.clone()),
            limits: limit_texts(limits),
            groups: config
                .groups
                .iter()
                .filter(|(_, p)| p == name)
                .map(|(g, _)| g.clone())
                .collect(),
            members: Vec::new(),
        }
    }))
    .collect();
    let mut unresolved = Vec::new();
    for user in known_customers(&config, &tree)? {
        let resolved = lookup_user(&user).and_then(|info| group_names(&info));
        let groups = match resolved {
            Ok(g) => g,
            Err(e) => {
                unresolved.push((user, e.to_string()));
                continue;
            }
        };
        let file = match config.load_user_file(&user) {
            Ok(f) => f,
            Err(e) => {
                unresolved.push((user, e.to_string()));
                continue;
            }
        };
        let profile = config.effective_limits(&groups, file.as_ref()).profile;
        if let Some(p) = plans.iter_mut().find(|p| p.plan == profile) {
            p.members.push(user);
        }
    }
    let report = PlansReport { plans, unresolved };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = report
        .plans
        .iter()
        .map(|p| {
            let limits: Vec<String> = p.limits.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                p.plan.clone().unwrap_or_else(|| "(none: [limits])".into()),
                if limits.is_empty() {
                    "-".into()
                } else {
                    limits.join(" ")
                },
                if p.groups.is_empty() {
                    "-".into()
                } else {
                    p.groups.join(",")
                },
                p.members.len().to_string(),
                if p.members.is_empty() {
                    "-".into()
                } else {
                    p.members.join(",")
                },
            ]
        })
        .collect();
    table::print(&["PLAN", "LIMITS", "GROUPS", "N", "MEMBERS"], &rows);
    for (user, why) in &report.unresolved {
        println!("{}: plan unknown: {}", term(user), term(why));
    }
    Ok(ExitCode::SUCCESS)
}
