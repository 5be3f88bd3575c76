//! The PAM stacks of the services users log in through.

use super::pam::{module_stack, position, session_stack, SessionLine};
use super::{Finding, Inputs, PACKAGE_PAM_LINE};

const MODULE: &str = "pam_cgroup.so";
const SYSTEMD: &str = "pam_systemd.so";

pub(super) fn check_pam(inputs: &Inputs, out: &mut Vec<Finding>) {
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
        if let Some(skip) = skipped_by(&stack, ours) {
            out.push(Finding::fail(
                check,
                format!(
                    "`{} {}` at {}:{} can end the session stack before {MODULE} ({}:{})",
                    skip.control, skip.module, skip.file, skip.line, line.file, line.line
                ),
                format!("every login that line accepts skips {MODULE}: it runs unconfined, with no limits and no private IP"),
                format!("move {MODULE} before that line, or make that line `required`/`optional` (pam.conf(5): `sufficient` and `done` end the stack, a jump skips the lines it jumps over)"),
            ));
            continue;
        }
        if let Some(ignored) = refusal_ignored(&line.control) {
            out.push(Finding::fail(
                check,
                format!(
                    "{MODULE} at {}:{} is `{}`: libpam ignores its {ignored}",
                    line.file, line.line, line.control
                ),
                "a login the module refuses (a failure inside the customer's own cgroup, whatever on_error says; a suspension; sessions.max; on_error=closed) gets in anyway, unconfined",
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

/// The account part refuses a suspended user, or one at its sessions.max, before
/// the session starts, with the reason shown by sshd; without it only the session part
/// refuses, and sshd does not show its message.
fn check_account(inputs: &Inputs, service: &str, out: &mut Vec<Finding>) {
    let check = format!("pam-account:{service}");
    let file = inputs.pam_dir.join(service);
    let account = module_stack(&inputs.pam_dir, service, "account").unwrap_or_default();
    let ours = position(&account, MODULE).map(|i| (&account[i], skipped_by(&account, i)));
    match ours {
        Some((ours, Some(skip))) => {
            out.push(Finding::warn(
                check,
                format!(
                    "`{} {}` at {}:{} can end the account stack before {MODULE} ({}:{})",
                    skip.control, skip.module, skip.file, skip.line, ours.file, ours.line
                ),
                "matters when a user that line accepts (libpam-sss's `sufficient pam_localuser.so`: every local user) is suspended or at its sessions.max: only the session part refuses the login, after sshd has accepted it, and the person logging in is not told why",
                format!("put the account line `{ACCOUNT_LINE}` before that line in {} (pam-auth-update orders profiles by Priority and rewrites the file: keep the edit in a local profile)", ours.file),
            ));
        }
        Some((ours, None)) => out.push(Finding::ok(
            check,
            format!("{MODULE} in the account stack at {}:{}", ours.file, ours.line),
        )),
        None => out.push(Finding::warn(
            check,
            format!("{} has no account line for {MODULE}", file.display()),
            "matters when a user is suspended or at its sessions.max: only the session part refuses the login, after sshd has accepted it, and the person logging in is not told why",
            "run `pam-auth-update --enable pam-cgroup` (its profile has an Account section, which common-account carries)",
        )),
    }
}

/// The package's account line (debian/pam-cgroup.pam-auth-update).
const ACCOUNT_LINE: &str = "account [success=ok new_authtok_reqd=ok ignore=ignore module_unknown=ignore default=bad] pam_cgroup.so";

/// The first line before `ours` that can let a login through without libpam reaching it
/// (pam.conf(5)): a `sufficient` line ends the stack when its module succeeds, so does
/// `success=done` (or `default=done`), and a jump `N` skips the next N lines. Includes are
/// followed as libpam inlines them; a `substack`'s own `done` ends only the substack, which
/// this does not tell apart (a warning too many, never one too few).
fn skipped_by(stack: &[SessionLine], ours: usize) -> Option<&SessionLine> {
    stack[..ours]
        .iter()
        .enumerate()
        .find(|(i, l)| {
            if l.control == "sufficient" {
                return true;
            }
            let Some(inner) = l
                .control
                .strip_prefix('[')
                .and_then(|c| c.strip_suffix(']'))
            else {
                return false;
            };
            inner
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .any(|(code, action)| {
                    // `done` on a failure code (Debian's `new_authtok_reqd=done` for an
                    // expired password) ends the stack without letting the login in as it is.
                    (action == "done" && matches!(code, "success" | "default"))
                        || action.parse::<usize>().is_ok_and(|n| i + n >= ours)
                })
        })
        .map(|(_, l)| l)
}

/// What the session part answers when it refuses a login (hooks.rs): these must make the
/// stack fail, or the refusal is only a log line.
const REFUSALS: &[&str] = &["session_err", "perm_denied", "user_unknown"];

/// The refusals a PAM control lets through, named, or None when every one fails the stack.
/// `optional` and `sufficient` never fail it on our error; a bracket control fails it only
/// where the action (or `default`) is `bad` or `die` (pam.conf(5)).
fn refusal_ignored(control: &str) -> Option<String> {
    match control {
        "required" | "requisite" => return None,
        "optional" | "sufficient" => return Some("failures".to_string()),
        _ => {}
    }
    let Some(inner) = control.strip_prefix('[').and_then(|c| c.strip_suffix(']')) else {
        // `include`/`substack` never name our module; anything else libpam itself refuses.
        return None;
    };
    let action = |code: &str| {
        inner
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == code)
            .or_else(|| {
                inner
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == "default")
            })
            .map(|(_, v)| v)
    };
    let ignored: Vec<&str> = REFUSALS
        .iter()
        .copied()
        .filter(|code| !matches!(action(code), Some("bad" | "die")))
        .collect();
    if ignored.is_empty() {
        None
    } else {
        Some(format!("refusals ({})", ignored.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::{refusal_ignored, skipped_by, SessionLine};

    fn stack(controls: &[(&str, &str)]) -> Vec<SessionLine> {
        controls
            .iter()
            .enumerate()
            .map(|(i, (control, module))| SessionLine {
                file: "common-x".into(),
                line: i + 1,
                control: control.to_string(),
                module: module.to_string(),
                args: vec![],
            })
            .collect()
    }

    #[test]
    fn a_line_that_can_end_the_stack_or_jump_over_ours_is_found() {
        // Debian's common-account with libpam-sss enabled: pam_localuser ends it for locals.
        let sss = stack(&[
            (
                "[success=1 new_authtok_reqd=done default=ignore]",
                "pam_unix.so",
            ),
            ("requisite", "pam_deny.so"),
            ("required", "pam_permit.so"),
            ("sufficient", "pam_localuser.so"),
            ("[default=bad success=ok user_unknown=ignore]", "pam_sss.so"),
            ("[success=ok default=bad]", "pam_cgroup.so"),
        ]);
        assert_eq!(
            skipped_by(&sss, 5).map(|l| l.module.as_str()),
            Some("pam_localuser.so")
        );
        // Without it (Debian's default): pam_unix's jump skips pam_deny only, and its
        // `new_authtok_reqd=done` (an expired password) does not let a login through.
        let default: Vec<SessionLine> = sss[..3].iter().chain(&sss[5..]).cloned().collect();
        assert_eq!(skipped_by(&default, 3), None);
        // Debian's common-session: the jump skips only pam_deny.
        let session = stack(&[
            ("[default=1]", "pam_permit.so"),
            ("requisite", "pam_deny.so"),
            ("required", "pam_permit.so"),
            ("optional", "pam_systemd.so"),
            ("[success=ok default=bad]", "pam_cgroup.so"),
        ]);
        assert_eq!(skipped_by(&session, 4), None);
        // A jump that lands on or past ours skips it.
        let jump = stack(&[
            ("[success=2 default=ignore]", "pam_succeed_if.so"),
            ("required", "pam_permit.so"),
            ("required", "pam_cgroup.so"),
        ]);
        assert_eq!(skipped_by(&jump, 2).map(|l| l.line), Some(1));
        let done = stack(&[
            ("[success=done default=ignore]", "pam_x.so"),
            ("required", "pam_cgroup.so"),
        ]);
        assert!(skipped_by(&done, 1).is_some());
    }

    #[test]
    fn only_controls_that_fail_the_stack_on_a_refusal_pass() {
        assert_eq!(refusal_ignored("required"), None);
        assert_eq!(refusal_ignored("requisite"), None);
        assert_eq!(
            refusal_ignored("[success=ok ignore=ignore module_unknown=ignore default=bad]"),
            None
        );
        assert_eq!(refusal_ignored("[success=ok default=die]"), None);
        assert!(refusal_ignored("optional").is_some());
        assert!(refusal_ignored("sufficient").is_some());
        assert!(refusal_ignored("[success=ok default=ignore]").is_some());
        assert_eq!(
            refusal_ignored("[success=ok perm_denied=ignore default=bad]").as_deref(),
            Some("refusals (perm_denied)")
        );
        assert!(refusal_ignored("[success=ok]").is_some());
    }
}
