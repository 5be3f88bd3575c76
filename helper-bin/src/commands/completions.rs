//! `cgroupctl completions SHELL`: the shell completion script for bash, zsh or fish, generated
//! from the clap definition (so it always knows every verb and option). The package installs
//! the three at the shells' standard places; run it by hand for a cgroupctl built elsewhere.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

use crate::Cli;

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

pub fn script(shell: CompletionShell) -> Vec<u8> {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cgroupctl", &mut out);
    out
}

pub fn run(args: &CompletionsArgs) -> Result<ExitCode> {
    use std::io::Write;
    std::io::stdout().write_all(&script(args.shell))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each script knows the verbs and their options (a verb added later is in it too).
    #[test]
    fn scripts_name_verbs_and_options() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let text = String::from_utf8(script(shell)).unwrap_or_default();
            // Options without their dashes: fish writes `-l min-age`.
            for word in ["suspend", "sessions", "textfile", "min-age", "json"] {
                assert!(text.contains(word), "{shell:?} lacks {word}");
            }
        }
    }
}
