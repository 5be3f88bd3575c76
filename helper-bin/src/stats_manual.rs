//! What `cgroupctl stats` reports, in words: the JSON fields, how the fault and traffic
//! counters are counted, and the manual page's sections built from them (`man`).

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
customer removes that sub-cgroup (the kernel keeps no record; root removes a customer's \
cgroups only from a dead session leaf, carrying their counts first); the daemon takes that drop of the sum for what it is, no fault event and \
no usage-history fault, and counts what comes after it. A customer can raise pids_events_max only by real refused forks, e.g. \
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
        let doc = include_str!("../../docs/monitoring.md");
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
