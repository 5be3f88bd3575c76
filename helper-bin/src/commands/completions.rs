//! `cgroupctl completions SHELL`: the shell completion script for bash, zsh or fish, generated
//! from the clap definition (so it always knows every verb and option). The package installs
//! the three at the shells' standard places; run it by hand for a cgroupctl built elsewhere.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use clap_complete::Shell;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
#[command(after_help = "Installed by the package at \
    /usr/share/bash-completion/completions/cgroupctl, \
    /usr/share/zsh/vendor-completions/_cgroupctl and \
    /usr/share/fish/vendor_completions.d/cgroupctl.fish.")]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The script for `shell` of the whole command line `cmd`.
pub fn script(shell: CompletionShell, mut cmd: clap::Command) -> Vec<u8> {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cgroupctl", &mut out);
    out
}

pub fn run(args: &CompletionsArgs, cmd: clap::Command) -> Result<ExitCode> {
    use std::io::Write;
    std::io::stdout().write_all(&script(args.shell, cmd))?;
    Ok(ExitCode::SUCCESS)
}
