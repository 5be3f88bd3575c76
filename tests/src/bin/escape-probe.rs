//! escape-probe: becomes an unprivileged user inside a cgroup and tries what a customer trying
//! to leave its fence would try, reporting the errno of each attempt as JSON.
//!
//! ```text
//! escape-probe --cgroup DIR --uid U --gid G  OP...
//!   write:PATH=DATA   mkdir:PATH   rmdir:PATH   rename:FROM=TO   symlink:TARGET=PATH
//!   chmod:PATH   chown:PATH   setxattr:PATH=NAME   mknod:PATH   join:DIR (own pid -> DIR/cgroup.procs)
//!   read:PATH   list:DIR
//!   bpfget:PIN=rw|ro|wo   BPF_OBJ_GET of a pinned map, program or link with those file flags
//!   mkdirs:BASE=N (N nested levels) mkwide:BASE=N (N siblings); the first failure is reported
//!   movepid:DIR=PID (another process -> DIR/cgroup.procs)
//!   race:DIR=SECS     for SECS seconds (or until SIGTERM; the queued events are still handled), an inotify loop on DIR: every new directory is hit
//!                     at once (rmdir, then `threaded` into its cgroup.type, then a child
//!                     made in it); the detail counts what was seen and what succeeded
//! ```
//! Root joins the cgroup first, then drops to uid/gid with no supplementary groups: the same
//! state a confined login shell is in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Serialize)]
struct Attempt {
    op: String,
    errno: i32,
    detail: String,
}

fn errno_of(r: std::io::Result<()>) -> (i32, String) {
    match r {
        Ok(()) => (0, String::new()),
        Err(e) => (e.raw_os_error().unwrap_or(-1), e.to_string()),
    }
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// BPF_OBJ_GET as the raw syscall: the probe asks for exactly one object with exactly the
/// file flags given, which libbpf-rs's typed openers do not let a caller choose.
fn bpf_obj_get(pin: &Path, mode: &str) -> std::io::Result<()> {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_F_RDONLY: u32 = 1 << 3;
    const BPF_F_WRONLY: u32 = 1 << 4;
    // union bpf_attr, the BPF_OBJ_* part.
    #[repr(C)]
    struct ObjAttr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        pad: u32,
    }
    let path = cstr(pin);
    let attr = ObjAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: match mode {
            "ro" => BPF_F_RDONLY,
            "wo" => BPF_F_WRONLY,
            _ => 0,
        },
        path_fd: 0,
        pad: 0,
    };
    // SAFETY: attr outlives the call and its size is passed; the path is NUL-terminated.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &attr as *const ObjAttr,
            std::mem::size_of::<ObjAttr>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

fn write_file(path: &Path, data: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(data.as_bytes())
}

fn run(op: &str) -> (i32, String) {
    let (verb, arg) = op.split_once(':').unwrap_or((op, ""));
    let pair = || {
        let (a, b) = arg.split_once('=').unwrap_or((arg, ""));
        (PathBuf::from(a), b.to_string())
    };
    match verb {
        "write" => {
            let (p, d) = pair();
            errno_of(write_file(&p, &d))
        }
        "join" => errno_of(write_file(
            &Path::new(arg).join("cgroup.procs"),
            &format!("{}\n", std::process::id()),
        )),
        "movepid" => {
            let (dir, pid) = pair();
            errno_of(write_file(&dir.join("cgroup.procs"), &format!("{pid}\n")))
        }
        "mkdir" => errno_of(std::fs::create_dir(arg)),
        "read" => errno_of(std::fs::read(arg).map(drop)),
        "list" => errno_of(std::fs::read_dir(arg).map(drop)),
        "bpfget" => {
            let (p, mode) = pair();
            errno_of(bpf_obj_get(&p, &mode))
        }
        "mkdirs" | "mkwide" => {
            // mkdirs: N nested levels below BASE; mkwide: N siblings in BASE.
            let (base, n) = pair();
            let n: usize = n.parse().unwrap();
            let mut dir = base.clone();
            for i in 0..n {
                let next = if verb == "mkdirs" {
                    dir.join(format!("d{i}"))
                } else {
                    base.join(format!("s{i}"))
                };
                if let Err(e) = std::fs::create_dir(&next) {
                    return (e.raw_os_error().unwrap_or(-1), format!("after {i}: {e}"));
                }
                dir = next;
            }
            (0, format!("{n} made"))
        }
        "rmdir" => errno_of(std::fs::remove_dir(arg)),
        "rename" => {
            let (a, b) = pair();
            errno_of(std::fs::rename(a, b))
        }
        "symlink" => {
            let (target, link) = arg.split_once('=').unwrap();
            errno_of(std::os::unix::fs::symlink(target, link))
        }
        "mknod" => errno_of(std::fs::write(arg, b"x")),
        "chmod" => {
            use std::os::unix::fs::PermissionsExt;
            errno_of(std::fs::set_permissions(
                arg,
                std::fs::Permissions::from_mode(0o666),
            ))
        }
        "chown" => errno_of(std::os::unix::fs::chown(
            arg,
            Some(nix::unistd::getuid().as_raw()),
            None,
        )),
        "setxattr" => {
            let (p, name) = pair();
            let name = CString::new(name).unwrap();
            let path = cstr(&p);
            // SAFETY: NUL-terminated path and name, a 1-byte value.
            let rc =
                unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), b"x".as_ptr().cast(), 1, 0) };
            if rc == 0 {
                (0, String::new())
            } else {
                let e = std::io::Error::last_os_error();
                (e.raw_os_error().unwrap_or(-1), e.to_string())
            }
        }
        "race" => {
            let (dir, secs) = pair();
            race(&dir, secs.parse().unwrap())
        }
        other => panic!("unknown op {other}"),
    }
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The inotify racer of the review (issue 11, attack 1): a fresh session leaf is attacked
/// the instant it appears, before the login's PID is written into it.
fn race(dir: &Path, secs: u64) -> (i32, String) {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let inotify = match Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK) {
        Ok(i) => i,
        Err(e) => return (e as i32, format!("inotify_init: {e}")),
    };
    if let Err(e) = inotify.add_watch(dir, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_ONLYDIR) {
        return (
            e as i32,
            format!("inotify_add_watch {}: {e}", dir.display()),
        );
    }
    extern "C" fn on_term(_: libc::c_int) {
        STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let (mut seen, mut removed, mut retyped, mut filled) = (0, 0, 0, 0);
    loop {
        let stopping = std::time::Instant::now() >= deadline
            || STOP.load(std::sync::atomic::Ordering::Relaxed);
        let events = match inotify.read_events() {
            Ok(e) => e,
            // Asked to stop: what is still queued has been counted, so stop now.
            Err(nix::errno::Errno::EAGAIN) if stopping => break,
            Err(nix::errno::Errno::EAGAIN) => {
                std::thread::sleep(std::time::Duration::from_micros(200));
                continue;
            }
            Err(e) => return (e as i32, format!("read: {e}")),
        };
        for ev in events {
            let Some(name) = ev.name else { continue };
            let leaf = dir.join(name);
            seen += 1;
            if std::fs::remove_dir(&leaf).is_ok() {
                removed += 1;
                continue;
            }
            if write_file(&leaf.join("cgroup.type"), "threaded").is_ok() {
                retyped += 1;
            }
            if std::fs::create_dir(leaf.join("racer")).is_ok() {
                filled += 1;
            }
        }
    }
    (
        0,
        format!("seen={seen} removed={removed} retyped={retyped} filled={filled}"),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cgroup = None;
    let (mut uid, mut gid) = (None, None);
    let mut ops = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cgroup" => cgroup = it.next().cloned(),
            "--uid" => uid = it.next().map(|v| v.parse::<u32>().unwrap()),
            "--gid" => gid = it.next().map(|v| v.parse::<u32>().unwrap()),
            op => ops.push(op.to_string()),
        }
    }
    if let Some(dir) = cgroup {
        write_file(
            &Path::new(&dir).join("cgroup.procs"),
            &format!("{}\n", std::process::id()),
        )
        .unwrap_or_else(|e| panic!("join {dir}: {e}"));
    }
    nix::unistd::setgroups(&[]).unwrap();
    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid.expect("--gid"))).unwrap();
    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid.expect("--uid"))).unwrap();
    let results: Vec<Attempt> = ops
        .iter()
        .map(|op| {
            let (errno, detail) = run(op);
            Attempt {
                op: op.clone(),
                errno,
                detail,
            }
        })
        .collect();
    println!("{}", serde_json::to_string(&results).unwrap());
}
