//! The PAM stacks of the services users log in through.

use super::pam::{module_stack, position, session_stack};
use super::{Finding, Inputs, PACKAGE_PAM_LINE};
use crate::config::{Config, OnError};

const MODULE: &str = "pam_cgroup.so";
const SYSTEMD: &str = "pam_systemd.so";

pub(super) fn check_pam(inputs: &Inputs, config: Option<&Config>, out: &mut Vec<Finding>) {
    for service in &inputs.services {
        let check = format!("pam:{service}");
        let file = inputs.pam_dir.join(service);
        let Some(stack) = session_stack(&inputs.pam_dir, service) else {
            out.push(Finding::warn(
                check,
                format!("{} does not exist", file.display()),
                format!("matters only if {service} is installed later: its logins are then not confined unless its stack includes common-session (or common-session-noninteractive)"),
                format!("after installing {service}, check that its stack has `@include common-session` (where `pam-auth-update --enable pam-cgroup` put `{PACKAGE_PAM_LINE}`)"),
            ));
            continue;
        };
        let Some(ours) = position(&stack, MODULE) else {
            out.push(Finding::fail(
                check,
                format!("{} never calls {MODULE} in its session stack", file.display()),
                format!("logins through {service} are not confined: no limits, no private IP"),
                format!("run `pam-auth-update --enable pam-cgroup` (puts `{PACKAGE_PAM_LINE}` in common-session and common-session-noninteractive) and make {service}'s stack `@include common-session`, or add that line after its {SYSTEMD} line"),
            ));
            continue;
        };
        let line = &stack[ours];
        if let Some(sd) = position(&stack, SYSTEMD) {
            if sd > ours {
                let sd_line = &stack[sd];
                out.push(Finding::fail(
                    check,
                    format!(
                        "{SYSTEMD} ({}:{}) runs after {MODULE} ({}:{})",
                        sd_line.file, sd_line.line, line.file, line.line
                    ),
                    "pam_systemd then moves the session into logind's scope, out of the user's cgroup: the login escapes its limits",
                    format!("list {MODULE} after {SYSTEMD} in the session stack (the documented order)"),
                ));
                continue;
            }
        }
        let closed = config
            .map(|c| c.policy.on_error == OnError::Closed)
            .unwrap_or(false)
            || line.args.iter().any(|a| a == "on_error=closed");
        if closed && line.control == "optional" {
            out.push(Finding::warn(
                check,
                format!("{MODULE} is `optional` at {}:{} but on_error is closed", line.file, line.line),
                "matters whenever a login fails to be confined: libpam ignores an optional module's failure, so a login that on_error=closed should refuse gets in",
                format!("use the package's line `{PACKAGE_PAM_LINE}` (pam-auth-update --enable pam-cgroup)"),
            ));
            continue;
        }
        out.push(Finding::ok(
            check,
            format!("{MODULE} at {}:{} ({})", line.file, line.line, line.control),
        ));
        check_account(inputs, service, out);
    }
}

/// Issue 13: the account part refuses a suspended user, or one at its sessions.max, before
/// the session starts, with the reason shown by sshd; without it only the session part
/// refuses, and sshd does not show its message.
fn check_account(inputs: &Inputs, service: &str, out: &mut Vec<Finding>) {
    let check = format!("pam-account:{service}");
    let file = inputs.pam_dir.join(service);
    let account = module_stack(&inputs.pam_dir, service, "account").unwrap_or_default();
    match position(&account, MODULE) {
        Some(i) => out.push(Finding::ok(
            check,
            format!(
                "{MODULE} in the account stack at {}:{}",
                account[i].file, account[i].line
            ),
        )),
        None => out.push(Finding::warn(
            check,
            format!("{} has no account line for {MODULE}", file.display()),
            "matters when a user is suspended or at its sessions.max: only the session part refuses the login, after sshd has accepted it, and the person logging in is not told why",
            "run `pam-auth-update --enable pam-cgroup` (its profile has an Account section, which common-account carries)",
        )),
    }
}
