//! `cgroupctl stats [--user U] [--json | --prometheus | --textfile PATH]`: per-user usage and
//! fault counters (memory, memory.events, cpu.stat, pids, io.stat, PSI). Values whose file is
//! absent here (no controller, PSI off) are `-` in the table, null in JSON and omitted in
//! Prometheus.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use std::path::Path;

use cgroup_core::config::Config;
use cgroup_core::inventory::session_and_service_counts;
use cgroup_core::nss::{group_names, lookup_user};
use cgroup_core::private_ip::traffic::TrafficReader;
use cgroup_core::private_ip::Traffic;
use cgroup_core::stats::prometheus::{render, UserInfo, UserSample};
use cgroup_core::stats::{read_user_stats, CgroupStats, Pressure};
use cgroup_core::tree::Tree;

use super::table::{self, opt};
use super::textfile;
use super::view::{load, selected_users};
use crate::Cli;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this user.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Print JSON (absent values are null, never 0).
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,
    /// Print the Prometheus text exposition format (HELP/TYPE lines, a `user` label), with the
    /// daemon's own counters when it answers on --daemon-socket.
    #[arg(long, conflicts_with = "textfile")]
    pub prometheus: bool,
    /// Write the Prometheus text to PATH (a `.prom` file in node_exporter's textfile
    /// directory) atomically: a temporary file in the same directory, renamed over PATH, mode
    /// 0644. The directory must keep other users out (no access for others): the file names
    /// every customer.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["json", "user"])]
    pub textfile: Option<std::path::PathBuf>,
    /// The daemon's root-only metrics socket, asked for the daemon's own counters by
    /// --prometheus and --textfile (left out, with a note on stderr, when it does not answer).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_DAEMON_SOCKET)]
    pub daemon_socket: std::path::PathBuf,
    /// Print every metric family the daemon can export (`NAME TYPE`), also those absent on
    /// this host: what monitoring/check validates the dashboard and alert rules against.
    #[arg(long, hide = true, conflicts_with_all = ["json", "prometheus"])]
    pub list_families: bool,
}

/// Where the packaged daemon serves its metrics to root (debian/pam-cgroup.service).
pub const DEFAULT_DAEMON_SOCKET: &str = cgroup_core::paths::METRICS_SOCKET;

#[derive(Debug, Serialize)]
pub struct UserStats {
    pub user: String,
    pub sessions: u64,
    #[serde(flatten)]
    pub stats: CgroupStats,
    /// Plan and suspension (`fill_info`), for `pam_cgroup_user_info`.
    #[serde(skip)]
    pub info: Option<(Option<String>, bool)>,
}

/// The plan and suspension of each user, as the config says now: one NSS look-up (the user's
/// groups) and one user file per user, like `list`. A user NSS does not know, or whose file
/// is broken, gets none (no info series rather than a wrong one).
pub fn fill_info(config: &Config, all: &mut [UserStats]) {
    for u in all {
        let (Ok(info), Ok(file)) = (lookup_user(&u.user), config.load_user_file(&u.user)) else {
            continue;
        };
        let Ok(groups) = group_names(&info) else {
            continue;
        };
        let plan = config.effective_limits(&groups, file.as_ref()).profile;
        u.info = Some((plan, file.is_some_and(|f| f.suspend.is_some())));
    }
}

/// Stats of every user cgroup (or one); shared with the daemon's metrics endpoint. The
/// traffic counters are read once for all users (one pass over the pinned map), then found
/// per user through its fence (no NSS look-up per user).
pub fn collect(tree: &Tree, only: Option<&str>) -> Result<Vec<UserStats>> {
    let traffic = TrafficReader::open(tree)?;
    let mut users = selected_users(tree, only)?;
    // One series per user: a legacy cgroup an upgrade left is reported until the user has its
    // own (listed first), which then holds its new sessions and limits.
    users.dedup_by(|later, first| later.name == first.name);
    users
        .iter()
        .map(|u| {
            let mut stats = read_user_stats(&u.path)?;
            stats.network = network_of(traffic.as_ref(), &u.path)?;
            Ok(UserStats {
                user: u.name.clone(),
                sessions: session_and_service_counts(&u.path)?.0 as u64,
                stats,
                info: None,
            })
        })
        .collect()
}

/// A user's counters: zeros for a user with no traffic yet (nothing sent or received since
/// the map was made), None when nothing is counted here (no map) or its directory is not a
/// registered fence (its sockets are not counted: unknown is not 0). A directory removed
/// meanwhile has nothing to report.
pub fn network_of(reader: Option<&TrafficReader>, user_dir: &Path) -> Result<Option<Traffic>> {
    let Some(reader) = reader else {
        return Ok(None);
    };
    match reader.of_user_dir(user_dir) {
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
        other => Ok(other?),
    }
}

pub fn prometheus_text(all: &[UserStats]) -> String {
    let samples: Vec<UserSample<'_>> = all
        .iter()
        .map(|u| UserSample {
            user: &u.user,
            stats: &u.stats,
            sessions: u.sessions,
            info: u.info.as_ref().map(|(plan, suspended)| UserInfo {
                plan: plan.as_deref(),
                suspended: *suspended,
            }),
        })
        .collect();
    render(&samples)
}

fn psi_cell(p: Option<Pressure>) -> String {
    opt(p.and_then(|p| p.some), |l| format!("{:.2}", l.avg10))
}

pub fn run(cli: &Cli, args: &StatsArgs) -> Result<ExitCode> {
    if args.list_families {
        for (name, kind) in super::daemon::metric_families() {
            println!("{name} {kind}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.textfile {
        // Checked before anything is read: a bad path is a usage error, not a late failure.
        textfile::check_name(path)?;
    }
    let (config, tree) = load(cli)?;
    let mut all = collect(&tree, args.user.as_deref())?;
    if args.prometheus || args.textfile.is_some() {
        fill_info(&config, &mut all);
        let mut text = prometheus_text(&all);
        match super::daemon::ask_daemon_metrics(&args.daemon_socket) {
            Ok(daemon) => text.push_str(&daemon),
            Err(e) => eprintln!(
                "cgroupctl stats: the daemon's own counters left out: {}",
                super::escape::term(&format!("{e:#}"))
            ),
        }
        match &args.textfile {
            Some(path) => textfile::write(path, text.as_bytes())?,
            None => print!("{text}"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|u| {
            let s = &u.stats;
            let ev = s.memory_events;
            vec![
                u.user.clone(),
                opt(s.memory_current, table::bytes),
                opt(s.memory_peak, table::bytes),
                opt(ev, |e| e.high.to_string()),
                opt(ev, |e| e.max.to_string()),
                opt(ev, |e| e.oom_kill.to_string()),
                opt(s.cpu, |c| table::usec(c.usage_usec)),
                opt(s.cpu.and_then(|c| c.throttled_usec), table::usec),
                opt(s.pids_current, |v| v.to_string()),
                opt(s.pids_events_max, |v| v.to_string()),
                opt(s.io, |i| table::bytes(i.rbytes)),
                opt(s.io, |i| table::bytes(i.wbytes)),
                psi_cell(s.psi.cpu),
                psi_cell(s.psi.memory),
                psi_cell(s.psi.io),
                opt(s.network, |t| {
                    table::bytes(t.loopback.receive_bytes + t.external.receive_bytes)
                }),
                opt(s.network, |t| {
                    table::bytes(t.loopback.transmit_bytes + t.external.transmit_bytes)
                }),
            ]
        })
        .collect();
    table::print(
        &[
            "USER",
            "MEM",
            "PEAK",
            "HIGH",
            "MAX",
            "OOM_KILL",
            "CPU",
            "THROTTLED",
            "PIDS",
            "PIDS_MAX_EV",
            "IO_READ",
            "IO_WRITE",
            "PSI_CPU",
            "PSI_MEM",
            "PSI_IO",
            "NET_RX",
            "NET_TX",
        ],
        &rows,
    );
    if rows.is_empty() {
        println!("(no user cgroups under {})", tree.users_dir().display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON fields (`--json`) and their meaning; the manual page lists them from here.
pub const JSON_FIELDS: &[(&str, &str)] = &[
    ("user", "the user (the name of its cgroup under users/)"),
    ("sessions", "session leaves (session-*) present now"),
    ("memory_bytes", "memory.current: bytes used by the user's whole subtree now"),
    ("memory_peak_bytes", "memory.peak: the highest memory.current since users/<user> was made (kernel 5.19+)"),
    ("memory_max", "memory.max: the user's hard memory limit, or \"max\""),
    ("memory_events.high", "times the subtree was over memory.high and throttled"),
    ("memory_events.max", "times the subtree reached memory.max and reclaim was forced"),
    ("memory_events.oom", "times memory.max could not be met by reclaim (the OOM killer was invoked)"),
    ("memory_events.oom_kill", "processes of the user killed by the OOM killer"),
    ("cpu.usage_usec, cpu.user_usec, cpu.system_usec", "CPU time used by the subtree, in microseconds"),
    ("cpu.nr_periods, cpu.nr_throttled, cpu.throttled_usec", "cpu.max enforcement periods, periods in which the user was throttled, and time throttled (cpu controller only)"),
    ("pids", "pids.current: tasks (processes and threads) of the user now"),
    ("pids_max", "pids.max: the user's task limit, or \"max\""),
    ("pids_events_max", "forks and clones of the user's processes refused by a pids.max (see FAULT COUNTERS)"),
    ("io.rbytes, io.wbytes, io.rios, io.wios", "io.stat bytes and operations read and written, summed over devices"),
    ("network.{loopback,external}.{receive,transmit}_{bytes,packets}", "traffic of the sockets of the user's processes (see NETWORK COUNTERS): IP bytes (headers included) and packets, received and sent, through a loopback device or any other; null when not counted here (the programs are not installed by cgroupctl init, or users/<user> is not registered in their fence map); found through the fence map (cgroup id to uid), never through NSS"),
    ("psi.{cpu,memory,io}.{some,full}.{avg10,total_usec}", "pressure stall information: share of the last 10 s (percent) and total time (microseconds) in which some (or all) of the user's tasks waited on the resource"),
];

/// How the fault counters are counted, per kernel, and what a customer can do to them.
pub const FAULT_COUNTERS: &str = "\
pids_events_max (pam_cgroup_pids_max_events_total) counts the forks and clones of the user's \
processes that a pids.max refused, since users/<user> was made. Kernels count them in \
different places, and cgroupctl detects which: up to 6.11 (Debian 12's 6.1) a refused fork \
is counted in pids.events of the cgroup of the process that forked (a session leaf, or a \
sub-cgroup the customer made), so cgroupctl sums pids.events over the user's whole subtree; \
kernels with pids.events.local (6.12 and later) count it hierarchically in pids.events of \
users/<user> itself, which is read alone (unless cgroup2 is mounted with pids_localevents, \
which restores the old counting). Where counting is local, the count of a session or service \
leaf is carried into the user's record (the trusted.pam_cgroup.carried extended attribute of \
users/<user>) right before pam_cgroup.so, cgroupctl gc or the daemon removes the leaf, so it \
survives the leaf. One difference remains: a fork refused by a pids.max above users/<user> \
(one the administrator set on the tree root) is counted on 6.1 but not on 6.12+. memory.events is hierarchical since kernel 5.2 (unless mounted with \
memory_localevents, then it is summed and carried the same way); cpu.stat and io.stat \
always are. All counters restart from 0 when users/<user> itself is removed. Reading the \
carried part needs root. \
What a customer can do: it cannot write or remove the trusted attributes, nor remove a \
root-made leaf, so it cannot lower a count the kernel keeps hierarchically; where counting \
is local (6.1), counts made in a sub-cgroup the customer created itself are lost when the \
customer removes that sub-cgroup (the kernel keeps no record, and root never removes the \
customer's cgroups). A customer can raise pids_events_max only by real refused forks, e.g. \
against a pids.max it set on its own sub-cgroup.";

/// How the traffic counters are counted (docs/private-ip.md and cgroupctl-stats(8)).
pub const NETWORK_COUNTERS: &str = "\
Two cgroup_skb programs attached at the tree root by cgroupctl init (next to the private-IP \
programs, pinned the same way) count every IPv4 and IPv6 packet of every socket created by a \
process below users/<user>, whatever sub-cgroup it is in, by the user's uid. Bytes are the IP \
packet as the hooks see it: IP header, transport header and payload, no link-layer header \
(a TCP payload of P bytes sent in S segments counts P + S x (IP header 20 or 40 + TCP header \
20 to 60) plus the handshake, ACK and FIN packets; a UDP datagram of P bytes counts \
P + 8 + 20 (IPv4) or P + 8 + 40 (IPv6)). Packets count GSO segments one by one. Scope \
loopback is traffic through a loopback device (it never left the host's network namespace, \
e.g. to 127.0.0.1, ::1 or the host's own addresses); external is every other device. \
Counters are kept per uid in a pinned map: they continue when users/<user> is removed and \
made again, and when the daemon or cgroupctl restarts; they restart from 0 (a counter reset, \
which Prometheus' rate() handles) only when the map goes: cgroupctl deinit, or a reboot. Not \
counted: sockets created outside the tree and passed in (the kernel attributes a socket to \
the cgroup it was created in, and an accepted connection to its listening socket's: the bytes \
of an ssh or sftp login itself are sshd's, not the customer's; a customer's own clients and \
servers are counted), packets of a fence not registered yet (a login registers it \
before the session starts), traffic in a network namespace whose sockets were created \
outside the tree. Private IPs must be enabled ([private_ip] enabled = true): the counters use \
the fence map that the private-IP programs maintain.";

/// The manual page's extra sections for `cgroupctl stats`: the metric families (from the
/// Prometheus table itself), the JSON fields and how fault counters are counted.
pub fn man_sections() -> String {
    let roff = |t: &str| t.replace('\\', "\\e").replace('-', "\\-");
    let mut out = String::from(".SH METRICS\nWith \\fB\\-\\-prometheus\\fR (and at the daemon's metrics endpoint), one sample per user, labelled user=\"NAME\". A family whose file is absent here (its controller is not enabled) is omitted, never reported as 0.\n");
    for (name, kind, help) in cgroup_core::stats::prometheus::families() {
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR ({kind})\n{}\n",
            roff(name),
            roff(help)
        ));
    }
    out.push_str(".SH \"JSON FIELDS\"\nWith \\fB\\-\\-json\\fR, one object per user; a field whose file is absent is null, never 0. The table shows the same values.\n");
    for (field, meaning) in JSON_FIELDS {
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            roff(field),
            roff(meaning)
        ));
    }
    out.push_str(&format!(
        ".SH \"FAULT COUNTERS\"\n{}\n",
        roff(FAULT_COUNTERS)
    ));
    out.push_str(&format!(
        ".SH \"NETWORK COUNTERS\"\n{}\n",
        roff(NETWORK_COUNTERS)
    ));
    out
}

#[cfg(test)]
mod tests {
    /// docs/monitoring.md documents every metric and JSON field the code emits.
    #[test]
    fn monitoring_doc_lists_every_metric_and_field() {
        let doc = include_str!("../../../docs/monitoring.md");
        for (name, _, _) in cgroup_core::stats::prometheus::families() {
            assert!(
                doc.contains(name),
                "docs/monitoring.md does not document {name}"
            );
        }
        for (field, _) in super::JSON_FIELDS {
            assert!(
                doc.contains(field),
                "docs/monitoring.md does not document {field}"
            );
        }
    }

    #[test]
    fn man_sections_list_every_family() {
        let page = super::man_sections();
        for (name, _, _) in cgroup_core::stats::prometheus::families() {
            assert!(page.contains(&name.replace('-', "\\-")), "{name}");
        }
        assert!(page.contains(".SH \"FAULT COUNTERS\""));
        assert!(!page.lines().any(|l| l.starts_with('.')
            && l.starts_with(".T")
            && l.len() > 3
            && !l.starts_with(".TP")));
    }
}
