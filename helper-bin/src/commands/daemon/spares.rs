//! `[tree] spare_leaves`: when the daemon makes each user's next leaf ahead
//! (cgroup_core::tree::spare). Making a spare takes the kernel's `cgroup_mutex` four times,
//! the very lock a burst of logins queues on, and the logins that claimed the spares are what
//! asks for new ones: made at once, the spares would compete with the rest of the burst. So
//! they are made once the tree has been quiet for `QUIET` (no session leaf made or changed),
//! or `MAX_WAIT` after the first login that asked, whichever comes first.

use std::path::PathBuf;
use std::time::Duration;

use cgroup_core::config::Config;
use cgroup_core::tree::spare;
use cgroup_core::tree::user_cgroup::UserCgroup;
use cgroup_core::tree::Tree;

use super::log;
use super::quiet_queue::QuietQueue;

/// Quiet before the spares are made: a burst of logins lasts tens of milliseconds.
const QUIET: Duration = Duration::from_millis(200);
/// The longest a user waits for its spare under a steady stream of logins.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// Session leaves seen made or changed, whose users may need a spare again.
pub fn spare_queue() -> QuietQueue {
    QuietQueue::new(QUIET, MAX_WAIT)
}

/// One spare for each user of `sessions_seen` that has none.
pub fn keep_spares(config: &Config, tree: &Tree, sessions_seen: &[PathBuf]) {
    let mut users: Vec<(String, PathBuf)> = Vec::new();
    for leaf in sessions_seen {
        // A legacy (0.1.0) user cgroup gets no new leaves.
        if let Ok(Some((user, dir, false))) = tree.user_of(leaf) {
            if !users.iter().any(|(_, d)| *d == dir) {
                users.push((user, dir));
            }
        }
    }
    for (user, dir) in users {
        let made = UserCgroup::open_path(&dir, &user).and_then(|uc| match uc {
            Some(uc) => spare::ensure(&uc, config.tree.leaf_caps()),
            None => Ok(()),
        });
        // Made quietly (one per login); a failure only leaves the next login to make its own.
        if let Err(e) = made {
            log::warn(&format!("spare leaf for user {user}: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn spares_wait_for_a_quiet_moment_but_not_forever() {
        let mut q = spare_queue();
        let t0 = Instant::now();
        assert_eq!(q.due(), None);
        assert!(q.take_due(t0 + MAX_WAIT * 2).is_empty());
        let leaf = PathBuf::from("/x/users/u.1/session-1");
        q.note(std::slice::from_ref(&leaf), t0);
        assert_eq!(q.due(), Some(t0 + QUIET));
        assert!(q.take_due(t0 + QUIET / 2).is_empty());
        // Logins keep coming: each one pushes the moment back, up to MAX_WAIT.
        let mut t = t0;
        while t < t0 + MAX_WAIT * 2 {
            t += QUIET / 2;
            q.note(std::slice::from_ref(&leaf), t);
        }
        assert_eq!(q.due(), Some(t0 + MAX_WAIT));
        assert_eq!(q.take_due(t0 + MAX_WAIT), vec![leaf]);
        assert_eq!(q.due(), None);
    }
}
