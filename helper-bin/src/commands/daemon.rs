//! `cgroupctl daemon`: the long-running supervisor of the packaged systemd unit.
//!
//! - creates the tree (root and users/) and applies the config to every live user cgroup;
//! - watches the tree with inotify and removes a session or service leaf as soon as it empties
//!   (watch.rs), with a periodic full gc pass for anything missed;
//! - records fault events (memory.events, pids.events, cpu throttling, PSI) of every user
//!   cgroup once a second, with a snapshot of the user's top processes, in the journal and a
//!   bounded history (faults.rs, cgroup-core's `events`);
//! - samples every user cgroup's usage every `[history] interval` into the history database
//!   (usage.rs, cgroup-core's `history`), read by `cgroupctl report` and `me --history`;
//! - moves every process whose real uid becomes a confined customer's into its fence, from
//!   the kernel's process events and a sweep of /proc (safety_net.rs; `[policy] safety_net`);
//! - reloads on SIGHUP (a broken config is logged and the running one kept);
//! - serves Prometheus metrics on a loopback TCP address (--listen) or a unix socket (--socket);
//! - logs to stderr (the journal, with priorities) and exits cleanly on SIGTERM/SIGINT.
//!
//! The PAM module never depends on it: logins work the same with the daemon down; only the
//! prompt removal of leaves outlived by background processes and the metrics stop.
//!
//! Signals arrive through a signalfd (blocked in every thread before the metrics thread
//! starts), so the main loop polls one set of descriptors and no handler runs concurrently.

mod faults;
mod log;
mod me;
mod metrics;
mod peer;
mod proc_events;
mod quiet_queue;
mod safety_net;
mod socket;
mod spares;
mod supervisor;
mod usage;
mod watch;
mod worker;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::global::GlobalArgs;
use metrics::{Access, Listener};
use socket::{bind_unix_socket, remove_socket};
use supervisor::Daemon;
use watch::Watcher;
use worker::Worker;

/// Parses --listen: a socket address on loopback only (the metrics name every customer).
fn loopback_addr(s: &str) -> std::result::Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|e| format!("{s:?} is not an address:port ({e})"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address: the metrics name every customer, so they are served on 127.0.0.0/8 or ::1 only",
            addr.ip()
        ));
    }
    Ok(addr)
}

#[derive(Debug, Args)]
#[command(
    after_help = "Signals: SIGHUP reloads the config and re-applies it to every live user \
    cgroup; SIGTERM or SIGINT stops the daemon.\n\
    Safety net ([policy] safety_net, default on): a process whose real uid becomes a confined \
    customer's (a root daemon's setuid: PHP-FPM, suexec, runuser) is moved into \
    users/<user>/<service>/pid-<PID>, recorded as a `fenced` event and counted; the cgroup it \
    came from is then drained of every process of a confined uid (read again until none is \
    left; from the second pass on each is stopped with SIGSTOP until all are, moved, then \
    continued; a drain past 64 passes or 0.5 s is logged and counted as given up); /proc is \
    swept at start and every 30 s.\n\
    Metrics: only root and the --allow-user users may read them (the peer's uid is asked of the \
    kernel before the request is read; everyone else gets 403). \
    curl http://127.0.0.1:9464/metrics, or curl --unix-socket PATH http://x/metrics. \
    Prometheus: --listen 127.0.0.1:9464 --allow-user prometheus"
)]
pub struct DaemonArgs {
    /// Serve metrics over HTTP on this loopback address (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR", value_parser = loopback_addr)]
    pub listen: Option<SocketAddr>,
    /// Serve metrics over HTTP on this unix socket (mode 0600, root only); with --listen too
    /// if both are given. The package uses /run/pam_cgroup/metrics.sock, where `cgroupctl
    /// stats --prometheus` asks for the daemon's own counters.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Besides root, this user may read the metrics (e.g. `prometheus`); repeatable. Every
    /// other peer (every customer) is refused before its request is read.
    #[arg(long, value_name = "NAME")]
    pub allow_user: Vec<String>,
    /// Answer `cgroupctl me` on this unix socket (0666 in a root-only-writable directory;
    /// each customer gets its own limits, usage and faults, by SO_PEERCRED). The package
    /// uses /run/pam_cgroup-me/me.sock.
    #[arg(long, value_name = "PATH")]
    pub me_socket: Option<PathBuf>,
    /// Time between full gc passes (a safety net under the inotify watches): seconds, or a
    /// duration like 30s, 5m.
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = crate::duration::positive_secs)]
    pub scan_interval: u64,
    /// Empty leaves found by a full pass are kept until this old (a login may be between
    /// creating its leaf and entering it), and a leaf seen made is looked at again this long
    /// after (it may have emptied before its watch existed): seconds, or a duration like 5s, 1m.
    #[arg(long, value_name = "DURATION", default_value = "5", value_parser = crate::duration::secs)]
    pub min_age: u64,
    /// The process events the safety net asks of the kernel: `uid` (uid changes only), `all`
    /// (every type, as kernels before 6.6 send them, kept to uid changes by the socket
    /// filter) or `unfiltered` (every event wakes the daemon); the last two for measurements.
    #[arg(
        long,
        value_name = "WHICH",
        value_enum,
        default_value = "uid",
        hide = true
    )]
    pub proc_events: proc_events::Subscription,
    /// The safety net acts for this uid only (repeatable): for tests and benches, whose
    /// daemons share a host with other trees and must not take their users' processes.
    #[arg(long, value_name = "UID", hide = true)]
    pub safety_net_uid: Vec<u32>,
    /// Time between the safety net's sweeps (seconds, or a duration like 30s): for tests,
    /// which wait for a sweep to catch what no event showed.
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = crate::duration::positive_secs, hide = true)]
    pub safety_net_sweep: u64,
}

/// The uids of --allow-user (resolved once at start).
fn allowed_uids(names: &[String]) -> Result<Access> {
    let mut uids = Vec::new();
    for name in names {
        cgroup_core::names::validate_user_name(name)?;
        uids.push(cgroup_core::nss::lookup_user(name)?.uid);
    }
    Ok(Access { uids })
}

/// The metrics listeners: the loopback TCP address, the unix socket, or both (Prometheus
/// scrapes the first; `cgroupctl stats` asks the second for the daemon's own counters).
fn bind(args: &DaemonArgs) -> Result<Vec<Listener>> {
    let mut out = Vec::new();
    if let Some(addr) = args.listen {
        let l = TcpListener::bind(addr).with_context(|| format!("listen on {addr}"))?;
        l.set_nonblocking(true)?;
        out.push(Listener::Tcp(l));
    }
    if let Some(path) = &args.socket {
        // The packaged socket lives in the root-only runtime directory, which the first login
        // usually makes; at boot the daemon may come first.
        if path.parent() == Some(Path::new(cgroup_core::paths::RUN_DIR)) {
            cgroup_core::state_dir::StateDir::open(Path::new(cgroup_core::paths::RUN_DIR), true)
                .context("the runtime directory")?;
        }
        let l = bind_unix_socket(path, 0o600)?;
        out.push(Listener::Unix(l, path.clone()));
    }
    Ok(out)
}

pub fn run(cli: &GlobalArgs, args: &DaemonArgs) -> Result<ExitCode> {
    // main() restores SIGPIPE's default for the one-shot verbs (`cgroupctl list | head`);
    // a daemon must not die of a write to a reader that is gone (its stderr's journal stream,
    // a pipe): the write fails with EPIPE and the line is lost (log.rs).
    // SAFETY: no thread exists yet; SIG_IGN is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let signals = block_signals()?;
    let mut daemon = Daemon::start(
        crate::load::config_path(cli),
        Duration::from_secs(args.min_age),
    )?;
    let tree = daemon.current_tree();
    let mut watcher = Watcher::new(tree.clone()).context("inotify")?;
    daemon.apply();
    daemon.scan(&mut watcher);
    let (workers, sockets) = spawn_workers(&daemon, args)?;
    log::info(&format!("watching {}", tree.root.display()));
    let result = daemon.serve(
        &mut watcher,
        &signals,
        Duration::from_secs(args.scan_interval),
    );
    for worker in workers.into_iter().rev() {
        worker.stop();
    }
    for path in sockets {
        remove_socket(&path);
    }
    result?;
    log::info("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Blocks the signals in this thread before any other starts, so every thread inherits the
/// mask and they are only ever read from the signalfd; and before the setup, so a stop that
/// arrives while the daemon starts (systemctl stop right after start) waits in the signalfd
/// and ends it cleanly instead of killing it mid-setup.
fn block_signals() -> Result<SignalFd> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block().context("block signals")?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).context("signalfd")
}

/// The threads beside the main loop, in the order they start (they are stopped in the
/// reverse order), and the unix sockets to remove once they are stopped.
fn spawn_workers(daemon: &Daemon, args: &DaemonArgs) -> Result<(Vec<Worker>, Vec<PathBuf>)> {
    let access = allowed_uids(&args.allow_user)?;
    let mut sockets = Vec::new();
    let mut workers = Vec::new();
    for l in bind(args)? {
        log::info(&format!("serving metrics on {}", l.describe()));
        if let Listener::Unix(_, path) = &l {
            sockets.push(path.clone());
        }
        let (tree, config, counters, access) = (
            daemon.tree.clone(),
            daemon.shared_config.clone(),
            daemon.counters.clone(),
            access.clone(),
        );
        workers.push(Worker::spawn("metrics", "metrics", move |stop| {
            metrics::run(l, tree, config, counters, access, stop)
        })?);
    }
    if let Some(path) = &args.me_socket {
        let l = me::bind(path)?;
        let sources = me::Sources {
            tree: daemon.tree.clone(),
            config: daemon.shared_config.clone(),
        };
        workers.push(Worker::spawn("me", "me", move |stop| {
            me::run(l, sources, stop)
        })?);
        log::info(&format!("answering cgroupctl me on {}", path.display()));
        sockets.push(path.clone());
    }
    // Fault events: a thread of their own, so a snapshot slowed by a customer's process (its
    // /proc files) never holds up reaping, reloads or signals.
    let (fenced_tx, fenced_rx) = std::sync::mpsc::channel();
    let (tree, config, counters) = (
        daemon.tree.clone(),
        daemon.shared_config.clone(),
        daemon.counters.clone(),
    );
    workers.push(Worker::spawn("faults", "fault events", move |stop| {
        faults::run(tree, config, counters, fenced_rx, stop)
    })?);
    // The usage history: its own thread, so a pass over 10,000 user cgroups and its write
    // never hold up reaping, reloads, signals or the fault events.
    let (tree, config) = (daemon.tree.clone(), daemon.shared_config.clone());
    workers.push(Worker::spawn("usage", "usage history", move |stop| {
        usage::run(tree, config, stop)
    })?);
    // The safety net: its own thread, so moving a process (mkdir, NSS, an RCU wait in the
    // kernel) never holds up reaping or signals, and neither holds up a move.
    let sources = safety_net::Sources {
        tree: daemon.tree.clone(),
        config: daemon.shared_config.clone(),
        config_path: daemon.config_path.clone(),
        counters: daemon.counters.clone(),
        events: fenced_tx,
        subscription: args.proc_events,
        only_uids: args.safety_net_uid.clone(),
        sweep_every: Duration::from_secs(args.safety_net_sweep),
    };
    workers.push(Worker::spawn("safety-net", "safety net", move |stop| {
        safety_net::run(sources, stop)
    })?);
    Ok((workers, sockets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_is_loopback_only() {
        assert!(loopback_addr("127.0.0.1:9464").is_ok());
        assert!(loopback_addr("[::1]:9464").is_ok());
        assert!(loopback_addr("0.0.0.0:9464").is_err());
        assert!(loopback_addr("10.0.0.1:80").is_err());
        assert!(loopback_addr("localhost").is_err());
    }
}
