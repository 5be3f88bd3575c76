//! The daemon's own metric families (`pam_cgroup_daemon_*` and `pam_cgroup_config_broken`):
//! its counters, their Prometheus text, and how a scrape's daemon lines are told from the
//! per-user ones. The daemon counts and serves them; `cgroupctl stats --prometheus` takes
//! them out of the daemon's answer and lists every family for the dashboard checker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::prometheus::{escape_label, families};

/// The daemon's own counters, shown with the users' metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub reaped: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// Metrics connections refused because of who the peer was.
    pub metrics_refused: AtomicU64,
    /// Fault events recorded, and those the history could not keep.
    pub fault_events: AtomicU64,
    pub fault_events_unsaved: AtomicU64,
    /// Processes the safety net moved into their fence, and moves that failed.
    pub fenced: AtomicU64,
    pub fence_failures: AtomicU64,
    /// Drains of a cgroup the safety net gave up (strays kept appearing past its bounds).
    pub drains_given_up: AtomicU64,
    /// Times the kernel dropped process events (a sweep of /proc followed).
    pub proc_events_lost: AtomicU64,
    /// The config file and the broken user files, each with whether it is broken now
    /// (`last_good::Watch::files`, refreshed at each pass).
    pub config_files: Mutex<Vec<(String, bool)>>,
}

/// The daemon's families as Prometheus text.
pub fn render(c: &Counters) -> String {
    let mut out = String::new();
    for (name, help, v) in [
        (
            "pam_cgroup_daemon_reaped_leaves_total",
            "Empty leaves the daemon removed.",
            &c.reaped,
        ),
        (
            "pam_cgroup_daemon_reloads_total",
            "Reloads done (start and SIGHUP).",
            &c.reloads,
        ),
        (
            "pam_cgroup_daemon_reload_failures_total",
            "Reloads that failed (config kept).",
            &c.reload_failures,
        ),
        (
            "pam_cgroup_daemon_metrics_refused_total",
            "Metrics connections refused: the peer was not root or an allowed user.",
            &c.metrics_refused,
        ),
        (
            "pam_cgroup_daemon_fault_events_total",
            "Fault events recorded (see cgroupctl events).",
            &c.fault_events,
        ),
        (
            "pam_cgroup_daemon_fault_events_unsaved_total",
            "Fault events logged but not kept in the history (it could not be written).",
            &c.fault_events_unsaved,
        ),
        (
            "pam_cgroup_daemon_fenced_processes_total",
            "Processes whose real uid became a confined customer's, moved into its fence by the safety net.",
            &c.fenced,
        ),
        (
            "pam_cgroup_daemon_fence_failures_total",
            "Processes of confined customers the safety net found outside their fence but could not move.",
            &c.fence_failures,
        ),
        (
            "pam_cgroup_daemon_drains_given_up_total",
            "Cgroups the safety net stopped draining of confined customers' processes at its bounds (some may be left there).",
            &c.drains_given_up,
        ),
        (
            "pam_cgroup_daemon_proc_events_lost_total",
            "Times the kernel dropped process events (the safety net then sweeps /proc).",
            &c.proc_events_lost,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            v.load(Ordering::Relaxed)
        ));
    }
    out.push_str(&config_broken(c));
    out
}

/// `pam_cgroup_config_broken{file}`: 1 while a config file does not parse (logins, reload
/// and the daemon use its last good copy, or follow on_error when none was kept). The
/// global file always has a series; a user file only while it is broken.
fn config_broken(c: &Counters) -> String {
    let name = CONFIG_BROKEN;
    let mut out = format!(
        "# HELP {name} 1 while the config file does not parse: its last good copy is used (or on_error, when none was kept).\n# TYPE {name} gauge\n"
    );
    let files = match c.config_files.lock() {
        Ok(f) => f.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for (file, broken) in files {
        out.push_str(&format!(
            "{name}{{file=\"{}\"}} {}\n",
            escape_label(&file),
            u8::from(broken)
        ));
    }
    out
}

/// Every metric family the daemon's endpoint can serve, as `name type`: the per-user families
/// (also those absent on this host) and the daemon's own. The dashboard checker
/// (monitoring/check) compares every panel's metrics with this list.
pub fn all_families() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = families()
        .map(|(name, kind, _)| (name.to_string(), kind.to_string()))
        .collect();
    for line in render(&Counters::default()).lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                out.push((name.to_string(), kind.to_string()));
            }
        }
    }
    out
}

/// The lines of the daemon's own families (their HELP and TYPE included) out of a whole
/// scrape.
pub fn daemon_lines_of(body: &str) -> String {
    body.lines()
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            is_daemon_family(name)
        })
        .flat_map(|l| [l, "\n"])
        .collect()
}

/// The daemon's own families start with this; the per-user ones never do.
const DAEMON_PREFIX: &str = "pam_cgroup_daemon_";
/// The one daemon family without the prefix (its name is the one the alert rules and the
/// dashboards know): whether a config file is broken, which only the daemon watches.
const CONFIG_BROKEN: &str = "pam_cgroup_config_broken";

/// Is the sample or metadata line's metric name (up to its labels) one of the daemon's?
fn is_daemon_family(name: &str) -> bool {
    name.starts_with(DAEMON_PREFIX)
        || name
            .strip_prefix(CONFIG_BROKEN)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['{', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `stats --prometheus` takes the daemon's families by their prefix out of a whole scrape:
    /// every daemon family has it and no per-user one does.
    #[test]
    fn daemon_families_are_told_by_their_prefix() {
        let daemon = render(&Counters::default());
        assert_eq!(daemon_lines_of(&daemon), daemon);
        for (name, _, _) in families() {
            assert!(!is_daemon_family(name), "{name}");
        }
        let users = crate::stats::users::prometheus_text(&[]);
        assert_eq!(daemon_lines_of(&(users + &daemon)), daemon);
    }
}
