//! Typed errors of cgroup-core. Every variant carries what an administrator needs to act:
//! the file, the user, the value, and the reason.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

mod config_error;

pub use config_error::{line_col, ConfigError};

#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigError),

    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },

    #[error("{key}: {reason}")]
    InvalidLimit { key: String, reason: String },

    #[error("no cgroup2 filesystem is mounted (read {mountinfo})")]
    NoCgroup2 { mountinfo: PathBuf },

    #[error("tree root {root} is not inside a cgroup2 mount ({mounts})")]
    RootOutsideCgroup2 { root: PathBuf, mounts: String },

    #[error("tree root {root} must be an absolute, normalized path: {reason}")]
    BadRoot { root: PathBuf, reason: &'static str },

    #[error("user {user:?} not found: {reason}")]
    UnknownUser { user: String, reason: String },

    /// NSS could not answer (a source reported UNAVAIL or TRYAGAIN: an LDAP directory or SSSD
    /// down, nsswitch.conf broken), as opposed to every source answering "no such user".
    #[error(
        "user {user:?} cannot be looked up: the user database is unavailable ({reason}); \
         an NSS source (LDAP, SSSD) did not answer, which is not the same as an unknown user"
    )]
    UserDbUnavailable {
        user: String,
        reason: String,
        /// The errno the source set, when it set one.
        errno: Option<i32>,
    },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("write {data:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        data: String,
        #[source]
        source: io::Error,
    },

    #[error("private IPs are enabled but the policy programs {missing} are not attached at {root} (run `cgroupctl init`)")]
    PrivateIpNotAttached { root: PathBuf, missing: String },

    /// A BPF operation (load, attach, pin, update, query) failed.
    #[error("BPF {op} {target}: {reason}")]
    Bpf {
        op: &'static str,
        target: String,
        reason: String,
    },

    /// A user whose gid cannot be turned into a private address.
    #[error("user {user:?} has no private address: gid {gid} {reason}")]
    NoPrivateAddress {
        user: String,
        gid: u32,
        reason: String,
    },

    /// A failure inside an existing `users/<user>`: customer state may be behind it, so the
    /// login is refused whatever on_error says.
    #[error("in the cgroup of user {user}: {source}")]
    InsideFence {
        user: String,
        #[source]
        source: Box<Error>,
    },

    /// The user is suspended (`cgroupctl suspend`): every login is refused, whatever
    /// on_error says. The text is what the person logging in sees.
    #[error("account suspended: {reason}")]
    Suspended { user: String, reason: String },

    /// The user has `sessions.max` sessions open already: this login is refused, whatever
    /// on_error says.
    #[error("too many sessions: {open} open, the limit is sessions.max = {max}")]
    SessionLimit { user: String, open: u32, max: u32 },

    /// The session of a confined user's service manager, refused by
    /// `policy.user_manager = "refuse"`.
    #[error("the user manager (systemd --user) of a confined user is refused by policy.user_manager = \"refuse\"")]
    UserManagerRefused { user: String },

    /// The tree key that names user cgroups (`tree::key`) could not be read or made.
    #[error("tree key {0}")]
    TreeKey(StateError),

    /// A root-only state directory or a file in it could not be used (`crate::state_dir`).
    #[error("{0}")]
    State(#[from] StateError),

    /// A directory root made or needs vanished while it was being opened.
    #[error("{path}: missing")]
    Missing { path: PathBuf },

    /// Another process held a lock for longer than the wait (`crate::root_lock`).
    #[error("{path} is held by another {holder} (waited {} s): try again", waited.as_secs())]
    LockHeld {
        path: PathBuf,
        holder: &'static str,
        waited: Duration,
    },

    /// A lock file a customer could open, or that is not a file (`crate::root_lock`).
    #[error("lock file {path} must be a regular file owned by root with mode 0600")]
    UnsafeLockFile { path: PathBuf },

    /// Another login of the user holds the lock under which sessions are counted, or the
    /// lock could not be taken: the login is refused rather than let in uncounted.
    #[error("another login of {user} is still counting its sessions ({source}); refused rather than let in uncounted")]
    SessionCountLock { user: String, source: StateError },

    /// A directory expected on cgroup2 is on another filesystem.
    #[error("{} is not a cgroup2 directory", path.display())]
    NotCgroup2 { path: PathBuf },

    /// A /proc file of a process lacks what was read from it (the process exited, or the
    /// kernel has no cgroup v2 entry for it).
    #[error("{path}: {reason}")]
    Proc { path: PathBuf, reason: &'static str },

    /// A directory under `users/` that is no user's cgroup under this host's tree key.
    #[error("{}: not a user cgroup", path.display())]
    NotUserCgroup { path: PathBuf },

    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An I/O failure with its operation and path: what `IoContext::ctx` makes, for the call
    /// sites that decide on the errno first.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }

    /// A deliberate refusal of the login (not a fault): the text for the person logging in.
    pub fn refusal_message(&self) -> Option<String> {
        match self {
            Error::Suspended { .. }
            | Error::SessionLimit { .. }
            | Error::UserManagerRefused { .. } => Some(self.to_string()),
            _ => None,
        }
    }

    /// The OS error number behind an I/O failure, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Write { source, .. } => source.raw_os_error(),
            Error::InsideFence { source, .. } => source.errno(),
            Error::UserDbUnavailable { errno, .. } => *errno,
            Error::TreeKey(e) => e.errno,
            _ => None,
        }
    }

    /// A failure because a resource ran out (open files, memory, file size): possibly the
    /// caller's own rlimits, so possibly the customer's doing (`crate::process_limits`).
    pub fn is_resource_exhaustion(&self) -> bool {
        self.errno()
            .is_some_and(crate::process_limits::is_resource_errno)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Why a root-only state directory (`crate::state_dir`) or a file in it was not used.
#[derive(Debug, Error)]
#[error("{path}: {reason}")]
pub struct StateError {
    pub path: PathBuf,
    pub reason: String,
    /// The OS error behind it, if any: a resource exhausted by the caller's own limits
    /// (EMFILE) is told apart from a broken file (`crate::process_limits`).
    pub errno: Option<i32>,
}

/// Attaches the operation and path to an `io::Error` in one call at the call site
/// (youki's `WrapIoResult` habit).
pub trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::io(op, path, source))
    }
}

/// The same for nix's calls (an `Errno`).
impl<T> IoContext<T> for nix::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|errno| Error::io(op, path, errno))
    }
}
