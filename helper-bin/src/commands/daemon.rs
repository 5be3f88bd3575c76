//! `cgroupctl daemon`: the long-running supervisor of the packaged systemd unit.
//!
//! - creates the tree (root and users/) and applies the config to every live user cgroup;
//! - watches the tree with inotify and removes a session or service leaf as soon as it empties
//!   (watch.rs), with a periodic full gc pass for anything missed;
//! - records fault events (memory.events, pids.events, cpu throttling, PSI) of every user
//!   cgroup once a second, with a snapshot of the user's top processes, in the journal and a
//!   bounded history (faults.rs, cgroup-core's `events`);
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
mod safety_net;
mod watch;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use cgroup_core::config::last_good::{self, Keep};
use cgroup_core::config::{Config, EventsConfig};
use cgroup_core::gc::{collect, GcOptions, Reaped};
use cgroup_core::tree::Tree;

use super::reload::{describe, reload_all};
use crate::Cli;
use metrics::{Access, Counters, Listener};
use watch::Watcher;

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
    users/<user>/<service>/pid-<PID>, recorded as a `fenced` event and counted; /proc is swept \
    at start and every 30 s.\n\
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
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = super::duration::positive_secs)]
    pub scan_interval: u64,
    /// Empty leaves found by a full pass are kept until this old (a login may be between
    /// creating its leaf and entering it): seconds, or a duration like 5s, 1m.
    #[arg(long, value_name = "DURATION", default_value = "5", value_parser = super::duration::secs)]
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
}

struct Daemon {
    config_path: PathBuf,
    config: Config,
    tree: Arc<RwLock<Tree>>,
    counters: Arc<Counters>,
    min_age: Duration,
    /// `[events]`, shared with the fault thread and the me socket (follows reloads).
    events: Arc<RwLock<EventsConfig>>,
    /// The whole config, shared with the safety net (follows reloads).
    shared_config: Arc<RwLock<Arc<Config>>>,
    /// Whether the config and user files parse now (the config_broken metric).
    health: last_good::Watch,
}

impl Daemon {
    fn current_tree(&self) -> Tree {
        match self.tree.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn log_reaped(&self, reaped: &[Reaped], why: &str) {
        for r in reaped {
            log::info(&format!("removed empty leaf {} ({why})", r.path.display()));
            if let Some(e) = &r.carry_error {
                log::warn(&format!("fault counts of {} lost: {e}", r.path.display()));
            }
        }
        self.counters
            .reaped
            .fetch_add(reaped.len() as u64, Ordering::Relaxed);
    }

    /// Applies the config to every live user cgroup and logs what changed.
    fn apply(&self) {
        let tree = self.current_tree();
        if let Err(e) = tree.ensure_base() {
            log::error(&format!("create the tree at {}: {e}", tree.root.display()));
            return;
        }
        match reload_all(&self.config, &tree) {
            Ok(outcomes) => {
                for o in outcomes {
                    match (&o.report, &o.error) {
                        (_, Some(e)) => log::error(&format!("{}: {e}", o.user)),
                        (Some(r), None) => {
                            for line in describe(r) {
                                if !line.ends_with(": unchanged") {
                                    log::info(&line);
                                }
                            }
                        }
                        (None, None) => {}
                    }
                }
            }
            Err(e) => log::error(&format!("list user cgroups: {e}")),
        }
        self.counters.reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// SIGHUP: the config in use, re-applied (a broken file's last good copy, as logins use
    /// it); a moved root gets fresh watches.
    fn reload(&mut self, watcher: &mut Watcher) {
        let loaded = match last_good::load(&self.config_path, Keep::as_root(Keep::Settled)) {
            Ok(loaded) => {
                if let Some(broken) = &loaded.broken {
                    // Applied all the same: the file's change is what failed.
                    log::error(&format!(
                        "reload: {}",
                        cgroup_core::config_fallback::broken_line(broken, "config")
                    ));
                    self.counters
                        .reload_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(loaded.config)
            }
            Err(none) => Err(format!("{} (no good config was ever kept)", none.error)),
        };
        let loaded =
            loaded.and_then(|c| Tree::locate(&c).map(|t| (c, t)).map_err(|e| e.to_string()));
        let (config, tree) = match loaded {
            Ok(both) => both,
            Err(e) => {
                log::error(&format!("reload: {e}; keeping the running config"));
                self.counters
                    .reload_failures
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let moved = tree != self.current_tree();
        match self.tree.write() {
            Ok(mut t) => *t = tree.clone(),
            Err(p) => *p.into_inner() = tree.clone(),
        }
        self.config = config;
        match self.events.write() {
            Ok(mut e) => *e = self.config.events.clone(),
            Err(p) => *p.into_inner() = self.config.events.clone(),
        }
        match self.shared_config.write() {
            Ok(mut c) => *c = Arc::new(self.config.clone()),
            Err(p) => *p.into_inner() = Arc::new(self.config.clone()),
        }
        log::info(&format!("reloaded {}", self.config_path.display()));
        self.apply();
        if moved {
            match Watcher::new(tree) {
                Ok(w) => *watcher = w,
                Err(e) => log::error(&format!("inotify: {e}")),
            }
        }
        self.scan(watcher);
    }

    /// Looks at the config files again: each change of their health logged once, the
    /// metric updated, good files kept once settled.
    fn check_config(&mut self) {
        for change in self.health.refresh() {
            match change {
                last_good::HealthChange::Broken { file, error, kept } => log::error(&format!(
                    "{error}; {}",
                    match (kept, file == self.config_path) {
                        (true, _) => "logins, reload and the daemon use its last good copy",
                        (false, true) => "no good copy was ever kept: logins follow on_error",
                        (false, false) => {
                            "no good copy was ever kept: that user's logins follow on_error"
                        }
                    }
                )),
                last_good::HealthChange::Fixed { file } => {
                    log::info(&format!("{} parses again", file.display()))
                }
            }
        }
        let files = self
            .health
            .files()
            .into_iter()
            .map(|(f, broken)| (f.display().to_string(), broken))
            .collect();
        match self.counters.config_files.lock() {
            Ok(mut f) => *f = files,
            Err(p) => *p.into_inner() = files,
        }
    }

    /// A full pass: gc with the minimum age, and watches for anything new.
    fn scan(&mut self, watcher: &mut Watcher) {
        self.check_config();
        match collect(
            &self.current_tree(),
            GcOptions {
                min_age: self.min_age,
                dry_run: false,
            },
        ) {
            Ok(r) => self.log_reaped(&r, "found empty by a full pass"),
            Err(e) => log::warn(&format!("gc pass: {e}")),
        }
        watcher.watch_all();
    }
}

/// Every metric family the daemon's endpoint can serve, as `name type`: the per-user families
/// (cgroup-core's table, also those absent on this host) and the daemon's own counters. The
/// dashboard checker (monitoring/check) compares every panel's metrics with this list.
pub fn metric_families() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = cgroup_core::stats::prometheus::families()
        .map(|(name, kind, _)| (name.to_string(), kind.to_string()))
        .collect();
    for line in metrics::daemon_metrics(&Counters::default()).lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                out.push((name.to_string(), kind.to_string()));
            }
        }
    }
    out
}

/// The daemon's own counters from a running daemon (see metrics::ask_daemon).
pub fn ask_daemon_metrics(path: &Path) -> Result<String> {
    metrics::ask_daemon(path)
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
        if path.parent() == Some(Path::new(cgroup_core::sessions::RUN_DIR)) {
            cgroup_core::state_dir::StateDir::open(Path::new(cgroup_core::sessions::RUN_DIR), true)
                .context("the runtime directory")?;
        }
        let l = bind_unix_socket(path, 0o600)?;
        out.push(Listener::Unix(l, path.clone()));
    }
    Ok(out)
}

/// Listens on the unix socket `path` with `mode`, non-blocking: a stale socket there is
/// replaced, a live one (another daemon) or anything that is not a socket refused. Shared by
/// the metrics socket and the customers' `me` socket.
pub(crate) fn bind_unix_socket(path: &Path, mode: u32) -> Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket: refusing to replace it",
                path.display()
            );
        }
        if UnixStream::connect(path).is_ok() {
            bail!(
                "{} is in use by another process (a running daemon?)",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn remove_socket(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        log::warn(&format!("remove {}: {e}", path.display()));
    }
}

/// Controllers from the mount down to users/, now that this process sits in a leaf: under a
/// unit, `cgroupctl init` could not enable them at the unit's cgroup while it stood there.
fn enable_controllers(tree: &Tree) {
    let offered = match cgroup_core::tree::offered(&tree.mount.mount_point) {
        Ok(o) => o,
        Err(e) => {
            log::error(&format!("read the controllers the kernel offers: {e}"));
            return;
        }
    };
    match cgroup_core::tree::enable_down(&tree.chain_to(&tree.users_dir()), &offered) {
        Ok(report) => {
            for (c, dir, why) in report.failed {
                log::error(&format!(
                    "controller {c} not enabled at {}: {why}",
                    dir.display()
                ));
            }
        }
        Err(e) => log::error(&format!("enable controllers: {e}")),
    }
}

pub fn run(cli: &Cli, args: &DaemonArgs) -> Result<ExitCode> {
    // Block the signals in this thread before any other starts, so every thread inherits the
    // mask and they are only ever read from the signalfd; and before the setup below, so a stop
    // that arrives while the daemon starts (systemctl stop right after start) waits in the
    // signalfd and ends it cleanly instead of killing it mid-setup.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block().context("block signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    let config_path = super::view::config_path(cli);
    // A broken file: its last good copy, as logins use it (the error is logged by the first
    // pass's config check); with none ever kept, the file's error stops the daemon.
    let config = last_good::load(&config_path, Keep::as_root(Keep::Settled))
        .map_err(|none| none.error)?
        .config;
    let tree = Tree::locate(&config).context("locate the cgroup tree")?;
    if let Some(leaf) = tree
        .step_aside("supervisor")
        .context("move out of the tree's parent cgroup")?
    {
        log::info(&format!(
            "moved into {} so controllers can be enabled below",
            leaf.display()
        ));
    }
    tree.ensure_base()
        .with_context(|| format!("create the tree at {}", tree.root.display()))?;
    enable_controllers(&tree);
    // The tree is ready for logins (the unit's cgroup holds no process any more, controllers
    // are enabled): systemd may start what waits for the unit (Type=notify), the lingering
    // users' managers first among them. Without NOTIFY_SOCKET this does nothing.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        log::warn(&format!("cannot tell systemd the daemon is ready: {e}"));
    }

    let health = last_good::Watch::new(&config_path);
    let events = Arc::new(RwLock::new(config.events.clone()));
    let shared_config = Arc::new(RwLock::new(Arc::new(config.clone())));
    let mut daemon = Daemon {
        config_path,
        config,
        shared_config,
        events,
        tree: Arc::new(RwLock::new(tree.clone())),
        counters: Arc::new(Counters::default()),
        min_age: Duration::from_secs(args.min_age),
        health,
    };
    let mut watcher = Watcher::new(tree.clone()).context("inotify")?;
    daemon.apply();
    daemon.scan(&mut watcher);

    let access = allowed_uids(&args.allow_user)?;
    let listeners = bind(args)?;
    let socket_path = listeners.iter().find_map(|l| match l {
        Listener::Unix(_, p) => Some(p.clone()),
        Listener::Tcp(_) => None,
    });
    let mut servers = Vec::new();
    for l in listeners {
        let (stop_rx, stop_tx) = nix::unistd::pipe().context("pipe")?;
        log::info(&format!("serving metrics on {}", l.describe()));
        let handle = metrics::spawn(
            l,
            daemon.tree.clone(),
            daemon.shared_config.clone(),
            daemon.counters.clone(),
            access.clone(),
            stop_rx,
        )
        .context("start the metrics thread")?;
        servers.push((handle, stop_tx));
    }
    let mut me_server = None;
    if let Some(path) = &args.me_socket {
        let l = me::bind(path)?;
        let (stop_rx, stop_tx) = nix::unistd::pipe().context("pipe")?;
        let sources = me::Sources {
            tree: daemon.tree.clone(),
            events: daemon.events.clone(),
        };
        let handle = me::spawn(l, sources, stop_rx).context("start the me thread")?;
        log::info(&format!("answering cgroupctl me on {}", path.display()));
        me_server = Some((handle, stop_tx, path.clone()));
    }
    log::info(&format!("watching {}", tree.root.display()));

    let interval = Duration::from_secs(args.scan_interval);
    let mut next_scan = Instant::now() + interval;
    // Fault events: a thread of their own, so a snapshot slowed by a customer's process (its
    // /proc files) never holds up reaping, reloads or signals.
    let (faults_stop_rx, faults_stop_tx) = nix::unistd::pipe().context("pipe")?;
    let (fenced_tx, fenced_rx) = std::sync::mpsc::channel();
    let faults_thread = faults::spawn(
        daemon.tree.clone(),
        daemon.events.clone(),
        daemon.counters.clone(),
        fenced_rx,
        faults_stop_rx,
    )
    .context("start the fault events thread")?;
    // The safety net: its own thread, so moving a process (mkdir, NSS, an RCU wait in the
    // kernel) never holds up reaping or signals, and neither holds up a move.
    let (net_stop_rx, net_stop_tx) = nix::unistd::pipe().context("pipe")?;
    let net_thread = safety_net::spawn(
        safety_net::Sources {
            tree: daemon.tree.clone(),
            config: daemon.shared_config.clone(),
            config_path: daemon.config_path.clone(),
            counters: daemon.counters.clone(),
            events: fenced_tx,
            subscription: args.proc_events,
            only_uids: args.safety_net_uid.clone(),
        },
        net_stop_rx,
    )
    .context("start the safety net thread")?;
    let result = loop {
        let wait = next_scan.saturating_duration_since(Instant::now());
        let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
        let mut fds = [
            PollFd::new(watcher.inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => break Err(anyhow::Error::from(e).context("poll")),
        }
        let (inotify_ready, signal_ready) =
            (fds[0].any().unwrap_or(false), fds[1].any().unwrap_or(false));
        if signal_ready {
            let mut stop = false;
            while let Ok(Some(info)) = signals.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGHUP) => daemon.reload(&mut watcher),
                    Ok(s) => {
                        log::info(&format!("{s}: stopping"));
                        stop = true;
                    }
                    Err(_) => {}
                }
            }
            if stop {
                break Ok(());
            }
        }
        if inotify_ready {
            let outcome = watcher.handle();
            daemon.log_reaped(&outcome.reaped, "emptied");
            if outcome.overflow {
                log::warn("inotify queue overflowed: rescanning");
                daemon.scan(&mut watcher);
            }
        }
        if Instant::now() >= next_scan {
            daemon.scan(&mut watcher);
            next_scan = Instant::now() + interval;
        }
    };

    drop(net_stop_tx);
    if net_thread.join().is_err() {
        log::error("the safety net thread panicked");
    }
    drop(faults_stop_tx);
    if faults_thread.join().is_err() {
        log::error("the fault events thread panicked");
    }
    for (handle, stop_tx) in servers {
        // Closing the write end makes the pipe readable (EOF): the thread returns.
        drop(stop_tx);
        if handle.join().is_err() {
            log::error("the metrics thread panicked");
        }
    }
    if let Some(p) = socket_path {
        remove_socket(&p);
    }
    if let Some((handle, stop_tx, path)) = me_server {
        drop(stop_tx);
        if handle.join().is_err() {
            log::error("the me thread panicked");
        }
        remove_socket(&path);
    }
    result?;
    log::info("stopped");
    Ok(ExitCode::SUCCESS)
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
