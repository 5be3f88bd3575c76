//! The stats of every user cgroup, as `cgroupctl stats` prints them and the daemon's metrics
//! endpoint serves them: one collection and one Prometheus text for both.

use serde::Serialize;

use super::prometheus::{render, UserInfo, UserSample};
use super::CgroupStats;
use crate::config::Config;
use crate::nss::{group_names, lookup_user};

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

/// The Prometheus text of these users (their families, then the build's info series).
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

#[cfg(feature = "bpf")]
pub use traffic::{collect, network_of};

/// The traffic counters live in pinned BPF maps: reading them needs the loader.
#[cfg(feature = "bpf")]
mod traffic {
    use std::path::Path;

    use super::UserStats;
    use crate::error::Result;
    use crate::inventory::{session_and_service_counts, FoundUserCgroup};
    use crate::private_ip::traffic::TrafficReader;
    use crate::private_ip::Traffic;
    use crate::stats::read_user_stats;
    use crate::tree::Tree;

    /// Stats of these user cgroups. The traffic counters are read once for all users (one
    /// pass over the pinned map), then found per user through its fence (no NSS look-up per
    /// user).
    pub fn collect(tree: &Tree, mut users: Vec<FoundUserCgroup>) -> Result<Vec<UserStats>> {
        let traffic = TrafficReader::open(tree)?;
        // One series per user: a legacy cgroup an upgrade left is reported until the user
        // has its own (listed first), which then holds its new sessions and limits.
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
    /// the map was made), None when nothing is counted here (no map) or its directory is not
    /// a registered fence (its sockets are not counted: unknown is not 0). A directory removed
    /// meanwhile has nothing to report.
    pub fn network_of(reader: Option<&TrafficReader>, user_dir: &Path) -> Result<Option<Traffic>> {
        let Some(reader) = reader else {
            return Ok(None);
        };
        match reader.of_user_dir(user_dir) {
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
            other => other,
        }
    }
}
