//! The options every verb takes (before or after the verb's name). Verbs get these, never the
//! whole command line: the command line names every verb, and a verb must not import the others.

use std::path::PathBuf;

use clap::Args;

use cgroup_core::config::DEFAULT_CONFIG_PATH;

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
}
