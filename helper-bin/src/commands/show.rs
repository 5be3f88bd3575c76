//! `cgroupctl show USER [--json]`: one user in depth: profile and effective limits (with
//! where each comes from and the value live in the cgroup), usage and fault counters, and
//! every cgroup with its processes (every leaf, and every other cgroup holding a process).
//! A cgroup that cannot be read is shown with its error; the others are still listed.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::config::Config;
use cgroup_core::inventory::{leaf_kind, proc_info, user_cgroups, LeafKind, ProcInfo};
use cgroup_core::nss::{group_names, lookup_user};
use cgroup_core::private_ip::traffic::TrafficReader;
use cgroup_core::stats::{read_optional, CgroupStats};
use cgroup_core::tree::processes::subtree_processes;

use cgroup_core::tree::dirfd::CgroupDir;

use cgroup_core::limits::human::human_lines;

use crate::global::GlobalArgs;
use crate::load::{load, selected_users};
use crate::output::escape::{json_bytes, term, term_bytes};
use crate::output::table::{self, max_cell, opt};
use crate::report::sessions::{self, SessionRow};
use crate::report::summary::{summary, summary_without_cgroup, suspension_of, LifeState};

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The user.
    pub user: String,
    /// Print JSON (absent values are null, never 0).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct LimitRow {
    key: String,
    configured: String,
    source: String,
    /// The file's content now; `None` when its controller is not enabled here.
    live: Option<String>,
}

#[derive(Debug, Serialize)]
struct LeafRow {
    /// Relative to the user cgroup; a name that is not UTF-8 as `escape::json_bytes` writes it.
    path: String,
    #[serde(skip)]
    path_for_terminal: String,
    #[serde(flatten)]
    kind: LeafKind,
    processes: Vec<ProcInfo>,
    /// Why this cgroup's processes or children could not be read.
    error: Option<String>,
}

/// Every cgroup below the user cgroup that is a leaf, holds a process or could not be read.
fn leaf_rows(user_dir: &Path) -> Result<Vec<LeafRow>> {
    let dir = CgroupDir::open(user_dir)?;
    let proc_root = Path::new("/proc");
    Ok(subtree_processes(&dir)
        .into_iter()
        .filter(|c| {
            let listed = !c.has_children || !c.pids.is_empty() || c.error.is_some();
            // The user cgroup itself is shown only if something is wrong there: it never
            // holds a process in this layout.
            listed && (!c.rel.as_os_str().is_empty() || !c.pids.is_empty() || c.error.is_some())
        })
        .map(|c| {
            let bytes = c.rel.as_os_str().as_bytes();
            let (path, path_for_terminal) = if bytes.is_empty() {
                (".".to_string(), ".".to_string())
            } else {
                (json_bytes(bytes), term_bytes(bytes))
            };
            LeafRow {
                path,
                path_for_terminal,
                kind: leaf_kind(&c.rel),
                processes: c.pids.iter().map(|p| proc_info(proc_root, *p)).collect(),
                error: c.error.map(|e| e.to_string()),
            }
        })
        .collect())
}

#[derive(Debug, Serialize)]
struct ShowReport {
    user: String,
    uid: Option<u32>,
    profile: Option<String>,
    /// users/<user>; null for a suspended customer with no cgroup.
    path: Option<String>,
    limits: Vec<LimitRow>,
    stats: CgroupStats,
    #[serde(flatten)]
    life: LifeState,
    /// `sessions.max` and where it comes from.
    sessions_max: Option<String>,
    sessions: Vec<SessionRow>,
    leaves: Vec<LeafRow>,
}

fn limit_rows(config: &Config, user: &str, dir: &Path) -> Result<Vec<LimitRow>> {
    let info = lookup_user(user)?;
    let groups = group_names(&info)?;
    let file = config.load_user_file(user)?;
    let effective = config.effective_limits(&groups, file.as_ref());
    let mut rows = Vec::new();
    for r in effective.limits.values() {
        let live = read_optional(&dir.join(r.limit.key.file_name()))?
            .map(|t| t.lines().map(str::trim).collect::<Vec<_>>().join("; "));
        rows.push(LimitRow {
            key: r.limit.key.file_name().to_string(),
            configured: r.limit.lines.join("; "),
            source: r.source.to_string(),
            live,
        });
    }
    Ok(rows)
}

/// The user's sessions.max (with its source).
fn sessions_cap(config: &Config, user: &str) -> Result<Option<String>> {
    let info = lookup_user(user)?;
    let groups = group_names(&info)?;
    let file = config.load_user_file(user)?;
    Ok(config
        .sessions_max_for(&groups, file.as_ref())
        .map(|(n, source)| format!("{n} ({source})")))
}

pub fn run(cli: &GlobalArgs, args: &ShowArgs) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    cgroup_core::names::validate_user_name(&args.user)?;
    let user = user_cgroups(&tree)?
        .into_iter()
        .find(|u| u.name == args.user);
    // A suspended customer with nothing running has no cgroup: still shown.
    let (s, leaves, sessions) = match &user {
        Some(user) => {
            let mut s = summary(&config, user)?;
            s.stats.network = cgroup_core::stats::users::network_of(
                TrafficReader::open(&tree)?.as_ref(),
                &user.path,
            )?;
            let sessions = sessions::collect(&config, &tree, Some(&user.name), true)?;
            (s, leaf_rows(&user.path)?, sessions)
        }
        None if suspension_of(&config, &args.user).is_some() => (
            summary_without_cgroup(&config, &args.user),
            Vec::new(),
            Vec::new(),
        ),
        // The error that says the user has no cgroup.
        None => {
            selected_users(&tree, Some(&args.user))?;
            return Ok(ExitCode::FAILURE);
        }
    };
    let user_path = match s.path.clone() {
        Some(p) => p,
        None => tree.user_dir(&args.user)?,
    };
    let report = ShowReport {
        user: s.user.clone(),
        uid: s.uid,
        profile: s.profile.clone(),
        path: s.path.as_ref().map(|p| p.display().to_string()),
        limits: limit_rows(&config, &args.user, &user_path)?,
        stats: s.stats.clone(),
        life: s.life.clone(),
        sessions_max: sessions_cap(&config, &args.user)?,
        sessions,
        leaves,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "user {} (uid {})",
        term(&report.user),
        opt(report.uid, |u| u.to_string())
    );
    println!(
        "  cgroup:   {}",
        term(
            report
                .path
                .as_deref()
                .unwrap_or("(none: nothing of it runs)")
        )
    );
    println!("  state:    {}", report.life.state);
    println!(
        "  profile:  {}",
        term(report.profile.as_deref().unwrap_or("(none)"))
    );
    println!(
        "  memory:   {} of {} (peak {})",
        opt(s.memory_bytes, table::bytes),
        max_cell(s.memory_max, table::bytes),
        opt(s.stats.memory_peak, table::bytes)
    );
    println!("  cpu:      {}", opt(s.cpu_usage_usec, table::usec));
    println!(
        "  pids:     {} of {}",
        opt(s.pids, |v| v.to_string()),
        max_cell(s.pids_max, |v| v.to_string())
    );
    if let Some(t) = s.stats.network {
        for (scope, f) in [("loopback", t.loopback), ("external", t.external)] {
            println!(
                "  net {scope:<8} in {} ({} packets), out {} ({} packets)",
                table::bytes(f.receive_bytes),
                f.receive_packets,
                table::bytes(f.transmit_bytes),
                f.transmit_packets
            );
        }
    }
    println!("\nlimits:");
    if report.limits.is_empty() {
        println!("  (none configured)");
    } else {
        let rows: Vec<Vec<String>> = report
            .limits
            .iter()
            .map(|l| {
                // Human units here (4G, 200%); JSON keeps the kernel's text.
                vec![
                    format!("  {}", l.key),
                    human_lines(&l.key, &l.configured),
                    l.live
                        .as_deref()
                        .map(|v| human_lines(&l.key, v))
                        .unwrap_or_else(|| "(controller not enabled)".into()),
                    l.source.clone(),
                ]
            })
            .collect();
        table::print(&["  KEY", "CONFIGURED", "LIVE", "SOURCE"], &rows);
    }
    if let Some(reason) = &report.life.suspended_reason {
        println!(
            "  SUSPENDED: {}{}",
            term(reason),
            report
                .life
                .suspended_at
                .as_deref()
                .map(|at| format!(" (since {})", term(at)))
                .unwrap_or_default()
        );
    }
    println!(
        "\nsessions (sessions.max: {}):",
        report.sessions_max.as_deref().unwrap_or("no cap")
    );
    if report.sessions.is_empty() {
        println!("  (none)");
    } else {
        sessions::print_table(&report.sessions);
    }
    println!("\nleaves:");
    if report.leaves.is_empty() {
        println!("  (none)");
    }
    // Cells escaped here: a cgroup's name is bytes, which `term` alone cannot show.
    let mut rows = Vec::new();
    for leaf in &report.leaves {
        let path = format!("  {}", leaf.path_for_terminal);
        if let Some(error) = &leaf.error {
            rows.push(vec![
                path.clone(),
                "-".into(),
                "-".into(),
                format!("(error: {})", term(error)),
            ]);
        } else if leaf.processes.is_empty() {
            rows.push(vec![path.clone(), "-".into(), "-".into(), "(empty)".into()]);
        }
        for p in &leaf.processes {
            rows.push(vec![
                path.clone(),
                p.pid.to_string(),
                opt(p.uid, |u| u.to_string()),
                term(&p.command),
            ]);
        }
    }
    if !rows.is_empty() {
        table::print_escaped(&["  LEAF", "PID", "UID", "COMMAND"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}
