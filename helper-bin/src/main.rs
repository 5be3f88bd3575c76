//! cgroupctl: the administrator's interface to pam_cgroup's tree. Each verb lives in its own
//! file under `commands/` (the daemon in its folder) and imports no other verb; what verbs
//! share lives beside it (`load`, `output`, `report`, `process`, `apply_all`, ...). Errors
//! are reported in one line with a deliberate exit code.

mod apply_all;
mod commands;
mod duration;
mod exit;
mod global;
mod load;
mod metrics_socket;
mod output;
mod process;
mod report;
mod stats_manual;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cgroupctl",
    version,
    about = "Manage pam_cgroup's per-user cgroup v2 tree",
    long_about = "cgroupctl manages the per-user cgroup v2 tree that pam_cgroup.so places every \
                  login in: it validates the configuration, shows users' limits and usage, \
                  changes limits live, and attaches the private-IP programs.\n\n\
                  Exit codes: 0 success, 1 a check found problems, 2 usage error, \
                  3 configuration error, 4 system error (cgroupfs, BPF, NSS)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: global::GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration (like `sshd -t`, exit 3 with file:line:col: key) and run every
    /// config check doctor runs (exit 1 on another FAIL); keep a good file as the last good
    /// one; with --user, print that user's effective limits and where each comes from.
    Check(commands::check::CheckArgs),
    /// List every user cgroup: profile, memory, cpu, pids, sessions, services.
    List(commands::list::ListArgs),
    /// Show one user in depth: limits (configured and live), usage, cgroups and processes.
    Show(commands::show::ShowArgs),
    /// Print the directory of a user's cgroup (users/<user>.<tag>: the tag is keyed, so only
    /// root can name it); --all: every existing one, a legacy users/<user> included.
    Path(commands::path::PathArgs),
    /// Change a user's limits or plan: validate, rewrite users/<user>.toml atomically
    /// (comments kept), apply to the live cgroup.
    Set(commands::set::SetArgs),
    /// Re-read the config and apply it to every live user cgroup; print what changed. Users
    /// NSS cannot resolve are reported and skipped, the others applied (exit 1 if any). A
    /// broken config: its last good copy is applied whole (exit 1).
    Reload(commands::reload::ReloadArgs),
    /// Run a command as a user inside <user cgroup>/<service>/run-<pid> (like cgexec), in a
    /// session and on a terminal of its own (never yours).
    Run(commands::run::RunArgs),
    /// Move a running process of the user into <user cgroup>/<service>/pid-<pid> (like
    /// cgclassify); pinned by a pidfd, so a recycled PID is never moved.
    Classify(commands::classify::ClassifyArgs),
    /// Per-user usage and fault counters; --prometheus for the text exposition format.
    Stats(commands::stats::StatsArgs),
    /// The daemon's fault history: who hit which limit, when, and what ran (root only).
    Events(commands::events::EventsArgs),
    /// Who used what over a period (--by usage) and who hit limits (--by faults), from the
    /// daemon's usage history; human units and local time, or --json (root only).
    Report(commands::usage_report::ReportArgs),
    /// Your own limits, usage and recent faults, or (--history) your usage over a period (for
    /// customers; asks the daemon, which answers about your uid only).
    Me(commands::me::MeArgs),
    /// Users sorted by CPU, memory, processes or IO, refreshing on a terminal (like lvetop).
    Top(commands::top::TopArgs),
    /// Every open PAM session: user, service, tty, remote host, start, processes, memory.
    Sessions(commands::sessions::SessionsArgs),
    /// Kill every process of a user, one session or one service (SIGKILL via cgroup.kill);
    /// waits until they are gone.
    Kill(commands::levers::KillArgs),
    /// Freeze every process of a user, one session or one service (cgroup.freeze).
    Freeze(commands::levers::TargetArgs),
    /// Thaw what `freeze` froze.
    Thaw(commands::levers::TargetArgs),
    /// Suspend a user: kept in its user file (survives reboots and reload), freezes (or
    /// --kill kills) what runs, refuses every new login with the reason.
    Suspend(commands::suspend::SuspendArgs),
    /// Lift a suspension: thaw, and let logins in again (exit 2, nothing written, for a user
    /// who is not suspended).
    Resume(commands::suspend::ResumeArgs),
    /// Remove a customer for good (after userdel): kill what runs, remove users/<user>, its
    /// user file, its events and counters. Asks first (--yes when not on a terminal); never
    /// root; refused while NSS knows the user unless --force.
    Remove(commands::remove::RemoveArgs),
    /// Every plan with its limits, the groups mapped to it and its members.
    Plans(commands::plans::PlansArgs),
    /// Remove empty session and service leaves, and legacy user cgroups (users/<user> of a
    /// version before the keyed names) once empty; say what was removed.
    Gc(commands::gc::GcArgs),
    /// Check the kernel, config, tree, private IPs, the safety net and processes outside their
    /// fence, /proc, PAM stacks and logind: OK/WARN/FAIL with why and how to fix (exit 1 on any
    /// FAIL).
    Doctor(commands::doctor::DoctorArgs),
    /// Supervise the tree: reap empty leaves as they empty, move processes switched to a
    /// customer's uid into its fence (the safety net), reload on SIGHUP, serve metrics.
    Daemon(commands::daemon::DaemonArgs),
    /// Create the tree, attach the private-IP programs and the traffic counters at its root
    /// and fill their fence map for every user directory (idempotent; a changed [private_ip],
    /// or the gid-based programs of 0.1.0, are swapped in place; counts are kept).
    Init(commands::init::InitArgs),
    /// Detach and unpin the private-IP programs and the traffic counters (their counts go);
    /// remove the tree if no user remains.
    Deinit(commands::deinit::DeinitArgs),
    /// Print a user's private loopback address (127.0.0.0 | primary gid).
    Ip(commands::ip::IpArgs),
    /// Remount /proc with the [proc] section's hidepid= and gid= (run by pam-cgroup.service).
    ProcApply(commands::proc_apply::ProcApplyArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(commands::completions::CompletionsArgs),
    /// Write the manual pages (used by the package build).
    #[command(hide = true)]
    Man(commands::man::ManArgs),
}

/// Verbs anyone may run: `check` (the config is world-readable), `me` (customers ask about
/// themselves), `ip`, and the build's `man` and `completions`. Every other verb reads or
/// writes what only root may (users/ is 0711, the user files and the state 0600 or 0700).
fn needs_root(command: &Command) -> Option<Option<&'static str>> {
    match command {
        Command::Check(_)
        | Command::Me(_)
        | Command::Ip(_)
        | Command::Man(_)
        | Command::Completions(_) => None,
        Command::Events(_)
        | Command::Stats(_)
        | Command::Top(_)
        | Command::Show(_)
        | Command::Report(_) => Some(Some(
            "root only: it names every customer; a customer sees its own limits, usage and faults with `cgroupctl me`",
        )),
        _ => Some(None),
    }
}

/// Did the caller ask for JSON? From the verb's own `--json` flag, or (when clap refused the
/// line before there were matches) from the raw arguments.
fn wants_json(matches: Option<&clap::ArgMatches>) -> bool {
    match matches.and_then(|m| m.subcommand()) {
        Some((_, sub)) => sub
            .try_get_one::<bool>("json")
            .ok()
            .flatten()
            .copied()
            .unwrap_or(false),
        None => std::env::args_os().any(|a| a == "--json"),
    }
}

fn main() -> ExitCode {
    // `cgroupctl list | head` must end quietly, like every Unix tool, not panic on EPIPE.
    // SAFETY: called before any thread exists; SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (m, cli)));
    let (matches, cli) = match parsed {
        Ok(both) => both,
        Err(e) => {
            // A usage error (exit 2), not --help or --version: as JSON too when asked.
            if e.use_stderr() && wants_json(None) {
                let rendered = e.render().to_string();
                let first = rendered.lines().next().unwrap_or("");
                let text = first.strip_prefix("error: ").unwrap_or(first);
                println!(
                    "{}",
                    serde_json::json!({ "error": text, "code": exit::USAGE_ERROR })
                );
            }
            e.exit();
        }
    };
    let json = wants_json(Some(&matches));
    let verb = matches.subcommand_name().unwrap_or("").to_string();
    let uid = nix::unistd::geteuid();
    let result = match needs_root(&cli.command) {
        Some(hint) if !uid.is_root() => Err(anyhow::Error::from(exit::NotRoot {
            verb,
            uid: uid.as_raw(),
            hint,
        })),
        _ => run(&cli.command, &cli.global),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if json {
                println!("{}", exit::json(&err));
            }
            if err.downcast_ref::<exit::NotRoot>().is_some() {
                // Already "cgroupctl VERB: ...".
                eprintln!("{err}");
            } else {
                eprintln!("cgroupctl: {}", output::escape::term(&exit::one_line(&err)));
            }
            exit::code_for(&err)
        }
    }
}

fn run(command: &Command, cli: &global::GlobalArgs) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(args) => commands::check::run(cli, args),
        Command::List(args) => commands::list::run(cli, args),
        Command::Show(args) => commands::show::run(cli, args),
        Command::Path(args) => commands::path::run(cli, args),
        Command::Set(args) => commands::set::run(cli, args),
        Command::Reload(args) => commands::reload::run(cli, args),
        Command::Run(args) => commands::run::run(cli, args),
        Command::Classify(args) => commands::classify::run(cli, args),
        Command::Stats(args) => commands::stats::run(cli, args),
        Command::Events(args) => commands::events::run(cli, args),
        Command::Report(args) => commands::usage_report::run(cli, args),
        Command::Me(args) => commands::me::run(args),
        Command::Top(args) => commands::top::run(cli, args),
        Command::Sessions(args) => commands::sessions::run(cli, args),
        Command::Kill(args) => commands::levers::kill(cli, args),
        Command::Freeze(args) => commands::levers::freeze(cli, args, true),
        Command::Thaw(args) => commands::levers::freeze(cli, args, false),
        Command::Suspend(args) => commands::suspend::suspend(cli, args),
        Command::Resume(args) => commands::suspend::resume(cli, args),
        Command::Remove(args) => commands::remove::run(cli, args),
        Command::Plans(args) => commands::plans::run(cli, args),
        Command::Gc(args) => commands::gc::run(cli, args),
        Command::Doctor(args) => commands::doctor::run(cli, args),
        Command::Daemon(args) => commands::daemon::run(cli, args),
        Command::Init(args) => commands::init::run(cli, args),
        Command::Deinit(args) => commands::deinit::run(cli, args),
        Command::Ip(args) => commands::ip::run(cli, args),
        Command::ProcApply(args) => commands::proc_apply::run(cli, args),
        Command::Completions(args) => commands::completions::run(args, Cli::command()),
        Command::Man(args) => commands::man::run(args, Cli::command()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commands::completions::{script, CompletionShell};

    /// Each completion script knows the verbs and their options (a verb added later is in it
    /// too).
    #[test]
    fn completion_scripts_name_verbs_and_options() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let text = String::from_utf8(script(shell, Cli::command())).unwrap_or_default();
            // Options without their dashes: fish writes `-l min-age`.
            for word in ["suspend", "sessions", "textfile", "min-age", "json"] {
                assert!(text.contains(word), "{shell:?} lacks {word}");
            }
        }
    }
}
