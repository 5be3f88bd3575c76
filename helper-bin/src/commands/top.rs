//! `cgroupctl top [--sort cpu|memory|pids|io] [--interval SECS] [--iterations N] [--json]`:
//! users sorted by CPU, memory, processes or IO, like lvetop/systemd-cgtop. On a terminal it
//! redraws every interval until Ctrl-C (rows cut to the window's height); otherwise (a pipe,
//! a file, a script) it prints one plain table after one interval, with no terminal codes.
//! Names are escaped like every table.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use cgroup_core::config::Config;
use cgroup_core::stats::top::{rates, sort, SortKey, UserRate};
use cgroup_core::stats::CgroupStats;
use cgroup_core::tree::dirfd::CgroupDir;
use cgroup_core::tree::Tree;

use cgroup_core::inventory::user_cgroups;
use cgroup_core::stats::users::collect;

use crate::global::GlobalArgs;
use crate::load::load;
use crate::output::table::{self, opt};
use crate::report::summary::LifeState;

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Sort by: cpu, memory, pids or io.
    #[arg(long, value_name = "KEY", default_value = "cpu")]
    pub sort: SortKey,
    /// Time between samples: seconds (fractions allowed), or a duration like 500ms, 5s.
    #[arg(long, value_name = "DURATION", default_value = "2", value_parser = crate::duration::secs_f64)]
    pub interval: f64,
    /// Stop after this many tables (default: 1 when not on a terminal, endless on one).
    #[arg(long, value_name = "N")]
    pub iterations: Option<u64>,
    /// Print each table as JSON (one array per line) instead.
    #[arg(long)]
    pub json: bool,
}

fn sample(tree: &Tree) -> Result<BTreeMap<String, CgroupStats>> {
    Ok(collect(tree, user_cgroups(tree)?)?
        .into_iter()
        .map(|u| (u.user, u.stats))
        .collect())
}

/// One row of `top`: the rates and the customer's state.
#[derive(Debug, Serialize)]
struct TopRow {
    #[serde(flatten)]
    rate: UserRate,
    #[serde(flatten)]
    life: LifeState,
}

fn with_state(config: &Config, tree: &Tree, rows: Vec<UserRate>) -> Vec<TopRow> {
    rows.into_iter()
        .map(|rate| {
            let dir = tree
                .user_dir(&rate.user)
                .ok()
                .and_then(|p| CgroupDir::open(&p).ok());
            let life = LifeState::of(config, &rate.user, dir.as_ref());
            TopRow { rate, life }
        })
        .collect()
}

fn render(rows: &[TopRow], limit: Option<usize>) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|row| {
            let r = &row.rate;
            vec![
                r.user.clone(),
                row.life.cell(),
                opt(r.cpu_percent, |v| format!("{v:.1}")),
                opt(r.memory_bytes, table::bytes),
                opt(r.pids, |v| v.to_string()),
                opt(r.io_bytes_per_sec, |v| {
                    format!("{}/s", table::bytes(v as u64))
                }),
            ]
        })
        .collect();
    table::render(&["USER", "STATE", "CPU%", "MEM", "PIDS", "IO"], &cells)
}

/// Rows of the terminal, if stdout is one.
fn terminal_rows() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    // SAFETY: TIOCGWINSZ fills a winsize; a zeroed one is valid to pass.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: stdout is a terminal and ws is writable.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    Some(if rc == 0 && ws.ws_row > 4 {
        usize::from(ws.ws_row)
    } else {
        24
    })
}

pub fn run(cli: &GlobalArgs, args: &TopArgs) -> Result<ExitCode> {
    let (config, tree) = load(cli)?;
    let interval = Duration::from_secs_f64(args.interval.clamp(0.1, 3600.0));
    let on_terminal = terminal_rows().is_some();
    let iterations = args
        .iterations
        .unwrap_or(if on_terminal { u64::MAX } else { 1 });
    let mut before = sample(&tree)?;
    let mut at = Instant::now();
    let mut out = std::io::stdout();
    for _ in 0..iterations {
        std::thread::sleep(interval);
        let after = sample(&tree)?;
        let now = Instant::now();
        let mut rows = rates(&before, &after, now.duration_since(at).as_secs_f64());
        sort(&mut rows, args.sort);
        let rows = with_state(&config, &tree, rows);
        let text = if args.json {
            format!("{}\n", serde_json::to_string(&rows)?)
        } else if let Some(height) = terminal_rows() {
            format!(
                "\x1b[H\x1b[2Jcgroupctl top: {} users, by {}, every {:.1}s (Ctrl-C quits)\n\n{}",
                rows.len(),
                format!("{:?}", args.sort).to_lowercase(),
                interval.as_secs_f64(),
                render(&rows, Some(height.saturating_sub(4)))
            )
        } else {
            render(&rows, None)
        };
        out.write_all(text.as_bytes())?;
        out.flush()?;
        before = after;
        at = now;
    }
    Ok(ExitCode::SUCCESS)
}
