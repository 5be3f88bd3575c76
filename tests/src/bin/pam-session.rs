//! pam-session: opens one real PAM session through libpam, like sshd or cron would, and reports
//! where the process (and a child it forks) landed, as JSON.
//!
//! ```text
//! pam-session --confdir DIR --service SVC --user U [--capture-syslog] [--hold-ms N]
//!             [--as-user] [--acct] [--tty T] [--rhost H] [--hold-until FILE]
//!             [--then-users U2,U3] [--linger-until FILE] [-- CMD ARGS...]
//! ```
//! The child runs CMD (default: `cat /proc/self/cgroup`), as the user with --as-user (the way a
//! login program drops privileges after pam_open_session).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use serde::Serialize;

use pam_cgroup_tests::pam_client::{PamTransaction, PAM_SUCCESS};
use pam_cgroup_tests::syslog_capture::SyslogCapture;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    confdir: PathBuf,
    #[arg(long)]
    service: String,
    #[arg(long)]
    user: String,
    /// Listen on a private /dev/log and report what the module logged.
    #[arg(long)]
    capture_syslog: bool,
    /// Stay in the session this long before closing (to overlap concurrent sessions).
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// Run the child with the user's uid, gid and groups.
    #[arg(long)]
    as_user: bool,
    /// Run the account stack (pam_acct_mgmt) first, as sshd and cron do; a refusal ends the
    /// run there.
    #[arg(long)]
    acct: bool,
    /// PAM_TTY and PAM_RHOST, as sshd sets them.
    #[arg(long)]
    tty: Option<String>,
    #[arg(long)]
    rhost: Option<String>,
    /// Once open, stay until this file exists (at most 5 minutes): a test holds many sessions
    /// open at once and releases them together.
    #[arg(long)]
    hold_until: Option<PathBuf>,
    /// Do not close the session (to test what close would have cleaned).
    #[arg(long)]
    no_close: bool,
    /// For people: the child writes to this terminal, and a short summary replaces the JSON.
    #[arg(long)]
    human: bool,
    /// Open files allowed while libpam runs (pam_start to pam_open_session), as `ulimit -n N`
    /// before `su` would: the caller's limits are the customer's there. Put back afterwards so
    /// the report can be written.
    #[arg(long)]
    nofile: Option<u64>,
    /// After the first session, open and close one for each of these users in this same
    /// process, as a long-lived caller does (Dovecot's auth worker with `session=yes`).
    #[arg(long, value_delimiter = ',')]
    then_users: Vec<String>,
    /// Once the report is written, stay alive until this file exists (at most 5 minutes).
    #[arg(long)]
    linger_until: Option<PathBuf>,
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    pid: u32,
    cgroup_before: String,
    acct_rc: Option<i32>,
    open_rc: i32,
    open_error: String,
    cgroup_after_open: String,
    child_status: Option<i32>,
    child_stdout: String,
    child_stderr: String,
    close_rc: Option<i32>,
    cgroup_after_close: String,
    syslog: Vec<String>,
    /// What the modules said through the conversation (what sshd shows the client).
    messages: Vec<String>,
    /// The sessions of --then-users, in order.
    then: Vec<ThenReport>,
}

#[derive(Debug, Default, Serialize)]
struct ThenReport {
    user: String,
    open_rc: i32,
    cgroup_after_open: String,
    close_rc: i32,
    cgroup_after_close: String,
}

/// One more session in this process: open, close, where the process was after each.
fn then_session(args: &Args, user: &str) -> ThenReport {
    let mut pam = PamTransaction::start(&args.service, user, &args.confdir).unwrap();
    let open_rc = pam.open_session();
    let cgroup_after_open = own_cgroup();
    let close_rc = pam.close_session();
    ThenReport {
        user: user.to_string(),
        open_rc,
        cgroup_after_open,
        close_rc,
        cgroup_after_close: own_cgroup(),
    }
}

fn wait_for(file: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn own_cgroup() -> String {
    // Lossy: the process may sit in a cgroup a customer named in any bytes.
    String::from_utf8_lossy(&std::fs::read("/proc/self/cgroup").unwrap_or_default())
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("")
        .to_string()
}

fn main() {
    let args = Args::parse();
    let capture = if args.capture_syslog {
        match SyslogCapture::install() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("pam-session: cannot capture syslog: {e}");
                std::process::exit(2);
            }
        }
    } else {
        None
    };
    let mut report = Report {
        pid: std::process::id(),
        cgroup_before: own_cgroup(),
        ..Report::default()
    };
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let own_nofile = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if let Some(n) = args.nofile {
        setrlimit(Resource::RLIMIT_NOFILE, n, n).unwrap();
    }
    let restore_nofile = || {
        if args.nofile.is_some() {
            // Raising the hard limit again needs CAP_SYS_RESOURCE, which some roots lack:
            // then the report is written with the files left (libpam has closed its own).
            let _ = setrlimit(Resource::RLIMIT_NOFILE, own_nofile.0, own_nofile.1);
        }
    };
    let mut pam = match PamTransaction::start(&args.service, &args.user, &args.confdir) {
        Ok(p) => p,
        Err(e) if args.nofile.is_some() => {
            // libpam itself could not start with so few files: nothing was opened.
            restore_nofile();
            report.open_rc = -2;
            report.open_error = format!("pam_start: {e}");
            report.cgroup_after_open = own_cgroup();
            report.cgroup_after_close = own_cgroup();
            println!("{}", serde_json::to_string(&report).unwrap());
            return;
        }
        Err(e) => {
            eprintln!("pam-session: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = pam.set_tty_rhost(args.tty.as_deref(), args.rhost.as_deref()) {
        eprintln!("pam-session: {e}");
        std::process::exit(2);
    }
    if args.acct {
        let rc = pam.acct_mgmt();
        report.acct_rc = Some(rc);
        if rc != PAM_SUCCESS {
            restore_nofile();
            report.open_rc = -1;
            report.open_error = format!("account refused: {}", pam.strerror(rc));
            report.cgroup_after_open = own_cgroup();
            report.cgroup_after_close = own_cgroup();
            report.messages = pam.messages();
            drop(pam);
            if let Some(c) = &capture {
                report.syslog = c.drain();
            }
            println!("{}", serde_json::to_string(&report).unwrap());
            return;
        }
    }
    report.open_rc = pam.open_session();
    restore_nofile();
    report.open_error = pam.strerror(report.open_rc);
    report.cgroup_after_open = own_cgroup();
    if report.open_rc == PAM_SUCCESS {
        let command = if args.command.is_empty() {
            vec!["cat".to_string(), "/proc/self/cgroup".to_string()]
        } else {
            args.command.clone()
        };
        let mut child = Command::new(&command[0]);
        child.args(&command[1..]);
        if args.as_user {
            if let Ok(Some(user)) = nix::unistd::User::from_name(&args.user) {
                let groups = nix::unistd::getgrouplist(
                    &std::ffi::CString::new(args.user.clone()).unwrap(),
                    user.gid,
                )
                .unwrap_or_default();
                let (uid, gid) = (user.uid, user.gid);
                // std's Command::uid runs before pre_exec, and setgroups needs root: drop the
                // privileges ourselves, in the order login programs do.
                // SAFETY: setgroups/setgid/setuid are async-signal-safe; the closure owns its data.
                unsafe {
                    child.pre_exec(move || {
                        nix::unistd::setgroups(&groups)?;
                        nix::unistd::setgid(gid)?;
                        nix::unistd::setuid(uid)?;
                        Ok(())
                    });
                }
                child.env("HOME", &user.dir).env("USER", &args.user);
            }
        }
        if args.human {
            child
                .stdout(std::process::Stdio::inherit())
                .stderr(std::process::Stdio::inherit());
        }
        match child.output() {
            Ok(out) => {
                report.child_status = out.status.code();
                report.child_stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                report.child_stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            }
            Err(e) => report.child_stderr = format!("spawn {}: {e}", command[0]),
        }
        if args.hold_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(args.hold_ms));
        }
        if let Some(file) = &args.hold_until {
            wait_for(file);
        }
        if !args.no_close {
            report.close_rc = Some(pam.close_session());
        }
    }
    report.cgroup_after_close = own_cgroup();
    report.messages = pam.messages();
    drop(pam);
    report.then = args
        .then_users
        .iter()
        .map(|user| then_session(&args, user))
        .collect();
    if let Some(c) = &capture {
        report.syslog = c.drain();
    }
    if args.human {
        println!(
            "pam_open_session:  {} ({})",
            report.open_rc, report.open_error
        );
        println!("cgroup before:     {}", report.cgroup_before);
        println!("cgroup in session: {}", report.cgroup_after_open);
        if let Some(rc) = report.close_rc {
            println!("pam_close_session: {rc}");
        }
        println!("cgroup after:      {}", report.cgroup_after_close);
        for line in &report.syslog {
            println!("syslog: {line}");
        }
        std::process::exit(if report.open_rc == PAM_SUCCESS { 0 } else { 1 });
    }
    println!("{}", serde_json::to_string(&report).unwrap());
    if let Some(file) = &args.linger_until {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        wait_for(file);
    }
}
