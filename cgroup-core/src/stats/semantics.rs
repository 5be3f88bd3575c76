//! Which fault counters the kernel keeps hierarchically, decided by feature detection.
//!
//! - `pids.events` "max": up to kernel 6.11 (Debian 12's 6.1) a refused fork is counted in the
//!   cgroup of the *forking* process (the session leaf, or a customer's sub-cgroup), not in
//!   the cgroup whose pids.max was hit, and never in its ancestors. Kernels with
//!   `pids.events.local` (6.12+) count it in the cgroup whose limit was hit *and every
//!   ancestor* (pids.events is hierarchical, pids.events.local is not), unless cgroup2 is
//!   mounted with `pids_localevents`, which restores the old counting.
//! - `memory.events`: hierarchical since 5.2 unless mounted with `memory_localevents`.
//!
//! A hierarchical counter is read from `users/<user>` alone: the kernel already added every
//! descendant's events, also those of descendants removed since. A local one must be summed
//! over the user's subtree, plus what `carry` saved from leaves before their removal.

use std::path::Path;

/// How this kernel counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSemantics {
    pub pids_hierarchical: bool,
    pub memory_hierarchical: bool,
}

impl EventSemantics {
    /// Detects the semantics at `dir` (a cgroup with the pids controller enabled, if any)
    /// from the files it has and the cgroup2 mount options.
    pub fn detect(dir: &Path) -> EventSemantics {
        let options = cgroup2_super_options();
        EventSemantics {
            pids_hierarchical: dir.join("pids.events.local").exists()
                && !options.iter().any(|o| o == "pids_localevents"),
            memory_hierarchical: !options.iter().any(|o| o == "memory_localevents"),
        }
    }
}

/// The super options of the cgroup2 hierarchy (one per system: every cgroup2 mount shows the
/// same), e.g. `rw,nsdelegate,memory_recursiveprot`.
fn cgroup2_super_options() -> Vec<String> {
    let text = std::fs::read_to_string(crate::paths::MOUNTINFO).unwrap_or_default();
    super_options(&text)
}

fn super_options(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|line| line.split_once(" - ").map(|(_, right)| right))
        .find_map(|right| {
            let mut fields = right.split(' ');
            (fields.next() == Some("cgroup2")).then(|| fields.nth(1).unwrap_or("").to_string())
        })
        .map(|opts| opts.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super_options;

    #[test]
    fn reads_the_cgroup2_super_options() {
        let text = "30 24 0:25 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,pids_localevents\n\
                    31 24 0:26 / /sys/fs/bpf rw - bpf bpf rw,mode=700\n";
        let opts = super_options(text);
        assert!(opts.contains(&"pids_localevents".to_string()));
        assert!(opts.contains(&"nsdelegate".to_string()));
        assert!(super_options("31 24 0:26 / /x rw - bpf bpf rw\n").is_empty());
    }
}
