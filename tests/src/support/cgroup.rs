//! A uniquely named tree root inside the real cgroup2 mount, removed (bottom-up, processes
//! moved out first) on drop.

use std::path::{Path, PathBuf};

use cgroup_core::mount::primary_cgroup2;

/// The directory name of a user's cgroup, `<user>.<tag>`, under this host's tree key.
pub fn user_dir_name(user: &str) -> String {
    cgroup_core::tree::tree_key()
        .expect("the tree key (tests run as root)")
        .dir_name(user)
}

/// Whether a cgroup holds a process in its subtree (`populated 1` in its cgroup.events); false
/// for a cgroup that cannot be read (gone).
pub fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

pub struct TestTree {
    pub mount_point: PathBuf,
    pub root: PathBuf,
}

impl TestTree {
    /// A name for a new root; the directory itself is created by the code under test.
    pub fn new() -> TestTree {
        let mount = primary_cgroup2().expect("a cgroup2 mount");
        let root = mount.mount_point.join(super::unique_name("pct-"));
        TestTree {
            mount_point: mount.mount_point,
            root,
        }
    }

    pub fn users(&self) -> PathBuf {
        self.root.join("users")
    }

    /// The cgroup directory of a user, `users/<user>.<tag>`, named by the same library
    /// function as the module's (under this host's tree key).
    pub fn user(&self, name: &str) -> PathBuf {
        self.users().join(user_dir_name(name))
    }

    /// `users/<user>`, where versions before the keyed names put the user.
    pub fn legacy_user(&self, name: &str) -> PathBuf {
        self.users().join(name)
    }

    /// The session leaf (`users/<u>.<tag>/session-*`) of a session whose process the kernel shows
    /// in `cgroup` (its `login/`, or a cgroup the customer made inside the leaf).
    pub fn session_leaf_of(&self, cgroup: &str) -> PathBuf {
        let mut path = self.path_of(cgroup);
        while let Some(parent) = path.parent() {
            if parent.parent() == Some(self.users().as_path()) {
                return path;
            }
            path = parent.to_path_buf();
        }
        panic!(
            "{cgroup} is not in a session leaf of {}",
            self.users().display()
        )
    }

    /// Session leaves (directories named session-*) of a user.
    pub fn session_leaves(&self, user: &str) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.user(user)) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("session-"))
            .map(|e| e.path())
            .collect()
    }

    /// The filesystem path of a cgroup as /proc/PID/cgroup shows it.
    pub fn path_of(&self, cgroup: &str) -> PathBuf {
        self.mount_point.join(cgroup.trim().trim_start_matches('/'))
    }
}

impl Default for TestTree {
    fn default() -> Self {
        Self::new()
    }
}

fn remove_tree(dir: &Path, mount_point: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path(), mount_point);
        }
    }
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines() {
            let _ = std::fs::write(mount_point.join("cgroup.procs"), format!("{pid}\n"));
        }
    }
    // A process a test killed just before may still be a zombie nobody reaped yet: it keeps the
    // cgroup populated (EBUSY) without being listed in cgroup.procs. Give its reaper a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match std::fs::remove_dir(dir) {
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => {
                eprintln!("cleanup: rmdir {}: {e}", dir.display());
                return;
            }
            Ok(()) => return,
        }
    }
}

impl Drop for TestTree {
    fn drop(&mut self) {
        remove_tree(&self.root, &self.mount_point);
    }
}
