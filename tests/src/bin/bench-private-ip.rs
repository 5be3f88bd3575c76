//! bench-private-ip: what the private-IP programs cost. In a throwaway tree, a forked child
//! running as a confined gid times socket+bind+close (bind 0.0.0.0 on a port in range, which
//! the programs rewrite) and socket+connect+accept+close loops, alternately without and with
//! the programs attached at the tree root, and prints ns/op and the with/without ratio
//! (goal: <= 1.10). With kernel BPF statistics on (BPF_ENABLE_STATS) it also prints what one
//! program run costs inside the kernel, which the syscall-level loops cannot resolve on a busy
//! machine. A benchmark, never a test: numbers depend on the machine. Run as root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;

use cgroup_core::config::PrivateIpConfig;
use cgroup_core::mount::primary_cgroup2;
use cgroup_core::nss::UserInfo;
use cgroup_core::private_ip::{
    attached_programs, ensure_bpffs, install, pin_dir, private_address, register_fence, uninstall,
    DEFAULT_BPFFS,
};
use cgroup_core::tree::Tree;
use libbpf_rs::query::ProgInfoIter;
use pam_cgroup_tests::support::probe::{bench_as, BenchTimes, Identity};

#[derive(Debug, Parser)]
#[command(
    name = "bench-private-ip",
    about = "Time bind and connect with and without the private-IP programs"
)]
struct Args {
    /// Iterations of each loop per round.
    #[arg(long, default_value_t = 10000)]
    iterations: u32,
    /// Rounds (each runs without, then with the programs); the best round of each counts,
    /// which filters out other load on the machine.
    #[arg(long, default_value_t = 12)]
    rounds: u32,
    /// Port bound by the loops (inside the configured range, so binds are rewritten).
    #[arg(long, default_value_t = 31310)]
    port: u16,
    /// Print one JSON object (for tests/bench/run) instead of the table.
    #[arg(long)]
    json: bool,
}

/// The bench's tree and pins, removed on drop whatever happened.
struct BenchTree {
    root: PathBuf,
    pins: PathBuf,
    leaf: PathBuf,
}

impl BenchTree {
    fn new() -> Result<BenchTree> {
        let mount = primary_cgroup2()?;
        let root = mount
            .mount_point
            .join(format!("pip-bench-{}", std::process::id()));
        let leaf = root.join("users/bench/s");
        let pins = pin_dir(Path::new(DEFAULT_BPFFS), &root)?;
        let tree = BenchTree { root, pins, leaf };
        std::fs::create_dir_all(&tree.leaf)
            .with_context(|| format!("mkdir {}", tree.leaf.display()))?;
        Ok(tree)
    }
}

impl Drop for BenchTree {
    fn drop(&mut self) {
        if let Err(e) = uninstall(&self.root, &self.pins) {
            eprintln!("cleanup: {e}");
        }
        let mut dir = self.leaf.clone();
        while dir.starts_with(&self.root) {
            if let Err(e) = std::fs::remove_dir(&dir) {
                eprintln!("cleanup: rmdir {}: {e}", dir.display());
            }
            if !dir.pop() {
                break;
            }
        }
    }
}

fn best(runs: &[BenchTimes]) -> BenchTimes {
    let min = |f: fn(&BenchTimes) -> f64| runs.iter().map(f).fold(f64::INFINITY, f64::min);
    BenchTimes {
        bind_tcp_ns: min(|t| t.bind_tcp_ns),
        bind_direct_ns: min(|t| t.bind_direct_ns),
        bind_udp_ns: min(|t| t.bind_udp_ns),
        connect_ns: min(|t| t.connect_ns),
    }
}

/// Kernel statistics on while the guard lives (an fd from BPF_ENABLE_STATS).
struct StatsOn(#[allow(dead_code)] Option<std::os::fd::OwnedFd>);

impl StatsOn {
    fn enable() -> StatsOn {
        // SAFETY: plain bpf(2) wrapper; returns a new fd or a negative error.
        let fd = unsafe {
            libbpf_rs::libbpf_sys::bpf_enable_stats(libbpf_rs::libbpf_sys::BPF_STATS_RUN_TIME)
        };
        if fd < 0 {
            eprintln!("BPF statistics unavailable ({fd}): no per-run column");
            return StatsOn(None);
        }
        // SAFETY: the kernel just gave us this fd.
        StatsOn(Some(unsafe {
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        }))
    }
}

/// Total (run_time_ns, run_cnt) of the programs attached at `root` for `names`.
fn program_stats(root: &Path, names: &[&str]) -> Result<(u64, u64)> {
    let ids: Vec<u32> = attached_programs(root)?
        .into_iter()
        .filter(|a| names.contains(&a.hook.prog_name))
        .flat_map(|a| a.ours)
        .collect();
    Ok(ProgInfoIter::default()
        .filter(|p| ids.contains(&p.id))
        .fold((0, 0), |(t, n), p| (t + p.run_time_ns, n + p.run_cnt)))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !nix::unistd::geteuid().is_root() {
        bail!("run as root (it makes cgroups and attaches BPF programs)");
    }
    let policy = PrivateIpConfig {
        enabled: true,
        min_gid: 2000,
        ports: args.port.saturating_sub(10)..=args.port.saturating_add(10),
    };
    let who = Identity {
        uid: 20000 + std::process::id() % 10000,
        gid: 20000 + std::process::id() % 10000,
    };
    let bind: SocketAddr = SocketAddr::from(([0, 0, 0, 0], args.port));
    let private = private_address(who.gid, policy.min_gid).map_err(anyhow::Error::msg)?;
    let direct = SocketAddr::from((private, args.port));
    let tree = BenchTree::new()?;
    let mount = primary_cgroup2()?;
    ensure_bpffs(Path::new(DEFAULT_BPFFS))?;
    let stats = StatsOn::enable();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let (mut bind_runs, mut connect_runs) = ((0u64, 0u64), (0u64, 0u64));
    for round in 0..args.rounds {
        // Alternate which goes first, so a slow start or a drift does not favour one side.
        let run =
            || bench_as(&tree.leaf, who, bind, direct, args.iterations).map_err(anyhow::Error::msg);
        if round % 2 == 1 {
            uninstall(&tree.root, &tree.pins)?;
            without.push(run()?);
        }
        let core = Tree::locate_in(std::slice::from_ref(&mount), Some(&tree.root))?;
        install(&core, &tree.pins, &policy)?;
        // "bench" is no NSS user (init leaves it unregistered): register its fence by hand,
        // as a login would, so the loops run the confined path with an address.
        let user = UserInfo {
            name: "bench".into(),
            uid: who.uid,
            gid: who.gid,
        };
        register_fence(&core, &policy, &core.users_dir().join("bench"), &user)?;
        with.push(run()?);
        let b = program_stats(&tree.root, &["pcg_bind4"])?;
        let c = program_stats(&tree.root, &["pcg_connect4"])?;
        uninstall(&tree.root, &tree.pins)?;
        if round % 2 == 0 {
            without.push(run()?);
        }
        bind_runs = (bind_runs.0 + b.0, bind_runs.1 + b.1);
        connect_runs = (connect_runs.0 + c.0, connect_runs.1 + c.1);
        eprintln!("round {}/{} done", round + 1, args.rounds);
    }
    drop(stats);
    let ns_per_run = |(t, n): (u64, u64)| (n > 0).then(|| t as f64 / n as f64);
    let per_run = |runs| ns_per_run(runs).map_or("-".to_string(), |ns| format!("{ns:.1}"));
    let (a, b) = (best(&without), best(&with));
    if args.json {
        let prog = |runs| ns_per_run(runs);
        println!(
            "{}",
            serde_json::json!({
                "iterations": args.iterations,
                "rounds": args.rounds,
                "bind_without_ns": a.bind_tcp_ns,
                "bind_with_ns": b.bind_tcp_ns,
                "bind_ratio": b.bind_tcp_ns / a.bind_tcp_ns,
                "bind_direct_ratio": b.bind_direct_ns / a.bind_direct_ns,
                "udp_bind_ratio": b.bind_udp_ns / a.bind_udp_ns,
                "connect_without_ns": a.connect_ns,
                "connect_with_ns": b.connect_ns,
                "connect_ratio": b.connect_ns / a.connect_ns,
                "bind_program_ns": prog(bind_runs),
                "connect_program_ns": prog(connect_runs),
            })
        );
        return Ok(());
    }
    println!(
        "private-IP programs: {} iterations x {} rounds, best round, gid {} in {}",
        args.iterations,
        args.rounds,
        who.gid,
        tree.leaf.display()
    );
    println!(
        "{:<33} {:>14} {:>14} {:>7} {:>16}",
        "operation", "without ns/op", "with ns/op", "ratio", "program ns/run"
    );
    for (name, x, y, prog) in [
        (
            "tcp socket+bind 0.0.0.0+close",
            a.bind_tcp_ns,
            b.bind_tcp_ns,
            per_run(bind_runs),
        ),
        (
            "tcp bind own address directly",
            a.bind_direct_ns,
            b.bind_direct_ns,
            "(same)".to_string(),
        ),
        (
            "udp socket+bind 0.0.0.0+close",
            a.bind_udp_ns,
            b.bind_udp_ns,
            "(same)".to_string(),
        ),
        (
            "tcp socket+connect+accept+close",
            a.connect_ns,
            b.connect_ns,
            per_run(connect_runs),
        ),
    ] {
        println!("{name:<33} {x:>14.1} {y:>14.1} {:>7.3} {prog:>16}", y / x);
    }
    // The loops' ratio carries the machine's noise; the programs' own cost does not.
    if let (Some(bind_prog), Some(connect_prog)) = (ns_per_run(bind_runs), ns_per_run(connect_runs))
    {
        println!(
            "in-kernel cost as a ratio: bind {:.3}, connect {:.3}",
            (a.bind_tcp_ns + bind_prog) / a.bind_tcp_ns,
            (a.connect_ns + connect_prog) / a.connect_ns
        );
    }
    println!("goal: ratio <= 1.10");
    Ok(())
}
