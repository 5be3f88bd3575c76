//! Captures what a PAM module sends to syslog, without touching the machine: the process moves
//! into a private mount namespace, puts a fresh tmpfs on /dev (with the few device nodes a
//! process needs bound back in) and listens on its own /dev/log.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

pub struct SyslogCapture {
    socket: UnixDatagram,
}

const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

impl SyslogCapture {
    /// Must be called before any thread is started (unshare(CLONE_NEWNS) is per thread).
    pub fn install() -> Result<Self, String> {
        unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| format!("make / private: {e}"))?;
        // Keep handles on the real device nodes before /dev is covered.
        let handles: Vec<(&str, std::fs::File)> = DEVICES
            .iter()
            .filter_map(|d| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags_path()
                    .open(Path::new("/dev").join(d))
                    .ok()
                    .map(|f| (*d, f))
            })
            .collect();
        mount(
            Some("tmpfs"),
            "/dev",
            Some("tmpfs"),
            MsFlags::MS_NOSUID,
            Some("mode=755"),
        )
        .map_err(|e| format!("mount tmpfs on /dev: {e}"))?;
        for (name, file) in &handles {
            let target = Path::new("/dev").join(name);
            std::fs::write(&target, b"").map_err(|e| format!("{}: {e}", target.display()))?;
            let source = format!("/proc/self/fd/{}", file.as_raw_fd());
            mount(
                Some(source.as_str()),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("bind {name}: {e}"))?;
        }
        let socket = UnixDatagram::bind("/dev/log").map_err(|e| format!("bind /dev/log: {e}"))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        Ok(SyslogCapture { socket })
    }

    /// Every message received so far.
    pub fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = self.socket.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
}

/// `OpenOptions` helper: device nodes are opened with O_PATH-like care (no controlling tty).
trait CustomFlagsPath {
    fn custom_flags_path(&mut self) -> &mut Self;
}

impl CustomFlagsPath for std::fs::OpenOptions {
    fn custom_flags_path(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK)
    }
}
