//! Reading a PAM stack the way libpam does, for the session type: `@include FILE` (Debian's
//! common-session), `include` and `substack` lines, `-session` (a missing module is
//! ignored), and bracketed controls (`[success=1 default=ignore]`).
//!
//! The documented arrangement (docs/admin-guide.md, "The PAM stack"): `pam_cgroup.so` is listed AFTER
//! `pam_systemd.so` in the session stack. pam_systemd moves the process into logind's
//! session scope; a module that runs later has the last word on where the session's
//! processes live, so pam_cgroup must come last or logind would silently take the login out
//! of the user's fence.

use std::path::Path;

/// One `session` module line, after includes were followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLine {
    /// The file it was read from (an included file for common-session lines).
    pub file: String,
    pub line: usize,
    pub control: String,
    /// The module's file name (`pam_cgroup.so`), without its directory.
    pub module: String,
    pub args: Vec<String>,
}

/// Includes deeper than this are refused (libpam's own limit is similar); a loop stops here.
const MAX_DEPTH: usize = 8;

/// Splits a PAM line into tokens, keeping a bracketed control as one token.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if rest.starts_with('[') {
            let end = rest.find(']').map(|i| i + 1).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    out
}

/// The session lines of the stack in `dir/service`, includes followed. `None` when the file
/// does not exist.
pub fn session_stack(dir: &Path, service: &str) -> Option<Vec<SessionLine>> {
    module_stack(dir, service, "session")
}

/// The lines of one type (`session`, `account`) of the stack in `dir/service`, includes
/// followed (the account part refuses suspended users and those at sessions.max).
pub fn module_stack(dir: &Path, service: &str, kind: &str) -> Option<Vec<SessionLine>> {
    let text = std::fs::read_to_string(dir.join(service)).ok()?;
    let mut out = Vec::new();
    collect(dir, service, &text, 0, kind, &mut out);
    Some(out)
}

fn collect(
    dir: &Path,
    file: &str,
    text: &str,
    depth: usize,
    wanted: &str,
    out: &mut Vec<SessionLine>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let include = |name: &str, out: &mut Vec<SessionLine>| {
        // Included names are relative to the stack directory; a path is taken as it is.
        let path = if name.starts_with('/') {
            Path::new(name).to_path_buf()
        } else {
            dir.join(name)
        };
        if let Ok(t) = std::fs::read_to_string(&path) {
            collect(dir, name, &t, depth + 1, wanted, out);
        }
    };
    // Continuation lines (backslash-newline) are joined first, as libpam does.
    let joined = text.replace("\\\n", " ");
    for (i, raw) in joined.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let t = tokens(line);
        if t.first().map(String::as_str) == Some("@include") {
            if let Some(name) = t.get(1) {
                include(name, out);
            }
            continue;
        }
        let kind = t.first().map(|k| k.trim_start_matches('-')).unwrap_or("");
        if kind != wanted || t.len() < 3 {
            continue;
        }
        let control = t[1].clone();
        if control == "include" || control == "substack" {
            include(&t[2], out);
            continue;
        }
        let module = Path::new(&t[2])
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(SessionLine {
            file: file.to_string(),
            line: i + 1,
            control,
            module,
            args: t[3..].to_vec(),
        });
    }
}

/// Position of the first line calling `module` (`pam_cgroup.so`; `libpam_cgroup.so` as
/// built by cargo counts too).
pub fn position(stack: &[SessionLine], module: &str) -> Option<usize> {
    stack
        .iter()
        .position(|l| l.module == module || l.module == format!("lib{module}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    #[test]
    fn includes_and_brackets() {
        let d = dir_with(&[
            (
                "sshd",
                "auth required pam_unix.so\n@include common-session\nsession [success=ok default=bad] /lib/security/pam_cgroup.so debug # ours\n",
            ),
            (
                "common-session",
                "session required pam_unix.so\n-session optional pam_systemd.so\n",
            ),
        ]);
        let stack = session_stack(d.path(), "sshd").unwrap();
        let modules: Vec<&str> = stack.iter().map(|l| l.module.as_str()).collect();
        assert_eq!(modules, ["pam_unix.so", "pam_systemd.so", "pam_cgroup.so"]);
        assert_eq!(stack[2].control, "[success=ok default=bad]");
        assert_eq!(stack[2].args, ["debug"]);
        assert_eq!(position(&stack, "pam_systemd.so"), Some(1));
        assert!(session_stack(d.path(), "nope").is_none());
    }

    #[test]
    fn substack_and_loops() {
        let d = dir_with(&[
            (
                "a",
                "session substack b\nsession optional libpam_cgroup.so\n",
            ),
            ("b", "session include a\nsession optional pam_systemd.so\n"),
        ]);
        let stack = session_stack(d.path(), "a").unwrap();
        assert!(position(&stack, "pam_cgroup.so").is_some());
        assert!(position(&stack, "pam_systemd.so").is_some());
    }
}
