//! Prometheus text exposition format (version 0.0.4) of per-user stats.
//!
//! Hand-written on purpose: the format is a handful of rules (HELP/TYPE lines, one sample per
//! line, label values escaped, +Inf for unlimited), and the `prometheus` crate would pull
//! protobuf and a registry into a tool that only ever prints one snapshot.
//!
//! A family is written only when at least one user has a value for it: a metric whose file
//! is absent here (no controller) is omitted, never reported as 0.

use std::fmt::Write;

use super::{CgroupStats, MaxValue, PressureLine};
use crate::private_ip::Flow;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One user's snapshot.
#[derive(Debug, Clone)]
pub struct UserSample<'a> {
    pub user: &'a str,
    pub stats: &'a CgroupStats,
    /// Session leaves (`session-*`) currently present.
    pub sessions: u64,
    /// The user's plan and suspension, from the config; `None` when they could not be told
    /// (the user is unknown to NSS, or its user file is broken): no info sample then.
    pub info: Option<UserInfo<'a>>,
}

/// What `pam_cgroup_user_info` says of a user.
#[derive(Debug, Clone, Copy)]
pub struct UserInfo<'a> {
    /// The profile that applies; `None`: the `[limits]` defaults only.
    pub plan: Option<&'a str>,
    pub suspended: bool,
}

/// A sample of a family: extra labels (besides `user`) and the value.
type Point = (Vec<(&'static str, String)>, f64);

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    points: fn(&UserSample<'_>) -> Vec<Point>,
}

fn one(v: Option<f64>) -> Vec<Point> {
    v.map(|v| vec![(Vec::new(), v)]).unwrap_or_default()
}

fn max_value(v: Option<MaxValue>) -> Option<f64> {
    v.map(|m| match m {
        MaxValue::Value(n) => n as f64,
        MaxValue::Max => f64::INFINITY,
    })
}

fn usec(v: u64) -> f64 {
    v as f64 / 1e6
}

/// One point per resource and kind (some/full) whose PSI line exists.
fn pressure(s: &UserSample<'_>, value: fn(&PressureLine) -> f64) -> Vec<Point> {
    let psi = &s.stats.psi;
    let mut out = Vec::new();
    for (resource, p) in [("cpu", psi.cpu), ("memory", psi.memory), ("io", psi.io)] {
        let Some(p) = p else { continue };
        for (kind, line) in [("some", p.some), ("full", p.full)] {
            if let Some(line) = line {
                out.push((
                    vec![("resource", resource.into()), ("kind", kind.into())],
                    value(&line),
                ));
            }
        }
    }
    out
}

fn pressure_avg10(s: &UserSample<'_>) -> Vec<Point> {
    pressure(s, |l| l.avg10 / 100.0)
}

fn pressure_total(s: &UserSample<'_>) -> Vec<Point> {
    pressure(s, |l| usec(l.total_usec))
}

/// One point per scope of the user's traffic, if it is counted here.
fn network(s: &UserSample<'_>, value: fn(&Flow) -> u64) -> Vec<Point> {
    s.stats
        .network
        .map(|t| {
            vec![
                (
                    vec![("scope", "loopback".into())],
                    value(&t.loopback) as f64,
                ),
                (
                    vec![("scope", "external".into())],
                    value(&t.external) as f64,
                ),
            ]
        })
        .unwrap_or_default()
}

const FAMILIES: &[Family] = &[
    Family {
        name: "pam_cgroup_user_info",
        kind: "gauge",
        help: "Always 1: the user's plan (the profile that applies; empty: the [limits] defaults) and whether it is suspended (true/false), as the config says now.",
        points: |s| {
            s.info
                .map(|i| {
                    vec![(
                        vec![
                            ("plan", i.plan.unwrap_or("").to_string()),
                            ("suspended", i.suspended.to_string()),
                        ],
                        1.0,
                    )]
                })
                .unwrap_or_default()
        },
    },
    Family {
        name: "pam_cgroup_sessions",
        kind: "gauge",
        help: "Session leaves (session-*) in the user's cgroup.",
        points: |s| one(Some(s.sessions as f64)),
    },
    Family {
        name: "pam_cgroup_memory_current_bytes",
        kind: "gauge",
        help: "memory.current: memory used by the user's cgroup.",
        points: |s| one(s.stats.memory_current.map(|v| v as f64)),
    },
    Family {
        name: "pam_cgroup_memory_peak_bytes",
        kind: "gauge",
        help: "memory.peak: highest memory use recorded for the user's cgroup.",
        points: |s| one(s.stats.memory_peak.map(|v| v as f64)),
    },
    Family {
        name: "pam_cgroup_memory_max_bytes",
        kind: "gauge",
        help: "memory.max: the user's hard memory limit (+Inf: unlimited).",
        points: |s| one(max_value(s.stats.memory_max)),
    },
    Family {
        name: "pam_cgroup_memory_events_total",
        kind: "counter",
        help: "memory.events of the user's whole subtree: times it was throttled at memory.high (high), reached memory.max (max), ran out of memory (oom), and processes OOM-killed (oom_kill).",
        points: |s| {
            s.stats
                .memory_events
                .map(|e| {
                    vec![
                        (vec![("event", "high".into())], e.high as f64),
                        (vec![("event", "max".into())], e.max as f64),
                        (vec![("event", "oom".into())], e.oom as f64),
                        (vec![("event", "oom_kill".into())], e.oom_kill as f64),
                    ]
                })
                .unwrap_or_default()
        },
    },
    Family {
        name: "pam_cgroup_cpu_usage_seconds_total",
        kind: "counter",
        help: "cpu.stat usage_usec: CPU time used by the user's cgroup, in seconds.",
        points: |s| one(s.stats.cpu.map(|c| usec(c.usage_usec))),
    },
    Family {
        name: "pam_cgroup_cpu_user_seconds_total",
        kind: "counter",
        help: "cpu.stat user_usec: user-mode CPU time, in seconds.",
        points: |s| one(s.stats.cpu.map(|c| usec(c.user_usec))),
    },
    Family {
        name: "pam_cgroup_cpu_system_seconds_total",
        kind: "counter",
        help: "cpu.stat system_usec: kernel-mode CPU time, in seconds.",
        points: |s| one(s.stats.cpu.map(|c| usec(c.system_usec))),
    },
    Family {
        name: "pam_cgroup_cpu_periods_total",
        kind: "counter",
        help: "cpu.stat nr_periods: cpu.max enforcement periods that have elapsed while the user's processes ran (the denominator of the throttled ratio: rate(pam_cgroup_cpu_throttled_periods_total) / rate(pam_cgroup_cpu_periods_total)).",
        points: |s| one(s.stats.cpu.and_then(|c| c.nr_periods).map(|v| v as f64)),
    },
    Family {
        name: "pam_cgroup_cpu_throttled_periods_total",
        kind: "counter",
        help: "cpu.stat nr_throttled: enforcement periods in which cpu.max throttled the user.",
        points: |s| one(s.stats.cpu.and_then(|c| c.nr_throttled).map(|v| v as f64)),
    },
    Family {
        name: "pam_cgroup_cpu_throttled_seconds_total",
        kind: "counter",
        help: "cpu.stat throttled_usec: time the user's processes were throttled by cpu.max, in seconds.",
        points: |s| one(s.stats.cpu.and_then(|c| c.throttled_usec).map(usec)),
    },
    Family {
        name: "pam_cgroup_cpu_max_cores",
        kind: "gauge",
        help: "cpu.max: the user's CPU limit in CPUs (quota / period: 200% = 2; +Inf: unlimited).",
        points: |s| one(s.stats.cpu_max.map(|m| m.cores())),
    },
    Family {
        name: "pam_cgroup_pids_current",
        kind: "gauge",
        help: "pids.current: tasks in the user's cgroup.",
        points: |s| one(s.stats.pids_current.map(|v| v as f64)),
    },
    Family {
        name: "pam_cgroup_pids_max",
        kind: "gauge",
        help: "pids.max: the user's task limit (+Inf: unlimited).",
        points: |s| one(max_value(s.stats.pids_max)),
    },
    Family {
        name: "pam_cgroup_pids_max_events_total",
        kind: "counter",
        help: "pids.events max: forks and clones of the user's processes refused because a pids.max was reached (the user's, or one the user set on its own sub-cgroups), counted the same on every kernel and kept when session leaves are removed.",
        points: |s| one(s.stats.pids_events_max.map(|v| v as f64)),
    },
    Family {
        name: "pam_cgroup_io_read_bytes_total",
        kind: "counter",
        help: "io.stat rbytes summed over devices.",
        points: |s| one(s.stats.io.map(|i| i.rbytes as f64)),
    },
    Family {
        name: "pam_cgroup_io_write_bytes_total",
        kind: "counter",
        help: "io.stat wbytes summed over devices.",
        points: |s| one(s.stats.io.map(|i| i.wbytes as f64)),
    },
    Family {
        name: "pam_cgroup_io_read_ops_total",
        kind: "counter",
        help: "io.stat rios summed over devices.",
        points: |s| one(s.stats.io.map(|i| i.rios as f64)),
    },
    Family {
        name: "pam_cgroup_io_write_ops_total",
        kind: "counter",
        help: "io.stat wios summed over devices.",
        points: |s| one(s.stats.io.map(|i| i.wios as f64)),
    },
    Family {
        name: "pam_cgroup_pressure_avg10_ratio",
        kind: "gauge",
        help: "PSI avg10: share of the last 10 s in which some (or all, kind=full) of the user's tasks stalled on the resource.",
        points: pressure_avg10,
    },
    Family {
        name: "pam_cgroup_pressure_stalled_seconds_total",
        kind: "counter",
        help: "PSI total: time some (or all, kind=full) of the user's tasks stalled on the resource, in seconds.",
        points: pressure_total,
    },
    Family {
        name: "pam_cgroup_network_receive_bytes_total",
        kind: "counter",
        help: "Bytes received by sockets of the user's processes (IP packets, headers included), by scope: loopback (never left the host) or external. Keyed by uid: continues when users/<user> is made again; restarts from 0 only at cgroupctl deinit or reboot.",
        points: |s| network(s, |f| f.receive_bytes),
    },
    Family {
        name: "pam_cgroup_network_receive_packets_total",
        kind: "counter",
        help: "Packets received by sockets of the user's processes (GSO segments counted one by one), by scope.",
        points: |s| network(s, |f| f.receive_packets),
    },
    Family {
        name: "pam_cgroup_network_transmit_bytes_total",
        kind: "counter",
        help: "Bytes sent by sockets of the user's processes (IP packets, headers included), by scope: loopback or external.",
        points: |s| network(s, |f| f.transmit_bytes),
    },
    Family {
        name: "pam_cgroup_network_transmit_packets_total",
        kind: "counter",
        help: "Packets sent by sockets of the user's processes (GSO segments counted one by one), by scope.",
        points: |s| network(s, |f| f.transmit_packets),
    },
];

/// The one family that is not per user: which build answers.
const BUILD_INFO: (&str, &str, &str) = (
    "pam_cgroup_build_info",
    "gauge",
    "Always 1: the version of cgroupctl that produced these metrics.",
);

/// Every family's name, type and help text, in output order (the manual page lists them from
/// here; a test holds docs/monitoring.md to them).
pub fn families() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    FAMILIES
        .iter()
        .map(|f| (f.name, f.kind, f.help))
        .chain(std::iter::once(BUILD_INFO))
}

/// Escapes a label value (backslash, double quote, newline), as the format requires.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn format_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v}")
    }
}

/// Renders the snapshot of every user, then the build's info series (always present, also
/// with no user: it tells a scrape that found no customer from one that found nothing).
pub fn render(samples: &[UserSample<'_>]) -> String {
    let mut out = String::new();
    for family in FAMILIES {
        let mut lines = String::new();
        for sample in samples {
            for (labels, value) in (family.points)(sample) {
                let mut label_text = format!("user=\"{}\"", escape_label(sample.user));
                for (k, v) in labels {
                    let _ = write!(label_text, ",{k}=\"{}\"", escape_label(&v));
                }
                let _ = writeln!(
                    lines,
                    "{}{{{label_text}}} {}",
                    family.name,
                    format_value(value)
                );
            }
        }
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        out.push_str(&lines);
    }
    let (name, kind, help) = BUILD_INFO;
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(
        out,
        "{name}{{version=\"{}\"}} 1",
        escape_label(env!("CARGO_PKG_VERSION"))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{CpuStat, MemoryEvents, Pressure, Psi};

    #[test]
    fn absent_families_are_omitted_and_present_ones_typed() {
        let stats = CgroupStats {
            cpu: Some(CpuStat {
                usage_usec: 1_500_000,
                ..CpuStat::default()
            }),
            psi: Psi {
                memory: Some(Pressure {
                    some: Some(PressureLine {
                        avg10: 12.5,
                        total_usec: 2_000_000,
                    }),
                    full: None,
                }),
                ..Psi::default()
            },
            ..CgroupStats::default()
        };
        let text = render(&[UserSample {
            user: "alice",
            stats: &stats,
            sessions: 2,
            info: None,
        }]);
        assert!(text.contains("# TYPE pam_cgroup_cpu_usage_seconds_total counter\n"));
        assert!(text.contains("pam_cgroup_cpu_usage_seconds_total{user=\"alice\"} 1.5\n"));
        assert!(text.contains("pam_cgroup_sessions{user=\"alice\"} 2\n"));
        assert!(text.contains(
            "pam_cgroup_pressure_avg10_ratio{user=\"alice\",resource=\"memory\",kind=\"some\"} 0.125\n"
        ));
        assert!(!text.contains("memory_current"), "{text}");
        assert!(!text.contains("throttled"), "{text}");
        assert!(!text.contains("kind=\"full\""), "{text}");
        assert!(!text.contains("network"), "{text}");
    }

    #[test]
    fn network_counters_by_scope() {
        use crate::private_ip::Traffic;
        let stats = CgroupStats {
            network: Some(Traffic {
                loopback: Flow {
                    transmit_bytes: 1500,
                    ..Flow::default()
                },
                external: Flow {
                    receive_packets: 7,
                    ..Flow::default()
                },
            }),
            ..CgroupStats::default()
        };
        let text = render(&[UserSample {
            user: "c",
            stats: &stats,
            sessions: 0,
            info: None,
        }]);
        assert!(text.contains("# TYPE pam_cgroup_network_transmit_bytes_total counter\n"));
        assert!(text.contains(
            "pam_cgroup_network_transmit_bytes_total{user=\"c\",scope=\"loopback\"} 1500\n"
        ));
        assert!(text.contains(
            "pam_cgroup_network_receive_packets_total{user=\"c\",scope=\"external\"} 7\n"
        ));
        assert!(text
            .contains("pam_cgroup_network_receive_bytes_total{user=\"c\",scope=\"external\"} 0\n"));
    }

    #[test]
    fn unlimited_is_inf_and_events_are_labelled() {
        let stats = CgroupStats {
            memory_max: Some(MaxValue::Max),
            memory_events: Some(MemoryEvents {
                oom_kill: 3,
                ..MemoryEvents::default()
            }),
            ..CgroupStats::default()
        };
        let text = render(&[UserSample {
            user: "b\"x",
            stats: &stats,
            sessions: 0,
            info: None,
        }]);
        assert!(
            text.contains("pam_cgroup_memory_max_bytes{user=\"b\\\"x\"} +Inf\n"),
            "{text}"
        );
        assert!(
            text.contains("{user=\"b\\\"x\",event=\"oom_kill\"} 3\n"),
            "{text}"
        );
    }

    #[test]
    fn info_limits_and_build_series() {
        use crate::stats::CpuMax;
        let stats = CgroupStats {
            cpu: Some(CpuStat {
                nr_periods: Some(40),
                nr_throttled: Some(10),
                ..CpuStat::default()
            }),
            cpu_max: Some(CpuMax {
                quota_usec: Some(150_000),
                period_usec: 100_000,
            }),
            ..CgroupStats::default()
        };
        let unlimited = CgroupStats {
            cpu_max: Some(CpuMax {
                quota_usec: None,
                period_usec: 100_000,
            }),
            ..CgroupStats::default()
        };
        let text = render(&[
            UserSample {
                user: "alice",
                stats: &stats,
                sessions: 1,
                info: Some(UserInfo {
                    plan: Some("pro"),
                    suspended: true,
                }),
            },
            UserSample {
                user: "bob",
                stats: &unlimited,
                sessions: 0,
                info: Some(UserInfo {
                    plan: None,
                    suspended: false,
                }),
            },
        ]);
        assert!(text.contains("# TYPE pam_cgroup_cpu_periods_total counter\n"));
        assert!(text.contains("pam_cgroup_cpu_periods_total{user=\"alice\"} 40\n"));
        assert!(text.contains("pam_cgroup_cpu_throttled_periods_total{user=\"alice\"} 10\n"));
        assert!(text.contains("pam_cgroup_cpu_max_cores{user=\"alice\"} 1.5\n"));
        assert!(text.contains("pam_cgroup_cpu_max_cores{user=\"bob\"} +Inf\n"));
        assert!(text
            .contains("pam_cgroup_user_info{user=\"alice\",plan=\"pro\",suspended=\"true\"} 1\n"));
        assert!(
            text.contains("pam_cgroup_user_info{user=\"bob\",plan=\"\",suspended=\"false\"} 1\n")
        );
        assert!(text.ends_with(&format!(
            "# TYPE pam_cgroup_build_info gauge\npam_cgroup_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        // With no user at all, only the build's series.
        let empty = render(&[]);
        assert_eq!(empty.lines().filter(|l| !l.starts_with('#')).count(), 1);
        assert!(families().any(|(n, _, _)| n == "pam_cgroup_build_info"));
    }

    #[test]
    fn hostile_label_values_are_escaped() {
        let stats = CgroupStats {
            pids_current: Some(1),
            ..CgroupStats::default()
        };
        let text = render(&[UserSample {
            user: "a\\b\"c\nd",
            stats: &stats,
            sessions: 0,
            info: Some(UserInfo {
                plan: Some("p\"} 1\nfake_metric{x=\""),
                suspended: false,
            }),
        }]);
        assert!(
            text.contains("pam_cgroup_pids_current{user=\"a\\\\b\\\"c\\nd\"} 1\n"),
            "{text}"
        );
        // One sample line per family: the injected newline did not make a line of its own.
        assert!(
            !text.lines().any(|l| l.starts_with("fake_metric")),
            "{text}"
        );
        assert!(
            text.contains("plan=\"p\\\"} 1\\nfake_metric{x=\\\"\""),
            "{text}"
        );
    }
}
