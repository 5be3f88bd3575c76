//! The config and tree every verb starts from, as logins find them, and the user cgroups a
//! verb reports on.

use std::path::PathBuf;

use anyhow::{Context, Result};

use cgroup_core::config::last_good::{self, Broken, Keep};
use cgroup_core::config::Config;
use cgroup_core::inventory::{user_cgroups, FoundUserCgroup};
use cgroup_core::nss::lookup_user;
use cgroup_core::tree::Tree;

use crate::global::GlobalArgs;

/// The config path made absolute: user files are found next to it, and a bare `config.toml`
/// has an empty parent directory that cannot be checked.
pub fn config_path(cli: &GlobalArgs) -> PathBuf {
    std::path::absolute(&cli.config).unwrap_or_else(|_| cli.config.clone())
}

/// Loads the config and locates its tree. A broken file is met with its last good copy, as
/// logins meet it, and one line on stderr says so; with no good copy ever kept, the file's
/// error (exit 3).
pub fn load(cli: &GlobalArgs) -> Result<(Config, Tree)> {
    let (config, tree, _) = load_keeping(cli, Keep::Settled)?;
    Ok((config, tree))
}

/// The config in use, as `load` finds it (for verbs that need no tree).
pub fn load_config(cli: &GlobalArgs) -> Result<Config> {
    Ok(load_in_use(cli, Keep::Settled)?.0)
}

/// `load`, keeping a good file as the last good one as `keep` says (when root), and telling
/// whether the file was broken.
pub fn load_keeping(cli: &GlobalArgs, keep: Keep) -> Result<(Config, Tree, Option<Broken>)> {
    let (config, broken) = load_in_use(cli, keep)?;
    let tree = Tree::locate_root(config.tree.root.as_deref()).context("locate the cgroup tree")?;
    Ok((config, tree, broken))
}

fn load_in_use(cli: &GlobalArgs, keep: Keep) -> Result<(Config, Option<Broken>)> {
    let loaded =
        last_good::load(&config_path(cli), Keep::as_root(keep)).map_err(|none| none.error)?;
    if let Some(broken) = &loaded.broken {
        eprintln!(
            "cgroupctl: {}",
            cgroup_core::config_fallback::broken_line(broken, "config")
        );
    }
    Ok((loaded.config, loaded.broken))
}

/// The user cgroups to report: all, or the one named (which must exist).
pub fn selected_users(tree: &Tree, only: Option<&str>) -> Result<Vec<FoundUserCgroup>> {
    let all = user_cgroups(tree)?;
    match only {
        None => Ok(all),
        Some(name) => {
            cgroup_core::names::validate_user_name(name)?;
            let found: Vec<FoundUserCgroup> = all.into_iter().filter(|u| u.name == name).collect();
            if found.is_empty() {
                return Err(no_cgroup(tree, name));
            }
            Ok(found)
        }
    }
}

/// Why a user has no cgroup, in words that tell an unknown name from root and from a user
/// who has not logged in.
fn no_cgroup(tree: &Tree, name: &str) -> anyhow::Error {
    match lookup_user(name) {
        Err(e) => anyhow::Error::from(e).context(format!("no such user: {name}")),
        Ok(u) if u.uid == 0 => anyhow::anyhow!(
            "{name} is uid 0, which pam_cgroup never confines: it has no cgroup"
        ),
        Ok(_) => anyhow::anyhow!(
            "user {name} has no cgroup under {} (not logged in since boot, or exempt: cgroupctl check --user {name} says which)",
            tree.users_dir().display()
        ),
    }
}
