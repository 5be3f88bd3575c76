//! login-bench: times PAM sessions in-process, the way a busy sshd or cron opens them:
//! pam_start_confdir, pam_open_session, pam_close_session, pam_end, in a loop, warm-up
//! excluded. With --raw-floor it instead times the bare syscalls the job needs (mkdir a leaf,
//! write the pid to its cgroup.procs; write it back, rmdir): the physical floor.
//! Prints one JSON object with the median, p90 and p99 of each phase in microseconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use serde::Serialize;

use pam_cgroup_tests::pam_client::{PamTransaction, PAM_SUCCESS};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    confdir: Option<PathBuf>,
    #[arg(long, default_value = "bench")]
    service: String,
    #[arg(long, default_value = "root")]
    user: String,
    #[arg(long, default_value_t = 300)]
    iterations: usize,
    #[arg(long, default_value_t = 30)]
    warmup: usize,
    /// Time the raw syscalls instead, with leaves made in this cgroup directory.
    #[arg(long)]
    raw_floor: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Stats {
    median_us: f64,
    p90_us: f64,
    p99_us: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    iterations: usize,
    failures: usize,
    open: Stats,
    close: Stats,
    /// pam_start + pam_end (loading the stack's modules); absent for the raw floor.
    start_end: Option<Stats>,
}

fn stats(mut samples: Vec<u128>) -> Stats {
    samples.sort_unstable();
    let at = |p: f64| {
        let idx = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[idx] as f64 / 1000.0
    };
    Stats {
        median_us: at(0.5),
        p90_us: at(0.9),
        p99_us: at(0.99),
    }
}

fn own_cgroup_dir(mount: &std::path::Path) -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let rel = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    mount.join(rel.trim_start_matches('/'))
}

fn raw_floor(parent: &std::path::Path, args: &Args) -> Report {
    let mount = cgroup_core::mount::primary_cgroup2().unwrap().mount_point;
    let home = own_cgroup_dir(&mount);
    let pid = format!("{}\n", std::process::id());
    let (mut open, mut close) = (Vec::new(), Vec::new());
    for i in 0..args.warmup + args.iterations {
        let leaf = parent.join(format!("floor-{i}"));
        let t0 = Instant::now();
        std::fs::create_dir(&leaf).unwrap();
        std::fs::write(leaf.join("cgroup.procs"), &pid).unwrap();
        let t1 = Instant::now();
        std::fs::write(home.join("cgroup.procs"), &pid).unwrap();
        std::fs::remove_dir(&leaf).unwrap();
        let t2 = Instant::now();
        if i >= args.warmup {
            open.push((t1 - t0).as_nanos());
            close.push((t2 - t1).as_nanos());
        }
    }
    Report {
        iterations: args.iterations,
        failures: 0,
        open: stats(open),
        close: stats(close),
        start_end: None,
    }
}

fn pam_loop(confdir: &std::path::Path, args: &Args) -> Report {
    let (mut open, mut close, mut start_end) = (Vec::new(), Vec::new(), Vec::new());
    let mut failures = 0;
    for i in 0..args.warmup + args.iterations {
        let t0 = Instant::now();
        let mut pam = PamTransaction::start(&args.service, &args.user, confdir).unwrap();
        let t1 = Instant::now();
        let open_rc = pam.open_session();
        let t2 = Instant::now();
        let close_rc = pam.close_session();
        let t3 = Instant::now();
        drop(pam);
        let t4 = Instant::now();
        if open_rc != PAM_SUCCESS || close_rc != PAM_SUCCESS {
            failures += 1;
        }
        if i >= args.warmup {
            open.push((t2 - t1).as_nanos());
            close.push((t3 - t2).as_nanos());
            start_end.push((t1 - t0).as_nanos() + (t4 - t3).as_nanos());
        }
    }
    Report {
        iterations: args.iterations,
        failures,
        open: stats(open),
        close: stats(close),
        start_end: Some(stats(start_end)),
    }
}

fn main() {
    let args = Args::parse();
    let report = match (&args.raw_floor, &args.confdir) {
        (Some(parent), _) => raw_floor(parent, &args),
        (None, Some(confdir)) => pam_loop(confdir, &args),
        (None, None) => {
            eprintln!("login-bench: give --confdir or --raw-floor");
            std::process::exit(2);
        }
    };
    println!("{}", serde_json::to_string(&report).unwrap());
}
