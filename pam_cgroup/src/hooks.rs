//! The session hooks and the account hook: three steps each (arguments, a call into cgroup-core, a PAM code),
//! one log line per failure, open and close paired through pam_set_data so close undoes only
//! what open did.

use std::cell::Cell;
use std::ffi::CStr;

use pam::constants::{PamFlag, PamResultCode};
use pam::items::{RHost, Tty};
use pam::module::{PamHandle, PamHooks};

use cgroup_core::config::OnError;
use cgroup_core::notice::Level;
use cgroup_core::session::{self, OpenRequest, Placement, SessionRecord};
use cgroup_core::Error;

use crate::args::{self, ModuleArgs};
use crate::guard::guarded;
use crate::items::{item_text, service_name, tell};
use crate::log::Logger;
use crate::PamCgroup;

/// pam_set_data key of the open session's record.
const RECORD_KEY: &str = "pam_cgroup_session";

/// A stored record, `None` once close has used it.
type StoredRecord = Option<SessionRecord>;

impl PamHooks for PamCgroup {
    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        let args = parse_args(&args);
        // The account part never refuses on a fault: a panic lets the login through to the
        // session part, which follows on_error.
        let on_error = Cell::new(OnError::Open);
        let mut log = Logger::new(&service_name(pamh), args.debug).part("account");
        warn_unknown(&mut log, &args);
        guarded(
            &on_error,
            |_| crate::account::check(pamh, &args, &mut log),
            |_, panic| {
                Logger::new("pam_cgroup", false)
                    .part("account")
                    .error(&format!("internal error (panic): {panic}"));
                PamResultCode::PAM_IGNORE
            },
        )
    }

    fn sm_open_session(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        let args = parse_args(&args);
        let on_error = Cell::new(args.on_error.unwrap_or_default());
        let mut log = Logger::new(&service_name(pamh), args.debug);
        warn_unknown(&mut log, &args);
        guarded(
            &on_error,
            |on_error| {
                if args.selftest_panic {
                    selftest_panic("open");
                }
                open(pamh, &args, on_error, &mut log)
            },
            |policy, panic| {
                Logger::new("pam_cgroup", false).error(&format!("internal error (panic): {panic}"));
                failure_code(policy, None)
            },
        )
    }

    fn sm_close_session(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        let args = parse_args(&args);
        let on_error = Cell::new(args.on_error.unwrap_or_default());
        let mut log = Logger::new(&service_name(pamh), args.debug);
        guarded(
            &on_error,
            |_| {
                if args.selftest_panic {
                    selftest_panic("close");
                }
                close(pamh, &mut log)
            },
            |_, panic| {
                Logger::new("pam_cgroup", false)
                    .error(&format!("internal error (panic) at close: {panic}"));
                // Nothing at close can keep anybody out: the session is already over.
                PamResultCode::PAM_SUCCESS
            },
        )
    }
}

/// `selftest=panic`: a real unwind from inside the hook to its catch_unwind.
#[allow(clippy::panic)] // the one deliberate panic, asked for by the PAM line, caught by `guarded`
fn selftest_panic(hook: &str) {
    std::panic::panic_any(format!("selftest=panic in {hook}"));
}

pub(crate) fn parse_args(args: &[&CStr]) -> ModuleArgs {
    let strings: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args::parse(strings.iter().map(String::as_str))
}

pub(crate) fn warn_unknown(log: &mut Logger, args: &ModuleArgs) {
    for arg in &args.unknown {
        log.log(
            Level::Warning,
            &format!("ignoring unknown module argument {arg:?}"),
        );
    }
}

/// The PAM code of a failure under a policy.
fn failure_code(policy: OnError, err: Option<&Error>) -> PamResultCode {
    match (policy, err) {
        (OnError::Open, _) => PamResultCode::PAM_SUCCESS,
        (OnError::Closed, Some(Error::UnknownUser { .. }))
        | (OnError::Closed, Some(Error::InvalidName { .. })) => PamResultCode::PAM_USER_UNKNOWN,
        (OnError::Closed, _) => PamResultCode::PAM_SESSION_ERR,
    }
}

fn open(
    pamh: &mut PamHandle,
    args: &ModuleArgs,
    on_error: &Cell<OnError>,
    log: &mut Logger,
) -> PamResultCode {
    // PAM_USER is set by the application (sshd, su, cron) before the session stack runs.
    let user = match pamh.get_user(None) {
        Ok(u) => u,
        Err(code) => {
            log.error(&format!(
                "cannot get the user name: PAM error {}",
                code as i32
            ));
            return failure_code(on_error.get(), None);
        }
    };
    let service = service_name(pamh);
    let tty = item_text::<Tty>(pamh);
    let rhost = item_text::<RHost>(pamh);
    let report = session::open_session(&OpenRequest {
        config_path: &args.config,
        on_error: args.on_error,
        user: &user,
        service: &service,
        tty: tty.as_deref(),
        rhost: rhost.as_deref(),
        pid: std::process::id(),
    });
    on_error.set(report.on_error);
    for notice in &report.notices {
        log.log(notice.level, &format!("user {user}: {}", notice.text));
    }
    match report.outcome {
        Ok(Placement::Confined {
            record, skipped, ..
        }) => {
            log.debug(&format!(
                "user {user}: session in {} ({} limits not applicable here)",
                record.leaf.display(),
                skipped.len()
            ));
            store(pamh, record, log);
            PamResultCode::PAM_SUCCESS
        }
        Ok(Placement::Exempt { reason, record }) => {
            log.debug(&format!("user {user}: not confined: {reason}"));
            if let Some(record) = record {
                store(pamh, record, log);
            }
            PamResultCode::PAM_SUCCESS
        }
        Err(e) if e.refusal_message().is_some() => {
            let message = e.refusal_message().unwrap_or_default();
            log.log(Level::Notice, &format!("user {user}: session refused: {e}"));
            tell(pamh, &message, log);
            PamResultCode::PAM_PERM_DENIED
        }
        Err(e) => {
            let verdict = match (&e, report.on_error) {
                (Error::InsideFence { .. }, _) => {
                    "session refused (a failure inside the user's own cgroup never lets it in unconfined)"
                }
                (_, OnError::Open) => "session allowed unconfined (on_error=open)",
                (_, OnError::Closed) => "session refused (on_error=closed)",
            };
            log.error(&format!("user {user}: {e}; {verdict}"));
            failure_code(report.on_error, Some(&e))
        }
    }
}

fn store(pamh: &mut PamHandle, record: SessionRecord, log: &mut Logger) {
    let stored: StoredRecord = Some(record);
    if pamh.set_data(RECORD_KEY, Box::new(stored)).is_err() {
        log.log(
            Level::Warning,
            "cannot keep the session record (pam_set_data): close will leave the leaf to gc",
        );
    }
}

fn close(pamh: &mut PamHandle, log: &mut Logger) -> PamResultCode {
    // SAFETY: RECORD_KEY is only ever set by `store`, always with a StoredRecord.
    let record = match unsafe { pamh.get_data::<StoredRecord>(RECORD_KEY) } {
        Ok(Some(record)) => record.clone(),
        // No record: open did nothing to undo (exempt, failed, or another process).
        _ => return PamResultCode::PAM_SUCCESS,
    };
    // A second close on the same handle must not act again.
    let used: StoredRecord = None;
    let _ = pamh.set_data(RECORD_KEY, Box::new(used));
    match session::close_session(&record, std::process::id()) {
        Ok(closed) => log.debug(&format!(
            "user {}: session closed, leaf {}: {closed}",
            record.user,
            record.leaf.display(),
        )),
        Err(e) => log.error(&format!("user {}: close: {e}", record.user)),
    }
    PamResultCode::PAM_SUCCESS
}
