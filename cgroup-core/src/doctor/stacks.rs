//! The PAM stacks of the services users log in through.

use super::pam::{position, session_stack};
use super::{Finding, Inputs};
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
                format!("if {service} is installed later, its logins are not confined until its stack calls the module"),
                format!("after installing {service}, add `session required {MODULE}` (pam-auth-update does it for common-session)"),
            ));
            continue;
        };
        let Some(ours) = position(&stack, MODULE) else {
            out.push(Finding::fail(
                check,
                format!("{} never calls {MODULE} in its session stack", file.display()),
                format!("logins through {service} are not confined: no limits, no private IP"),
                format!("add `session required {MODULE}` at the end of the session stack (or enable the profile: pam-auth-update --enable pam-cgroup)"),
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
                "libpam ignores an optional module's failure: a login that should be refused gets in",
                format!("make the line `session required {MODULE}`"),
            ));
            continue;
        }
        out.push(Finding::ok(
            check,
            format!("{MODULE} at {}:{} ({})", line.file, line.line, line.control),
        ));
    }
}
