//! Root's writes in a user's tree, all in one place (DESIGN.md, "single writer").
//!
//! ```text
//! users/                  root:root 0711          nobody lists the customers
//!   <user>.<tag>/         root:<gid> 0750         limits and caps; never delegated, no process
//!     session-<id>/       <uid>:<gid> 0700        made by root, caps written, then delegated
//!       login/            root 0755               the session's own processes start here
//!     <service>/          root:<gid> 0750         made by cgroupctl run/classify
//!       <leaf>/           <uid>:<gid> 0700        delegated like a session leaf
//! ```
//!
//! The user cgroup (`Tree::user_dir`, keyed name) is opened once (`CgroupDir`: O_NOFOLLOW, checked to be cgroup2) and every
//! write below it is an `*at()` call on that descriptor.
//!
//! A session's process is root's (sshd's monitor, su, cron) and sits in the session for its
//! whole life. It is put in `session-<id>/login/`, made by root before the leaf is handed
//! over, so that `session-<id>` itself holds no process: the customer can move its own
//! processes (the shell and what it starts) into cgroups of its own beside `login/` and enable
//! controllers for them (cgroup v2 allows processes only in leaves). `login/` is root's, but
//! neither it nor the process in it is out of the customer's reach: cgroup v2 lets the
//! customer move any process inside its leaf, root's opener too, and remove an emptied
//! `login/` (and make one of its own). So nothing relies on the opener staying there: a
//! session counts as open while its opener is anywhere in the leaf, and a caller that
//! outlived its close is recognised only in root's own `login/` (`crate::survivors`). The leaf
//! goes, `login/` with it, once it empties (the daemon, gc). Root writes `users/<user>` itself and
//! the root-owned files of a leaf (its caps) before handing the leaf over; it never creates,
//! removes or re-types anything inside a directory a customer owns, so nothing a customer does
//! in its own leaves can break, redirect or slow a later login. The one exception is `trim`,
//! which removes a dead leaf's empty subtree after taking the leaf back, as systemd trims a
//! stopped unit's delegated cgroup.
//!
//! When the user's primary group is shared with other users (not a user-private group), the
//! user cgroup cannot be opened to "the user's group" without opening it to them too: it is
//! then 0711 root:root, and its readable files lose their group and other bits. The user still
//! reaches its own leaves (0700, its own), which hold its processes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::delegation::{self, LEAF_MODE};
use super::dirfd::CgroupDir;
use super::{Tree, SESSION_PREFIX, USERS_DIR};
use crate::cgroup_files::{self, CgroupEvents};
use crate::error::{Error, Result};
use crate::limits::{Controller, LeafCaps, Limit};

/// `users/`: traversable, not listable.
pub const USERS_MODE: u32 = 0o711;
/// `users/<user>` with a user-private primary group: the user reads its own aggregate.
pub const USER_MODE: u32 = 0o750;
/// `users/<user>` when the primary group is shared: nobody but root lists or reads it.
pub const USER_MODE_SHARED_GROUP: u32 = 0o711;
/// `unconfined/`: root's sessions; their PIDs are nobody else's business.
pub const UNCONFINED_MODE: u32 = 0o700;

/// Where a session's own process goes inside its leaf (see the module comment).
pub const LOGIN_DIR: &str = "login";

/// The name of a user manager's leaf is this and the pid that opened it.
pub const MANAGER_PREFIX: &str = "manager-";

pub use super::stamp::STAMP_XATTR;

/// The mark on a session leaf (what `crate::sessions::SessionMark` encodes); root-only like
/// the stamp.
pub const SESSION_XATTR: &str = "trusted.pam_cgroup.session";

/// Written on a session leaf at its close: "<pid> <start>" of the process that closed it (a
/// `trusted.` attribute: only root writes or reads it). A caller that outlives its close finds
/// itself in that leaf at its next open, and only it matches both numbers: a customer's
/// process given the same PID later (it may fork until it gets it) has another start time.
pub const CLOSED_XATTR: &str = "trusted.pam_cgroup.closed";

/// How a user cgroup is opened to its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAccess {
    /// The primary group is the user's own (same name): `root:<gid> 0750`.
    Private { gid: u32 },
    /// The primary group may be shared by other users: `root:root 0711`, files root-only.
    Shared,
}

impl GroupAccess {
    /// A primary group named like the user and with no other member is a user-private group
    /// (the USERGROUPS convention of useradd and adduser). A group that also lists other
    /// members (www-data, or a colleague added to share web files: common in hosting) would
    /// show them the customer's sessions, PIDs, usage and faults: shared. `group` is the
    /// primary group's name and listed members, `None` when NSS does not know it (shared).
    /// The lookup itself is `crate::nss::UserInfo::group_access`.
    pub fn decide(user: &str, gid: u32, group: Option<(&str, &[String])>) -> GroupAccess {
        match group {
            Some((name, members)) if is_private_group(name, members, user) => {
                GroupAccess::Private { gid }
            }
            _ => GroupAccess::Shared,
        }
    }

    fn owner_gid(self) -> u32 {
        match self {
            GroupAccess::Private { gid } => gid,
            GroupAccess::Shared => 0,
        }
    }

    fn mode(self) -> u32 {
        match self {
            GroupAccess::Private { .. } => USER_MODE,
            GroupAccess::Shared => USER_MODE_SHARED_GROUP,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            GroupAccess::Private { .. } => "private",
            GroupAccess::Shared => "shared",
        }
    }
}

/// A group of this name and these listed members is the private group of `user`.
pub fn is_private_group(name: &str, members: &[String], user: &str) -> bool {
    name == user && members.iter().all(|m| m == user)
}

/// What securing a user cgroup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Secured {
    /// It was owned by the user (a 0.1.0 tree) and was taken back.
    pub taken_back: bool,
    /// Owner or mode were changed.
    pub changed: bool,
}

/// Root's handle on `users/<user>`.
#[derive(Debug)]
pub struct UserCgroup {
    dir: CgroupDir,
    name: String,
    created: bool,
}

fn chmod_users_dir(users: &CgroupDir) -> Result<()> {
    let st = users.stat()?;
    if st.st_uid != 0 || st.st_gid != 0 {
        users.chown_self(0, 0)?;
    }
    if st.st_mode & 0o7777 != USERS_MODE {
        users.chmod_self(USERS_MODE)?;
    }
    Ok(())
}

impl UserCgroup {
    /// Opens the user cgroup, creating it (and the tree's base) when missing. The name must
    /// have been validated.
    pub fn open_or_create(tree: &Tree, user: &str) -> Result<UserCgroup> {
        let path = tree.user_dir(user)?;
        // A login's common case: the user cgroup exists (one open, one statfs).
        match CgroupDir::open(&path) {
            Ok(dir) => {
                return Ok(UserCgroup {
                    dir,
                    name: user.to_string(),
                    created: false,
                })
            }
            Err(e) if e.errno() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let Some(dir_name) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(Error::Other(format!(
                "{}: no directory name",
                path.display()
            )));
        };
        let users = match CgroupDir::open(&tree.users_dir()) {
            Ok(d) => d,
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                tree.ensure_base()?;
                CgroupDir::open(&tree.users_dir())?
            }
            Err(e) => return Err(e),
        };
        // Made root-only first: a fresh user cgroup is never readable by others, not even
        // for the instant before `secure`.
        let created = users.make_child(dir_name, 0o700)?;
        if created {
            // A new user cgroup is the moment a 0.1.0 `users/` (0755) is put right as well.
            chmod_users_dir(&users)?;
        }
        Ok(UserCgroup {
            dir: users.open_child(dir_name)?,
            name: user.to_string(),
            created,
        })
    }

    /// Opens the user cgroup if it exists.
    pub fn open(tree: &Tree, user: &str) -> Result<Option<UserCgroup>> {
        Self::open_at(&tree.user_dir(user)?, user)
    }

    /// Opens `users/<user>` of a version before the keyed names, if it is still there.
    pub fn open_legacy(tree: &Tree, user: &str) -> Result<Option<UserCgroup>> {
        Self::open_at(&tree.legacy_user_dir(user)?, user)
    }

    /// Every user cgroup of `user` that exists: its own, then a legacy one still holding
    /// sessions from before an upgrade. What a lever acts on: an upgraded customer's old
    /// sessions are frozen, killed and shown with its new ones.
    pub fn open_all(tree: &Tree, user: &str) -> Result<Vec<UserCgroup>> {
        Ok([Self::open(tree, user)?, Self::open_legacy(tree, user)?]
            .into_iter()
            .flatten()
            .collect())
    }

    fn open_at(path: &Path, user: &str) -> Result<Option<UserCgroup>> {
        match CgroupDir::open(path) {
            Ok(dir) => Ok(Some(UserCgroup {
                dir,
                name: user.to_string(),
                created: false,
            })),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens the user cgroup at `path` (one a session record or a listing names), of `user`,
    /// if it exists.
    pub fn open_path(path: &Path, user: &str) -> Result<Option<UserCgroup>> {
        Self::open_at(path, user)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The user's name (not the directory's: that carries the tag).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This call made the directory.
    pub fn created(&self) -> bool {
        self.created
    }

    pub fn dir(&self) -> &CgroupDir {
        &self.dir
    }

    /// Owner root, the group and mode of `access`; a 0.1.0 user cgroup (owned by the user,
    /// its delegated files too) is taken back. With a shared group, the readable files lose
    /// their group and other bits.
    pub fn secure(&self, tree: &Tree, access: GroupAccess) -> Result<Secured> {
        let st = self.dir.stat()?;
        let want_gid = access.owner_gid();
        let mut out = Secured::default();
        if st.st_uid != 0 {
            delegation::take_back(&self.dir, want_gid, access.mode())?;
            out = Secured {
                taken_back: true,
                changed: true,
            };
            // users/ of a 0.1.0 tree was 0755.
            chmod_users_dir(&CgroupDir::open(&tree.users_dir())?)?;
        } else {
            if st.st_gid != want_gid {
                self.dir.chown_self(0, want_gid)?;
                out.changed = true;
            }
            if st.st_mode & 0o7777 != access.mode() {
                self.dir.chmod_self(access.mode())?;
                out.changed = true;
            }
        }
        if access == GroupAccess::Shared {
            for (name, is_dir) in self.dir.entries()? {
                if !is_dir {
                    self.dir.restrict_entry(&name)?;
                }
            }
        }
        Ok(out)
    }

    /// Processes sitting in the user cgroup itself (only a 0.1.0 customer could put them
    /// there; root never does).
    pub fn holds_processes(&self) -> Result<bool> {
        Ok(!self.dir.read(cgroup_files::PROCS)?.trim().is_empty())
    }

    pub fn read(&self, file: &str) -> Result<String> {
        self.dir.read(file)
    }

    pub fn has(&self, file: &str) -> bool {
        self.dir.has(file)
    }

    /// Writes one control file of the user cgroup.
    pub fn write(&self, file: &str, data: &str) -> Result<()> {
        self.dir.write(file, data)
    }

    /// Controllers enabled for the user cgroup (its cgroup.controllers).
    pub fn available_controllers(&self) -> Result<Vec<Controller>> {
        super::controllers::available_in(&self.dir)
    }

    /// Enables `wanted` for the user's leaves (its cgroup.subtree_control), those its parent
    /// gives it. Not while it holds processes (a 0.1.0 customer's): enabling would fail
    /// (domain controllers) or make it a thread root (threaded ones); its own limits still
    /// hold for everything below. Returns what could not be enabled and why.
    pub fn enable_for_leaves(&self, wanted: &[Controller]) -> Result<Vec<(Controller, String)>> {
        let missing = super::controllers::missing_in(&self.dir, wanted)?;
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        if self.holds_processes()? {
            return Ok(missing
                .into_iter()
                .map(|c| {
                    (
                        c,
                        "it holds processes (left by a 0.1.0 session)".to_string(),
                    )
                })
                .collect());
        }
        super::controllers::enable_in(&self.dir, &missing, "not offered by users/")
    }

    /// The user cgroup's own caps. Its count of descendants is not capped: a count there could
    /// be used up by the customer's own sub-cgroups and starve the next login. Each leaf has
    /// its own cap instead (`new_leaf`), and leaves are made by root alone, one per session
    /// or service start, and trimmed once dead: the total stays bounded. The depth is the
    /// leaf's depth plus the two levels root makes (`<service>/<leaf>`).
    pub fn write_caps(&self, caps: LeafCaps) -> Result<()> {
        self.dir.write(cgroup_files::MAX_DESCENDANTS, "max")?;
        self.dir.write(
            cgroup_files::MAX_DEPTH,
            &(caps.max_depth.saturating_add(2)).to_string(),
        )
    }

    /// Writes limits, skipping those whose controller is not enabled here. Returns the
    /// limits skipped for that reason.
    pub fn write_limits<'a>(
        &self,
        limits: impl IntoIterator<Item = &'a Limit>,
        available: &[Controller],
    ) -> Result<Vec<&'a Limit>> {
        let mut skipped = Vec::new();
        for limit in limits {
            if !available.contains(&limit.key.controller()) {
                skipped.push(limit);
                continue;
            }
            for line in &limit.lines {
                self.dir.write(limit.key.file_name(), line)?;
            }
        }
        Ok(skipped)
    }

    /// The stamp, when there is one that reads.
    pub fn stamp(&self) -> Option<super::stamp::Stamp> {
        super::stamp::Stamp::parse(&self.dir.get_xattr(STAMP_XATTR)?)
    }

    /// Writes the stamp. A failure only costs the next login the full path: not an error.
    pub fn set_stamp(&self, stamp: &super::stamp::Stamp) -> bool {
        self.dir.set_xattr(STAMP_XATTR, &stamp.to_string()).is_ok()
    }

    /// Clears the stamp: the next login applies everything again.
    pub fn clear_stamp(&self) -> Result<()> {
        self.dir.remove_xattr(STAMP_XATTR)
    }

    /// Makes a fresh session leaf `session-<pid>` (with a random suffix when that name is
    /// taken), root-owned and closed, with its caps written and its `login/`. The caller moves
    /// the process in and then delegates it (`Leaf::delegate`).
    pub fn new_session_leaf(&self, pid: u32, caps: LeafCaps) -> Result<Leaf> {
        self.new_leaf_with_login(&format!("{SESSION_PREFIX}{pid}"), caps)
    }

    /// A session leaf's making: `<base>` (or `<base>-<random>`), its caps, its `login/`.
    pub(super) fn new_leaf_with_login(&self, base: &str, caps: LeafCaps) -> Result<Leaf> {
        let mut leaf = new_leaf_in(&self.dir, base, caps)?;
        let made = leaf
            .dir
            .make_child(LOGIN_DIR, 0o755)
            .and_then(|_| leaf.dir.open_child(LOGIN_DIR));
        match made {
            Ok(login) => {
                leaf.entry = Some(login);
                Ok(leaf)
            }
            Err(e) => {
                leaf.discard(&self.dir);
                Err(e)
            }
        }
    }

    /// Makes a fresh leaf `manager-<pid>` for the user's service manager (systemd --user),
    /// root-owned and closed, with its caps written. Unlike a session leaf it has no `login/`:
    /// the manager's process enters the leaf itself, which is then delegated whole, because
    /// systemd --user takes the cgroup it starts in as the root of its own tree (it moves
    /// itself into `init.scope` there and makes a child per unit).
    pub fn new_manager_leaf(&self, pid: u32, caps: LeafCaps) -> Result<Leaf> {
        new_leaf_in(&self.dir, &format!("{MANAGER_PREFIX}{pid}"), caps)
    }

    /// `<service>/` for `cgroupctl run`/`classify`, root-owned like the user cgroup.
    pub fn service_dir(&self, service: &str, access: GroupAccess) -> Result<CgroupDir> {
        let created = self.dir.make_child(service, 0o700)?;
        let dir = self.dir.open_child(service)?;
        if created || dir.stat()?.st_uid != 0 {
            // A service dir a 0.1.0 customer made by that name is taken back too.
            delegation::take_back(&dir, access.owner_gid(), access.mode())?;
        }
        Ok(dir)
    }
}

/// What an operator's lever (`cgroupctl kill/freeze/thaw`) acts on inside a user's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The whole user cgroup: every session and service.
    User,
    /// One session leaf, by its id (`session-<id>`, or the id alone).
    Session(&'a str),
    /// One service (`cgroupctl run/classify`'s `<service>/`).
    Service(&'a str),
}

impl Target<'_> {
    /// The child of the user cgroup it names (validated), `None` for the user cgroup itself.
    pub fn child_name(&self) -> Result<Option<String>> {
        match self {
            Target::User => Ok(None),
            Target::Session(id) => {
                let id = id.strip_prefix(SESSION_PREFIX).unwrap_or(id);
                crate::names::validate_service_name(id)?;
                Ok(Some(format!("{SESSION_PREFIX}{id}")))
            }
            Target::Service(name) => {
                crate::names::validate_service_name(name)?;
                if name.starts_with(SESSION_PREFIX) {
                    return Err(Error::Other(format!(
                        "{name}: a session, not a service (use --session)"
                    )));
                }
                Ok(Some(name.to_string()))
            }
        }
    }
}

/// A target's directory: the user cgroup's own descriptor, or a child opened through it.
pub enum TargetDir<'a> {
    User(&'a CgroupDir),
    Child(CgroupDir),
}

impl TargetDir<'_> {
    /// `cgroup.kill`: SIGKILL to every process of the target, atomically (no pid race).
    /// Root's file on the user cgroup; on a leaf not among the delegated files either. Written
    /// through the descriptor the lever opened, so a leaf reaped and made again by the same
    /// name meanwhile is never the one acted on.
    pub fn write_kill(&self) -> Result<()> {
        self.write(cgroup_files::KILL, "1")
    }

    /// `cgroup.freeze`: 1 freezes every process of the target, 0 thaws it.
    pub fn write_freeze(&self, frozen: bool) -> Result<()> {
        self.write(cgroup_files::FREEZE, if frozen { "1" } else { "0" })
    }
}

impl std::ops::Deref for TargetDir<'_> {
    type Target = CgroupDir;
    fn deref(&self) -> &CgroupDir {
        match self {
            TargetDir::User(d) => d,
            TargetDir::Child(d) => d,
        }
    }
}

impl UserCgroup {
    /// Opens what a lever acts on (through this descriptor; a missing child is an error that
    /// names it).
    pub fn open_target(&self, target: Target<'_>) -> Result<TargetDir<'_>> {
        match target.child_name()? {
            None => Ok(TargetDir::User(&self.dir)),
            Some(name) => Ok(TargetDir::Child(self.dir.open_child(&name)?)),
        }
    }

    /// `cgroup.freeze`: 1 freezes every process of the target, 0 thaws it.
    pub fn write_freeze(&self, target: Target<'_>, frozen: bool) -> Result<()> {
        self.open_target(target)?.write_freeze(frozen)
    }
}

/// Closes the session leaf at `session`: notes which process closed it (`CLOSED_XATTR`, when
/// its start time is known; best effort: without it such a caller is only not recognised),
/// takes its delegated files back (`delegation::end_of_session`: a caller left in the leaf is
/// out of its customer's reach), then removes its mark (the session no longer counts as
/// open). One open of the leaf for all three. The leaf sits in the root-owned user cgroup:
/// the customer can neither remove nor replace it (cgroup2 has no rename), so its path still
/// names the leaf open made. A leaf emptied and reaped already has nothing to note, take back
/// or unmark.
pub fn close_leaf(session: &Path, closer: Option<(u32, u64)>) -> Result<()> {
    let leaf = match CgroupDir::open(session) {
        Ok(leaf) => leaf,
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if let Some((pid, start)) = closer {
        let _ = leaf.set_xattr(CLOSED_XATTR, &format!("{pid} {start}"));
    }
    let taken_back = match delegation::end_of_session(&leaf) {
        // Reaped meanwhile (a closer outside its leaf, as Samba's other handle is).
        Err(e) if e.errno() == Some(libc::ENOENT) && !leaf_exists(&leaf) => return Ok(()),
        other => other,
    };
    // Unmarked whatever the take-back did; its failure fails the close (logged) all the same.
    let unmarked = leaf.remove_xattr(SESSION_XATTR);
    taken_back.and(unmarked)
}

/// Is the cgroup `dir` was opened on still there (not removed since)?
fn leaf_exists(dir: &CgroupDir) -> bool {
    dir.has(cgroup_files::PROCS)
}

/// The process that closed the session leaf at `session` ("pid start"), if one did.
pub fn closed_by(session: &Path) -> Option<(u32, u64)> {
    let text = CgroupDir::open(session).ok()?.get_xattr(CLOSED_XATTR)?;
    let (pid, start) = text.trim().split_once(' ')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Removes the child cgroup `name` of `parent` (a service dir, a legacy user cgroup) once it
/// has no child cgroup left; the kernel refuses the rmdir of one that still holds processes.
/// `Ok(true)`: removed now.
pub fn remove_if_childless(
    parent: &CgroupDir,
    name: &(impl AsRef<OsStr> + ?Sized),
) -> Result<bool> {
    let child = match parent.open_child(name) {
        Ok(d) => d,
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(false),
        Err(e) => return Err(e),
    };
    if child.entries()?.iter().any(|(_, is_dir)| *is_dir) {
        return Ok(false);
    }
    drop(child);
    Ok(parent.remove_child(name).is_ok())
}

/// Makes a fresh leaf `<base>` (or `<base>-<random>` when taken) in `parent`, root-owned and
/// 0700, with its caps written.
pub fn new_leaf_in(parent: &CgroupDir, base: &str, caps: LeafCaps) -> Result<Leaf> {
    let dir = new_child(parent, base, 0o700)?;
    let leaf = Leaf { dir, entry: None };
    leaf.write_caps(caps)?;
    Ok(leaf)
}

/// Every leaf of the tree is made here: a new child `<base>`, or `<base>-<random>` when that
/// name is taken (a leaf of an earlier process with the same pid, not reaped yet).
pub(super) fn new_child(parent: &CgroupDir, base: &str, mode: u32) -> Result<CgroupDir> {
    let mut last = Errno::EEXIST;
    for attempt in 0..8u32 {
        let name = if attempt == 0 {
            base.to_string()
        } else {
            format!("{base}-{}", super::random_suffix())
        };
        match parent.make_new_child(&name, mode) {
            Ok(()) => return parent.open_child(&name),
            Err(Errno::EEXIST) => last = Errno::EEXIST,
            Err(e) => return Err(Error::io("mkdir", parent.path().join(name), e)),
        }
    }
    Err(Error::io(
        "mkdir",
        parent.path().join(format!("{base}-*")),
        last,
    ))
}

/// A leaf root made: root-owned until `delegate`.
#[derive(Debug)]
pub struct Leaf {
    dir: CgroupDir,
    /// Where the process enters: `login/` of a session leaf, else the leaf itself.
    entry: Option<CgroupDir>,
}

impl Leaf {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The cgroup the process enters (what a session's record keeps).
    pub fn entry_path(&self) -> PathBuf {
        self.entry
            .as_ref()
            .unwrap_or(&self.dir)
            .path()
            .to_path_buf()
    }

    pub(super) fn dir(&self) -> &CgroupDir {
        &self.dir
    }

    pub fn into_path(self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// A session leaf made ahead and just claimed (`tree::spare`): its process enters `login`.
    pub(super) fn claimed(dir: CgroupDir, login: CgroupDir) -> Leaf {
        Leaf {
            dir,
            entry: Some(login),
        }
    }

    /// The leaf's own caps: what the customer may build inside it. Root-owned files, never
    /// delegated.
    pub(super) fn write_caps(&self, caps: LeafCaps) -> Result<()> {
        self.dir.write(
            cgroup_files::MAX_DESCENDANTS,
            &caps.max_descendants.to_string(),
        )?;
        self.dir
            .write(cgroup_files::MAX_DEPTH, &caps.max_depth.to_string())
    }

    /// Moves `pid` in. When the user cgroup is a threaded domain (a 0.1.0 customer made a
    /// threaded child there) a new domain leaf is invalid (EOPNOTSUPP): the leaf joins the
    /// threaded subtree instead, and the user cgroup's limits still hold for it.
    pub fn enter(&self, parent: &CgroupDir, pid: u32) -> Result<()> {
        let data = format!("{pid}\n");
        let target = self.entry.as_ref().unwrap_or(&self.dir);
        match target.write(cgroup_files::PROCS, &data) {
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {
                let parent_type = parent.read(cgroup_files::TYPE).unwrap_or_default();
                if parent_type.trim() != "domain threaded" {
                    return Err(e);
                }
                self.dir.write(cgroup_files::TYPE, "threaded")?;
                if let Some(login) = &self.entry {
                    login.write(cgroup_files::TYPE, "threaded")?;
                }
                target.write(cgroup_files::PROCS, &data)
            }
            other => other,
        }
    }

    /// Writes the session's mark on the leaf (root-only; its text is
    /// `crate::sessions::SessionMark::encode`).
    pub fn mark(&self, encoded: &str) -> Result<()> {
        self.dir.set_xattr(SESSION_XATTR, encoded)
    }

    /// Hands the leaf over to the user. `user_cgroup`: the user cgroup it was made in, where
    /// the kernel's list of delegated files is kept for the next login (`delegation::recall`).
    pub fn delegate(&self, user_cgroup: &UserCgroup, uid: u32, gid: u32) -> Result<()> {
        delegation::recall(user_cgroup.dir());
        delegation::delegate(&self.dir, uid, gid)
    }

    /// Removes the leaf again (after a failed `enter`): nothing is left behind.
    pub fn discard(self, parent: &CgroupDir) {
        if self.entry.is_some() {
            let _ = self.dir.remove_child(LOGIN_DIR);
        }
        if let Some(name) = self.dir.path().file_name().and_then(|n| n.to_str()) {
            let _ = parent.remove_child(name);
        }
    }
}

/// What `trim` did to a dead leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trimmed {
    Removed,
    /// Gone already.
    Gone,
    /// Still populated, or the customer kept adding to it through a descriptor it held:
    /// left for a later pass.
    Kept,
}

/// How many passes `trim` makes over a dead leaf's subtree before leaving it for later.
const TRIM_PASSES: u32 = 3;

/// Removes the dead (unpopulated) leaf `name` of `parent` and the empty cgroups the customer
/// left in it; `before_remove` is called with each cgroup right before its rmdir (the fault
/// counts it alone holds are carried there).
///
/// The common case first: a session leaf in which the customer made nothing holds only
/// root's `login/`, and goes with two rmdirs (`login/`, then the leaf). Otherwise the leaf's
/// rmdir fails (EBUSY), and the leaf is taken back (root:root 0700), so the customer cannot
/// enter it by name any more; its empty sub-cgroups are then removed bottom-up through
/// descriptors. The work is bounded by the leaf's own cap on descendants. The first rmdir of
/// `login/` is safe whatever the customer did in its leaf: the customer cannot rename root's
/// `login/` (cgroup2 refuses) nor make anything in it (root's, 0755); it may have removed it
/// once empty and made a `login/` of its own, but an rmdir removes only an empty cgroup, and
/// anything the customer made fails the leaf's rmdir into the walk.
pub fn trim(
    parent: &CgroupDir,
    name: &str,
    before_remove: &mut dyn FnMut(&Path),
) -> Result<Trimmed> {
    if let Ok(leaf) = parent.open_child(name) {
        if leaf.has(LOGIN_DIR) {
            before_remove(&leaf.path().join(LOGIN_DIR));
            // Busy or gone: the walk below sees to it.
            let _ = leaf.remove_child(LOGIN_DIR);
        }
    }
    before_remove(&parent.path().join(name));
    match parent.remove_child(name) {
        Ok(()) => return Ok(Trimmed::Removed),
        Err(Errno::ENOENT) => return Ok(Trimmed::Gone),
        Err(Errno::EBUSY) | Err(Errno::ENOTEMPTY) => {}
        Err(e) => return Err(Error::io("rmdir", parent.path().join(name), e)),
    }
    let leaf = match parent.open_child(name) {
        Ok(d) => d,
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(Trimmed::Gone),
        Err(e) => return Err(e),
    };
    if populated(&leaf)? {
        return Ok(Trimmed::Kept);
    }
    delegation::take_back(&leaf, 0, LEAF_MODE)?;
    for _ in 0..TRIM_PASSES {
        remove_children(&leaf, 0, before_remove)?;
        before_remove(leaf.path());
        match parent.remove_child(name) {
            Ok(()) => return Ok(Trimmed::Removed),
            Err(Errno::ENOENT) => return Ok(Trimmed::Gone),
            Err(Errno::EBUSY) | Err(Errno::ENOTEMPTY) => {
                if populated(&leaf)? {
                    return Ok(Trimmed::Kept);
                }
            }
            Err(e) => return Err(Error::io("rmdir", leaf.path(), e)),
        }
    }
    Ok(Trimmed::Kept)
}

/// Bottom-up removal of the child cgroups of `dir` (best effort: a child that is busy stays).
fn remove_children(
    dir: &CgroupDir,
    depth: u32,
    before_remove: &mut dyn FnMut(&Path),
) -> Result<()> {
    // cgroup.max.depth is at most 64 levels (config bounds): deeper is not a cgroup tree.
    if depth > 70 {
        return Ok(());
    }
    for (child, is_dir) in dir.entries()? {
        if !is_dir {
            continue;
        }
        if let Ok(sub) = dir.open_child(&child) {
            remove_children(&sub, depth + 1, before_remove)?;
        }
        before_remove(&dir.path().join(&child));
        let _ = dir.remove_child(&child);
    }
    Ok(())
}

/// What `remove_user_cgroup` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UserRemoval {
    /// users/<user> existed.
    pub existed: bool,
    /// Processes found in it before the first kill.
    pub processes: u64,
    /// Times cgroup.kill was written (more than one: processes raced in between).
    pub kills: u32,
    /// Cgroups removed, users/<user> included.
    pub cgroups: u64,
}

/// How many rounds of kill-and-remove `remove_user_cgroup` makes before it gives up.
const REMOVE_ROUNDS: u32 = 5;

/// Removes the user's cgroups whole (`cgroupctl remove`, the end of a customer): kills every
/// process in it through its cgroup.kill (atomic against forks: the kernel refuses a fork in a
/// cgroup being killed), waits for the kernel to say it is empty, takes every cgroup back
/// from the customer (so nothing can be made inside by name meanwhile) and removes them
/// bottom-up through descriptors, names as bytes (a customer's sub-cgroup need not be UTF-8),
/// threaded ones too. The one place root removes what a customer made: the customer is gone.
/// A process that slipped in between (moved in by another root process) costs one more
/// round; after `REMOVE_ROUNDS` the error names what is left. The name must be validated.
pub fn remove_user_cgroup(
    tree: &Tree,
    user: &str,
    wait: std::time::Duration,
) -> Result<UserRemoval> {
    let mut out = UserRemoval::default();
    let Some(users) = open_users(tree)? else {
        return Ok(out);
    };
    // Its own `users/<user>.<tag>`, and a legacy `users/<user>` an upgrade left.
    for path in [tree.user_dir(user)?, tree.legacy_user_dir(user)?] {
        if let Some(name) = path.file_name() {
            remove_named(&users, name, wait, &mut out)?;
        }
    }
    Ok(out)
}

/// `remove_user_cgroup` of one child of `users/`.
fn remove_named(
    users: &CgroupDir,
    name: &std::ffi::OsStr,
    wait: std::time::Duration,
    out: &mut UserRemoval,
) -> Result<()> {
    let dir = match users.open_child(name) {
        Ok(d) => d,
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    out.existed = true;
    out.processes += crate::tree::processes::subtree_pids(&dir).len() as u64;
    let mut last = Errno::EBUSY;
    for _ in 0..REMOVE_ROUNDS {
        if populated(&dir)? {
            // A frozen subtree is killed too (SIGKILL reaches frozen tasks); thawed first so
            // that the exit does not wait on the freezer of an older kernel.
            let _ = dir.write(cgroup_files::FREEZE, "0");
            dir.write(cgroup_files::KILL, "1")?;
            out.kills += 1;
            let deadline = std::time::Instant::now() + wait;
            while populated(&dir)? && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        if dir.stat()?.st_uid != 0 {
            // A 0.1.0 user cgroup, the customer's own: taken back first.
            delegation::take_back(&dir, 0, LEAF_MODE)?;
        }
        out.cgroups += remove_subtree(&dir, 0)?;
        match users.remove_child(name) {
            Ok(()) => {
                out.cgroups += 1;
                return Ok(());
            }
            Err(Errno::ENOENT) => return Ok(()),
            Err(e @ (Errno::EBUSY | Errno::ENOTEMPTY)) => last = e,
            Err(e) => return Err(Error::io("rmdir", dir.path(), e)),
        }
    }
    Err(Error::io(
        "rmdir",
        dir.path(),
        std::io::Error::other(format!(
            "{} after {REMOVE_ROUNDS} rounds of cgroup.kill ({} processes still there)",
            std::io::Error::from(last),
            crate::tree::processes::subtree_pids(&dir).len()
        )),
    ))
}

/// Takes back and removes every child cgroup of `dir`, bottom-up; returns how many went.
/// Busy ones stay (the caller's next round kills again). Depth is bounded like `trim`'s.
fn remove_subtree(dir: &CgroupDir, depth: u32) -> Result<u64> {
    if depth > 70 {
        return Ok(0);
    }
    let mut removed = 0;
    for (child, is_dir) in dir.entries()? {
        if !is_dir {
            continue;
        }
        match dir.open_child(&child) {
            Ok(sub) => {
                if sub.stat()?.st_uid != 0 {
                    match delegation::take_back(&sub, 0, LEAF_MODE) {
                        Ok(()) => {}
                        // Removed meanwhile: the daemon reaps a leaf the moment the kill
                        // empties it, so its files can go while they are being taken back.
                        Err(e) if e.errno() == Some(libc::ENOENT) => continue,
                        Err(e) => return Err(e),
                    }
                }
                removed += remove_subtree(&sub, depth + 1)?;
            }
            Err(e) if e.errno() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        }
        if dir.remove_child(&child).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// `populated` of a cgroup's cgroup.events (its whole subtree).
pub fn populated(dir: &CgroupDir) -> Result<bool> {
    let events = CgroupEvents::parse(&dir.read(cgroup_files::EVENTS)?);
    Ok(events.populated.unwrap_or(false))
}

/// `users/` opened, for walks over every user cgroup.
pub fn open_users(tree: &Tree) -> Result<Option<CgroupDir>> {
    match CgroupDir::open(&tree.root.join(USERS_DIR)) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}
