//! Throwaway users and groups, created with useradd/groupadd and removed on drop.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use cgroup_core::paths::{carry_lock_name, sessions_lock_name, RUN_DIR};

/// useradd/groupadd take /etc/passwd's lock and fail when it is busy: one at a time in this
/// process, and retry when another process holds it.
static NSS_EDIT: Mutex<()> = Mutex::new(());

fn run_locked(program: &str, args: &[&str]) {
    let _guard = NSS_EDIT.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = String::new();
    for _ in 0..50 {
        let out = Command::new(program).args(args).output().unwrap();
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        // Exit 10 (useradd) / 10 (groupadd): cannot lock; anything else is a real error.
        if out.status.code() != Some(10) && !last.contains("lock") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{program} {args:?} failed: {last}");
}

fn try_run_locked(program: &str, args: &[&str]) -> Result<(), String> {
    let _guard = NSS_EDIT.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = String::new();
    for _ in 0..50 {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.code() != Some(10) && !last.contains("lock") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

/// A local group, removed on drop.
pub struct TestGroup {
    pub name: String,
    pub gid: u32,
}

impl TestGroup {
    pub fn new(prefix: &str) -> TestGroup {
        Self::in_range(prefix, 20000, 59999)
    }

    /// A group with a gid below the private-IP tests' min_gid (2000): the "low group" a
    /// customer might be a member of.
    pub fn low(prefix: &str) -> TestGroup {
        Self::in_range(prefix, 1200, 1999)
    }

    fn in_range(prefix: &str, min: u32, max: u32) -> TestGroup {
        let name = super::unique_name(prefix);
        let (min, max) = (format!("GID_MIN={min}"), format!("GID_MAX={max}"));
        run_locked("groupadd", &["-K", &min, "-K", &max, &name]);
        let gid = nix::unistd::Group::from_name(&name)
            .unwrap()
            .unwrap()
            .gid
            .as_raw();
        TestGroup { name, gid }
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        if let Err(e) = try_run_locked("groupdel", &[&self.name]) {
            eprintln!("cleanup: groupdel {}: {e}", self.name);
        }
    }
}

/// A local user (uid and user-group gid >= 20000, no home), removed on drop.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// `userdel` ran already (`delete`): nothing left to remove on drop.
    deleted: bool,
}

impl TestUser {
    /// `program` run as this user (uid, primary gid, no supplementary groups) through
    /// setpriv: how a customer's own process is started in the tests.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={}", self.uid),
            &format!("--regid={}", self.gid),
            "--clear-groups",
            program,
        ]);
        cmd
    }

    pub fn new(prefix: &str) -> TestUser {
        Self::with_groups(prefix, &[])
    }

    /// A user whose primary group is `primary` (no group of its own).
    pub fn with_primary(prefix: &str, primary: &TestGroup) -> TestUser {
        let name = super::unique_name(prefix);
        run_locked(
            "useradd",
            &[
                "-M",
                "-N",
                "-g",
                &primary.name,
                "-s",
                "/bin/sh",
                "-d",
                "/nonexistent",
                "-K",
                "UID_MIN=20000",
                "-K",
                "UID_MAX=59999",
                &name,
            ],
        );
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        TestUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            deleted: false,
        }
    }

    /// A user that is also a member of `groups`.
    pub fn with_groups(prefix: &str, groups: &[&TestGroup]) -> TestUser {
        let name = super::unique_name(prefix);
        let list: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        let joined = list.join(",");
        let mut args = vec![
            "-M",
            "-U",
            "-s",
            "/bin/sh",
            "-d",
            "/nonexistent",
            "-K",
            "UID_MIN=20000",
            "-K",
            "UID_MAX=59999",
            "-K",
            "GID_MIN=20000",
            "-K",
            "GID_MAX=59999",
        ];
        if !list.is_empty() {
            args.push("-G");
            args.push(&joined);
        }
        args.push(&name);
        run_locked("useradd", &args);
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        TestUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            deleted: false,
        }
    }
}

/// Adds `user` to the supplementary group `group` (any group, e.g. another user's own).
pub fn add_to_group(user: &str, group: &str) {
    run_locked("usermod", &["-a", "-G", group, user]);
}

impl TestUser {
    /// `userdel -f` now, as an administrator ends an account (its processes are left alone:
    /// what still runs under the uid is the test's to see).
    pub fn delete(&mut self) {
        run_locked("userdel", &["-f", &self.name]);
        self.deleted = true;
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        if self.deleted {
            let _ = Command::new("pkill")
                .args(["-KILL", "-U", &self.uid.to_string()])
                .status();
            remove_lock_files(&self.name);
            return;
        }
        // A process the test left behind (a child of something it killed) would make userdel
        // fail and leave the user on the machine: the user's processes go first.
        let _ = Command::new("pkill")
            .args(["-KILL", "-U", &self.uid.to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(50));
        // userdel also removes the user's private group (USERGROUPS_ENAB).
        if let Err(e) = try_run_locked("userdel", &[&self.name]) {
            eprintln!("cleanup: userdel {}: {e}", self.name);
        }
        remove_lock_files(&self.name);
    }
}

/// The module's per-user lock files in /run/pam_cgroup, removed once the account is gone and
/// its processes killed, as `cgroupctl remove` removes them.
fn remove_lock_files(user: &str) {
    for lock in [sessions_lock_name(user), carry_lock_name(user)] {
        let _ = std::fs::remove_file(Path::new(RUN_DIR).join(lock));
    }
}
