//! systemd-logind's RemoveIPC. With RemoveIPC=yes (logind's default) the SysV and POSIX IPC
//! objects of a user are removed when its last login session ends, which breaks confined
//! users' services that outlive their logins (started with `cgroupctl run`, or nohup): their
//! shared memory and semaphores vanish under them.

use std::path::Path;

use super::Finding;

pub const DEFAULT_CONF: &str = "/etc/systemd/logind.conf";
const LOGIND_BINARIES: &[&str] = &[
    "/lib/systemd/systemd-logind",
    "/usr/lib/systemd/systemd-logind",
];

/// The last `RemoveIPC=` of the `[Login]` section, if any.
pub fn remove_ipc_setting(text: &str) -> Option<bool> {
    let mut in_login = false;
    let mut value = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            in_login = line == "[Login]";
            continue;
        }
        if !in_login {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == "RemoveIPC" {
                value = match v.trim().to_ascii_lowercase().as_str() {
                    "yes" | "true" | "1" | "on" => Some(true),
                    "no" | "false" | "0" | "off" => Some(false),
                    _ => value,
                };
            }
        }
    }
    value
}

/// The effective setting: the main file, then drop-ins in `<conf>.d/*.conf` in name order
/// (later wins, as systemd reads them); logind's default is yes.
pub fn effective_remove_ipc(conf: &Path) -> (bool, Vec<String>) {
    let mut sources = Vec::new();
    let mut value = true;
    let mut files = vec![conf.to_path_buf()];
    let dropins = conf.with_extension("conf.d");
    if let Ok(entries) = std::fs::read_dir(&dropins) {
        let mut more: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        if let Some(v) = std::fs::read_to_string(&f)
            .ok()
            .as_deref()
            .and_then(remove_ipc_setting)
        {
            value = v;
            sources.push(f.display().to_string());
        }
    }
    (value, sources)
}

pub fn check_remove_ipc(conf: &Path) -> Finding {
    let installed = conf.exists() || LOGIND_BINARIES.iter().any(|b| Path::new(b).exists());
    if !installed {
        return Finding::ok(
            "logind",
            "systemd-logind is not installed (RemoveIPC does not apply)",
        );
    }
    let (remove, sources) = effective_remove_ipc(conf);
    let origin = sources
        .last()
        .cloned()
        .unwrap_or_else(|| "logind's default".to_string());
    if remove {
        Finding::warn(
            "logind",
            format!("RemoveIPC=yes (from {origin})"),
            "matters only when customers run services that outlive their logins (`cgroupctl run`, nohup, a cron-started daemon) and use SysV/POSIX IPC (PostgreSQL, shared-memory caches): logind removes that IPC when the user's last session ends, under the running service",
            format!("put `[Login]` / `RemoveIPC=no` in {}/pam_cgroup.conf and restart systemd-logind", conf.with_extension("conf.d").display()),
        )
    } else {
        Finding::ok("logind", format!("RemoveIPC=no (from {origin})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_login_section() {
        assert_eq!(remove_ipc_setting("[Login]\n#RemoveIPC=no\n"), None);
        assert_eq!(remove_ipc_setting("[Login]\nRemoveIPC=no\n"), Some(false));
        assert_eq!(remove_ipc_setting("[Other]\nRemoveIPC=no\n"), None);
        assert_eq!(
            remove_ipc_setting("[Login]\nRemoveIPC=no\nRemoveIPC=yes\n"),
            Some(true)
        );
    }

    #[test]
    fn dropins_win() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("logind.conf");
        std::fs::write(&conf, "[Login]\nRemoveIPC=yes\n").unwrap();
        std::fs::create_dir(d.path().join("logind.conf.d")).unwrap();
        std::fs::write(
            d.path().join("logind.conf.d/50-x.conf"),
            "[Login]\nRemoveIPC=no\n",
        )
        .unwrap();
        assert!(!effective_remove_ipc(&conf).0);
        assert_eq!(check_remove_ipc(&conf).status, super::super::Status::Ok);
    }
}
