//! Open PAM sessions as `sessions` and `show` list them: each leaf's root-only record
//! (`cgroup_core::sessions`) with the customer's state, and their text table.

use anyhow::Result;
use serde::Serialize;

use cgroup_core::config::Config;
use cgroup_core::sessions::{list_user, SessionInfo};
use cgroup_core::tree::user_cgroup::UserCgroup;
use cgroup_core::tree::Tree;

use super::summary::LifeState;
use crate::load::selected_users;
use crate::output::table;

/// One session as `sessions` and `show` print it: the leaf's record and the customer's state.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRow {
    #[serde(flatten)]
    pub info: SessionInfo,
    /// `open`, `closed` (a leaf kept by processes of a closed session), `frozen` (open, its
    /// processes frozen) or `suspended` (the customer is suspended: frozen or killed, and no
    /// new login is let in).
    pub state: &'static str,
    pub suspended_reason: Option<String>,
    pub suspended_at: Option<String>,
    pub suspended_epoch: Option<u64>,
}

impl SessionRow {
    fn new(info: SessionInfo, life: &LifeState) -> SessionRow {
        let state = if life.state == "suspended" {
            "suspended"
        } else if info.frozen {
            "frozen"
        } else if info.open {
            "open"
        } else {
            "closed"
        };
        SessionRow {
            info,
            state,
            suspended_reason: life.suspended_reason.clone(),
            suspended_at: life.suspended_at.clone(),
            suspended_epoch: life.suspended_epoch,
        }
    }
}

/// The sessions of the selected users.
pub fn collect(
    config: &Config,
    tree: &Tree,
    only: Option<&str>,
    all: bool,
) -> Result<Vec<SessionRow>> {
    let mut out = Vec::new();
    for u in selected_users(tree, only)? {
        let Some(uc) = UserCgroup::open_path(&u.path, &u.name)? else {
            continue;
        };
        let life = LifeState::of(config, &u.name, Some(uc.dir()));
        out.extend(
            list_user(&uc, &tree.mount.mount_point, all)?
                .into_iter()
                .map(|info| SessionRow::new(info, &life)),
        );
    }
    Ok(out)
}

/// The text table.
pub fn print_table(sessions: &[SessionRow]) {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|row| {
            let s = &row.info;
            vec![
                s.user.clone(),
                s.id.clone(),
                row.state.to_string(),
                dash(&s.service),
                // The live terminal when there is one (sshd's PAM_TTY is just "ssh").
                dash(&s.terminal.clone().or_else(|| s.tty.clone())),
                dash(&s.rhost),
                dash(&s.started_at),
                s.processes.to_string(),
                table::opt(s.memory_bytes, table::bytes),
            ]
        })
        .collect();
    table::print(
        &[
            "USER", "SESSION", "STATE", "SERVICE", "TTY", "RHOST", "SINCE", "PROCS", "MEMORY",
        ],
        &rows,
    );
}
