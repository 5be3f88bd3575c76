//! bench-history: what the usage history costs (issue 28's goals: a sampler pass <= 1 s of
//! one core at 10,000 users; <= 100 MB of database per 30 days at 1,000 users). A benchmark,
//! never a test. Run as root.
//!
//! 1. Sampler CPU per pass: N user cgroups made under a tree root of the bench's own in the
//!    cgroup2 mount (named as the daemon names them), then passes of the daemon's own code
//!    (`Sampler::pass`: list, read every cgroup, write one transaction); the CPU time of this
//!    thread (user + system) per pass, the first pass (the baseline, NSS look-ups) apart. On a
//!    host whose cgroup2 has no controllers the cgroups hold cpu.stat alone, so the same is
//!    measured again on a plain directory tree that holds every file a cgroup with all
//!    controllers has (the production file count). Everything made is removed at exit.
//! 2. The daemon's fault pass (`Recorder::sample_at`, once a second) over the same trees, and
//!    both passes again over the cgroups with a session leaf and its login/ in each user (the
//!    walk a kernel that counts refused forks locally needs): CPU of this thread per pass on a
//!    quiet host (no event), the first pass apart. Then the plain files counted as Debian 12
//!    counts refused forks, with a leaf + login/ each, every customer idle (a user whose CPU
//!    time did not move is not walked) and every customer busy (each walked).
//! 3. Database size: M users sampled every `interval` seconds over D simulated days with
//!    explicit times, through the daemon's write path (`Sampler::write`: rows, rollups,
//!    retention); the file's size after each day. Rows vary as a host's do (a share of the
//!    users busy, the others idle with a few processes), from a fixed-seed generator.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use cgroup_core::config::{EventsConfig, HistoryConfig};
use cgroup_core::events::recorder::Recorder;
use cgroup_core::history::{Retention, Row, Sampler, Store};
use cgroup_core::inventory::FoundUserCgroup;
use cgroup_core::mount::primary_cgroup2;
use cgroup_core::tree::{tree_key, Tree};

#[derive(Debug, Parser)]
#[command(
    name = "bench-history",
    about = "Sampler CPU per pass and database size per day"
)]
struct Args {
    /// User cgroups for the sampler's passes.
    #[arg(long, default_value_t = 10_000)]
    cgroups: usize,
    /// Measured passes (after the baseline pass).
    #[arg(long, default_value_t = 5)]
    passes: u32,
    /// Users of the size simulation.
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// Days simulated.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Share of users busy in each sample, in percent (the others are idle).
    #[arg(long, default_value_t = 20)]
    busy_percent: u64,
    /// Seconds between samples of the size simulation (default: `[history] interval`'s).
    #[arg(long)]
    interval: Option<u32>,
    /// Days per-sample rows are kept in the size simulation (default: the config's).
    #[arg(long)]
    minutes_kept_days: Option<u32>,
    /// Skip the sampler passes (size simulation only).
    #[arg(long)]
    size_only: bool,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench/history.json")]
    out: PathBuf,
}

/// CPU time of this thread (user + system).
fn thread_cpu() -> Duration {
    // SAFETY: rusage is plain data filled by getrusage, which cannot fail for RUSAGE_THREAD.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// A directory tree removed at drop (cgroups by rmdir, deepest first; plain files too).
struct Made {
    root: PathBuf,
    cgroup: bool,
}

impl Drop for Made {
    fn drop(&mut self) {
        if self.cgroup {
            remove_cgroups(&self.root);
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Removes the cgroup at `dir` and every cgroup below it, deepest first (cgroupfs has no
/// recursive removal; its files go with their directory).
fn remove_cgroups(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroups(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Every file a user cgroup with the cpu, memory, pids and io controllers offers that the
/// sampler reads (plain files, with a cgroup's typical contents).
fn fake_cgroup_files(dir: &Path, i: usize) -> Result<()> {
    let files = [
        ("cpu.stat", format!("usage_usec {}\nuser_usec 1\nsystem_usec 1\nnr_periods 10\nnr_throttled 1\nthrottled_usec 5\nnr_bursts 0\nburst_usec 0\n", i * 1000)),
        ("memory.current", format!("{}\n", i * 4096)),
        ("memory.peak", format!("{}\n", i * 8192)),
        ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n".into()),
        ("memory.max", "1073741824\n".into()),
        ("pids.current", "3\n".into()),
        ("pids.peak", "9\n".into()),
        ("pids.max", "512\n".into()),
        ("pids.events", "max 0\n".into()),
        ("pids.events.local", "max 0\n".into()),
        ("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n".into()),
        ("cpu.max", "100000 100000\n".into()),
        ("cpu.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n".into()),
        ("memory.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n".into()),
        ("io.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n".into()),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).with_context(|| format!("{}", dir.display()))?;
    }
    Ok(())
}

struct PassFigures {
    where_: String,
    cgroups: usize,
    baseline_cpu: Duration,
    cpu: Vec<Duration>,
    wall: Vec<Duration>,
    /// Wall time of the reads and of the write (with maintenance) of each pass.
    read: Vec<Duration>,
    write: Vec<Duration>,
}

/// Passes of the daemon's sampler over `users` (read through `tree`), into a scratch db.
fn passes(
    where_: &str,
    tree: &Tree,
    users: Vec<FoundUserCgroup>,
    n: u32,
    db: &Path,
) -> Result<PassFigures> {
    let mut store = Store::open_writer(db)?;
    let keep = Retention::of(&HistoryConfig::default());
    let mut sampler = Sampler::new();
    let traffic = cgroup_core::private_ip::traffic::TrafficReader::open(tree)?;
    let mut figures = PassFigures {
        where_: where_.to_string(),
        cgroups: users.len(),
        baseline_cpu: Duration::ZERO,
        cpu: Vec::new(),
        wall: Vec::new(),
        read: Vec::new(),
        write: Vec::new(),
    };
    let start = (cgroup_core::time::now_ms() / 1000) as i64;
    for i in 0..=n {
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        let mut report = cgroup_core::history::sampler::PassReport::default();
        let rows = sampler.read(
            users.clone(),
            traffic.as_ref(),
            start + i64::from(i) * 60,
            &mut report,
        );
        sampler.write(
            &mut store,
            &rows,
            start + i64::from(i) * 60,
            &keep,
            &mut report,
        )?;
        let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
        if i == 0 {
            figures.baseline_cpu = cpu;
        } else {
            figures.cpu.push(cpu);
            figures.wall.push(wall);
            figures.read.push(report.read_time);
            figures.write.push(report.write_time);
        }
    }
    Ok(figures)
}

/// Passes of the daemon's fault recorder (once a second in the daemon) over `users_dir`:
/// CPU of this thread per pass, the first (the baselines) apart. Nothing moves between passes,
/// so no event is found: what is measured is what every second costs a quiet host.
fn fault_passes(where_: &str, users_dir: &Path, n: u32) -> Result<FaultFigures> {
    fault_passes_with(where_, users_dir, n, &mut |_| Ok(()))
}

/// `fault_passes` with `between(i)` run before pass `i`, outside the time measured.
fn fault_passes_with(
    where_: &str,
    users_dir: &Path,
    n: u32,
    between: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<FaultFigures> {
    let key = tree_key()?;
    let mut recorder = Recorder::new(EventsConfig::default(), Path::new("/proc"));
    let mut figures = FaultFigures {
        where_: where_.to_string(),
        baseline_cpu: Duration::ZERO,
        cpu: Vec::new(),
        wall: Vec::new(),
    };
    let start = cgroup_core::time::now_ms();
    for i in 0..=n {
        between(i)?;
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        let pass = recorder.sample_at(users_dir, &key, start + u64::from(i) * 1000);
        let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
        anyhow::ensure!(
            pass.unreadable.is_empty(),
            "fault pass over {}: unreadable {:?}",
            users_dir.display(),
            pass.unreadable.first()
        );
        if i == 0 {
            figures.baseline_cpu = cpu;
        } else {
            figures.cpu.push(cpu);
            figures.wall.push(wall);
        }
    }
    Ok(figures)
}

struct FaultFigures {
    where_: String,
    baseline_cpu: Duration,
    cpu: Vec<Duration>,
    wall: Vec<Duration>,
}

fn sampler_bench(args: &Args, scratch: &Path) -> Result<(Vec<PassFigures>, Vec<FaultFigures>)> {
    let key = tree_key()?;
    let names: Vec<String> = (0..args.cgroups).map(|i| format!("bh{i:05}")).collect();
    let mut out = Vec::new();

    // Real cgroups in a tree root of the bench's own.
    let mount = primary_cgroup2()?;
    let root = mount
        .mount_point
        .join(format!("pam_cgroup-bench-history-{}", std::process::id()));
    let made = Made {
        root: root.clone(),
        cgroup: true,
    };
    std::fs::create_dir_all(root.join("users"))?;
    let mut users = Vec::new();
    for n in &names {
        let path = root.join("users").join(key.dir_name(n));
        std::fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        users.push(FoundUserCgroup {
            name: n.clone(),
            path,
            legacy: false,
        });
    }
    let tree = Tree::locate_root(Some(&root))?;
    let listed = Instant::now();
    let found = cgroup_core::inventory::user_cgroups(&tree)?;
    eprintln!(
        "listed {} user cgroups in {} ms",
        found.len(),
        listed.elapsed().as_millis()
    );
    let mut faults = vec![fault_passes(
        &format!("cgroupfs ({})", mount.mount_point.display()),
        &root.join("users"),
        args.passes,
    )?];
    out.push(passes(
        &format!("cgroupfs ({})", mount.mount_point.display()),
        &tree,
        found.clone(),
        args.passes,
        &scratch.join("state-a/history.db"),
    )?);
    // The same users, each logged in once: a session leaf and its login/ (where the kernel
    // counts refused forks locally, 6.1, each user's subtree is walked every pass).
    for u in &found {
        std::fs::create_dir_all(u.path.join("session-1/login"))
            .with_context(|| format!("mkdir {}", u.path.display()))?;
    }
    let with_sessions = "cgroupfs, a session leaf + login/ each";
    faults.push(fault_passes(
        with_sessions,
        &root.join("users"),
        args.passes,
    )?);
    out.push(passes(
        with_sessions,
        &tree,
        found,
        args.passes,
        &scratch.join("state-c/history.db"),
    )?);
    drop(made);

    // The same number of users, every file of a cgroup with all controllers (plain files).
    let fake = scratch.join("fake");
    std::fs::create_dir_all(fake.join("users"))?;
    let _fake_made = Made {
        root: fake.clone(),
        cgroup: false,
    };
    let mut users = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let path = fake.join("users").join(key.dir_name(n));
        std::fs::create_dir(&path)?;
        fake_cgroup_files(&path, i)?;
        users.push(FoundUserCgroup {
            name: n.clone(),
            path,
            legacy: false,
        });
    }
    faults.push(fault_passes(
        "plain files, all controllers' files",
        &fake.join("users"),
        args.passes,
    )?);
    out.push(passes(
        "plain files, all controllers' files",
        &tree,
        users.clone(),
        args.passes,
        &scratch.join("state-b/history.db"),
    )?);

    // The same plain files counted as Debian 12's kernel counts refused forks (where they
    // happen: no pids.events.local), each user with a session leaf and its login/: the fault
    // pass sums a user's subtree only when its CPU time moved. Customers all idle, then all
    // busy (every cpu.stat moved before each pass).
    for u in &users {
        std::fs::remove_file(u.path.join("pids.events.local"))?;
        for leaf in ["session-1", "session-1/login"] {
            std::fs::create_dir_all(u.path.join(leaf))?;
            std::fs::write(u.path.join(leaf).join("pids.events"), "max 0\n")?;
        }
    }
    faults.push(fault_passes(
        "plain, local fork counts, a leaf + login/ each, all idle",
        &fake.join("users"),
        args.passes,
    )?);
    faults.push(fault_passes_with(
        "plain, local fork counts, a leaf + login/ each, all busy",
        &fake.join("users"),
        args.passes,
        &mut |i| {
            for (n, u) in users.iter().enumerate() {
                std::fs::write(
                    u.path.join("cpu.stat"),
                    format!(
                        "usage_usec {}\nnr_periods 10\nnr_throttled 1\n",
                        (n as u64 + 1) * 1000 + u64::from(i)
                    ),
                )?;
            }
            Ok(())
        },
    )?);
    Ok((out, faults))
}

/// xorshift64*: the simulated users' values, the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn simulated_row(rng: &mut Rng, busy: bool, interval: u64) -> Row {
    let mib = 1u64 << 20;
    let (cpu, mem, pids, io, net) = if busy {
        (
            rng.below(interval * 1_000_000),
            64 * mib + rng.below(960 * mib),
            1 + rng.below(60),
            rng.below(50 * mib),
            rng.below(20 * mib),
        )
    } else {
        (
            rng.below(20_000),
            8 * mib + rng.below(40 * mib),
            1 + rng.below(4),
            rng.below(64 * 1024),
            rng.below(16 * 1024),
        )
    };
    let hit = |rng: &mut Rng| Some(u64::from(busy && rng.below(100) == 0));
    Row {
        samples: 1,
        secs: interval,
        cpu_usec: Some(cpu),
        throttled_usec: Some(if busy { rng.below(cpu / 10 + 1) } else { 0 }),
        nr_throttled: hit(rng),
        memory_sum: Some(mem),
        memory_peak: Some(mem + rng.below(mib)),
        pids_peak: Some(pids),
        io_read: Some(io),
        io_write: Some(io / 2),
        net_rx: Some(net),
        net_tx: Some(net / 3),
        memory_max_hits: hit(rng),
        memory_high_hits: hit(rng),
        oom_kills: Some(0),
        pids_max_hits: hit(rng),
    }
}

struct DayFigure {
    day: u32,
    file_bytes: u64,
    used_bytes: u64,
    write_cpu: Duration,
    /// The longest write of one pass that day (the hourly rollup's pass).
    slowest_write: Duration,
}

fn size_config(args: &Args) -> HistoryConfig {
    let d = HistoryConfig::default();
    HistoryConfig {
        interval_secs: args.interval.unwrap_or(d.interval_secs),
        minutes_kept_days: args.minutes_kept_days.unwrap_or(d.minutes_kept_days),
        ..d
    }
}

/// The size simulation's days, and the bytes of each table and index after the last day.
type SizeFigures = (Vec<DayFigure>, Vec<(String, u64, u64)>);

fn size_bench(args: &Args, scratch: &Path) -> Result<SizeFigures> {
    let cfg = size_config(args);
    let keep = Retention::of(&cfg);
    let interval = i64::from(cfg.interval_secs);
    let db = scratch.join("state-size/history.db");
    let mut store = Store::open_writer(&db)?;
    let mut sampler = Sampler::new();
    let names: Vec<String> = (0..args.users).map(|i| format!("bs{i:05}")).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = 1_800_000_000 - 1_800_000_000 % 86_400;
    let per_day = 86_400 / interval;
    let mut out = Vec::new();
    for day in 0..args.days {
        let cpu0 = thread_cpu();
        let mut slowest_write = Duration::ZERO;
        for s in 0..per_day {
            let now = start + i64::from(day) * 86_400 + s * interval;
            let rows: Vec<(String, Row)> = names
                .iter()
                .map(|n| {
                    let busy = rng.below(100) < args.busy_percent;
                    (n.clone(), simulated_row(&mut rng, busy, interval as u64))
                })
                .collect();
            let mut report = cgroup_core::history::sampler::PassReport::default();
            sampler.write(&mut store, &rows, now, &keep, &mut report)?;
            slowest_write = slowest_write.max(report.write_time);
        }
        store.compact()?;
        let fig = DayFigure {
            day: day + 1,
            file_bytes: store.file_bytes(),
            used_bytes: store.used_bytes()?,
            write_cpu: thread_cpu() - cpu0,
            slowest_write,
        };
        eprintln!(
            "day {:>2}: {:>7.1} MiB on disk, {:.1} s of CPU to write the day, slowest pass's write {} ms",
            fig.day,
            fig.file_bytes as f64 / (1u64 << 20) as f64,
            fig.write_cpu.as_secs_f64(),
            fig.slowest_write.as_millis()
        );
        out.push(fig);
    }
    let space = store.space_by_table()?;
    Ok((out, space))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let scratch = tempfile::Builder::new()
        .prefix("bench-history-")
        .tempdir()?;
    let (passes, faults) = if args.size_only {
        (Vec::new(), Vec::new())
    } else {
        sampler_bench(&args, scratch.path())?
    };
    let cfg = size_config(&args);
    let (days, space) = size_bench(&args, scratch.path())?;

    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let median = |v: &[Duration]| {
        let mut s: Vec<Duration> = v.to_vec();
        s.sort();
        s.get(s.len() / 2).copied().unwrap_or_default()
    };
    println!("sampler pass (daemon's code: list, read, one write), CPU of one thread:");
    println!(
        "{:<40} {:>8} {:>12} {:>14} {:>14} {:>9} {:>9}",
        "where", "cgroups", "baseline ms", "median CPU ms", "median wall ms", "read ms", "write ms"
    );
    for p in &passes {
        println!(
            "{:<40} {:>8} {:>12.0} {:>14.0} {:>14.0} {:>9.0} {:>9.0}",
            p.where_,
            p.cgroups,
            ms(&p.baseline_cpu),
            ms(&median(&p.cpu)),
            ms(&median(&p.wall)),
            ms(&median(&p.read)),
            ms(&median(&p.write))
        );
    }
    println!("goal: a pass <= 1000 ms of one core at 10,000 users\n");
    println!(
        "fault pass (daemon's recorder, once a second; a quiet host: no event), CPU of one thread:"
    );
    println!(
        "{:<58} {:>12} {:>14} {:>14} {:>16}",
        "where", "baseline ms", "median CPU ms", "median wall ms", "share of a core"
    );
    for f in &faults {
        let cpu = median(&f.cpu);
        println!(
            "{:<58} {:>12.0} {:>14.0} {:>14.0} {:>15.0}%",
            f.where_,
            ms(&f.baseline_cpu),
            ms(&cpu),
            ms(&median(&f.wall)),
            ms(&cpu) / 10.0
        );
    }
    println!(
        "(a pass every second: its CPU time per second is the share of one core the daemon spends on it)\n\ndatabase at {} users, one sample every {} s kept {} days, hours {} days ({}% busy each sample):",
        args.users, cfg.interval_secs, cfg.minutes_kept_days, cfg.hours_kept_days, args.busy_percent
    );
    println!(
        "{:>4} {:>12} {:>12} {:>22}",
        "day", "file MiB", "rows MiB", "slowest pass write ms"
    );
    for d in &days {
        if d.day <= 3 || d.day % 5 == 0 || d.day == args.days {
            println!(
                "{:>4} {:>12.1} {:>12.1} {:>22.0}",
                d.day,
                d.file_bytes as f64 / (1u64 << 20) as f64,
                d.used_bytes as f64 / (1u64 << 20) as f64,
                ms(&d.slowest_write)
            );
        }
    }
    println!("goal: <= 100 MB per 30 days at 1,000 users\n\nspace by table and index after the last day:");
    println!(
        "{:<32} {:>10} {:>12}",
        "table or index", "MiB", "payload MiB"
    );
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    for (name, bytes, payload) in &space {
        println!("{:<32} {:>10.1} {:>12.1}", name, mib(*bytes), mib(*payload));
    }
    let json = serde_json::json!({
        "sampler": passes.iter().map(|p| serde_json::json!({
            "where": p.where_,
            "cgroups": p.cgroups,
            "baseline_cpu_ms": ms(&p.baseline_cpu),
            "pass_cpu_ms": p.cpu.iter().map(ms).collect::<Vec<_>>(),
            "pass_wall_ms": p.wall.iter().map(ms).collect::<Vec<_>>(),
            "median_cpu_ms": ms(&median(&p.cpu)),
            "median_read_ms": ms(&median(&p.read)),
            "median_write_ms": ms(&median(&p.write)),
        })).collect::<Vec<_>>(),
        "fault_pass": faults.iter().map(|f| serde_json::json!({
            "where": f.where_,
            "baseline_cpu_ms": ms(&f.baseline_cpu),
            "pass_cpu_ms": f.cpu.iter().map(ms).collect::<Vec<_>>(),
            "pass_wall_ms": f.wall.iter().map(ms).collect::<Vec<_>>(),
            "median_cpu_ms": ms(&median(&f.cpu)),
        })).collect::<Vec<_>>(),
        "database": {
            "users": args.users,
            "interval_secs": cfg.interval_secs,
            "minutes_kept_days": cfg.minutes_kept_days,
            "hours_kept_days": cfg.hours_kept_days,
            "busy_percent": args.busy_percent,
            "days": days.iter().map(|d| serde_json::json!({
                "day": d.day,
                "file_bytes": d.file_bytes,
                "used_bytes": d.used_bytes,
                "write_cpu_ms": ms(&d.write_cpu),
                "slowest_write_ms": ms(&d.slowest_write),
            })).collect::<Vec<_>>(),
            "space_by_table": space.iter().map(|(n, b, p)| serde_json::json!({"name": n, "bytes": b, "payload_bytes": p})).collect::<Vec<_>>(),
        },
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&json)?)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
