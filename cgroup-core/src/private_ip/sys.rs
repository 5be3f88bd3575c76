//! The few bpf(2) commands the PAM side needs, called directly through libc so that
//! pam_cgroup.so never links libbpf: BPF_PROG_QUERY on a cgroup directory, BPF_PROG_GET_FD_BY_ID
//! and BPF_OBJ_GET_INFO_BY_FD, and for the fence map BPF_OBJ_GET, BPF_MAP_LOOKUP_ELEM,
//! BPF_MAP_UPDATE_ELEM and BPF_MAP_DELETE_ELEM. Layouts follow <linux/bpf.h>; each attr
//! struct is zero-filled because the kernel refuses non-zero bytes in fields it does not know.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

// enum bpf_cmd
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;

// enum bpf_attach_type
pub const BPF_CGROUP_INET_INGRESS: u32 = 0;
pub const BPF_CGROUP_INET_EGRESS: u32 = 1;
pub const BPF_CGROUP_INET4_BIND: u32 = 8;
pub const BPF_CGROUP_INET6_BIND: u32 = 9;
pub const BPF_CGROUP_INET4_CONNECT: u32 = 10;
pub const BPF_CGROUP_INET6_CONNECT: u32 = 11;
pub const BPF_CGROUP_UDP4_SENDMSG: u32 = 14;
pub const BPF_CGROUP_UDP6_SENDMSG: u32 = 15;

/// The `query` member of `union bpf_attr` (fields after prog_cnt stay zero: not wanted).
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// The `BPF_OBJ_*` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// The `BPF_MAP_*_ELEM` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// BPF_ANY: create or replace.
const BPF_ANY: u64 = 0;

/// The `BPF_*_GET_FD_BY_ID` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct GetIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The `info` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_prog_info`, up to `name`; the kernel fills at most info_len bytes.
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, writable repr(C) bpf_attr member of size_of::<T>() bytes,
    // which is what the kernel reads and writes for this command.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// IDs of the programs attached directly to the cgroup `cgroup_dir` for one attach type.
pub fn prog_query(cgroup_dir: BorrowedFd<'_>, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut capacity = 16usize;
    loop {
        let mut ids = vec![0u32; capacity];
        let mut attr = QueryAttr {
            target_fd: fd_u32(cgroup_dir)?,
            attach_type,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: u32::try_from(capacity).unwrap_or(u32::MAX),
            ..QueryAttr::default()
        };
        match bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // More programs than slots: the kernel wrote the real count; ask again.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && capacity < 4096 => {
                capacity = (attr.prog_cnt as usize).max(capacity * 2);
            }
            Err(e) => return Err(e),
        }
    }
}

/// An fd of a loaded program, by ID (needs CAP_SYS_ADMIN).
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetIdAttr {
        id,
        ..GetIdAttr::default()
    };
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An fd of the BPF object (map, link, program) pinned at `path`.
pub fn obj_get(path: &std::ffi::CStr) -> io::Result<OwnedFd> {
    let mut attr = ObjAttr {
        pathname: path.as_ptr() as u64,
        ..ObjAttr::default()
    };
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates or replaces one element of a map (`K` and `V` are the map's key and value layout).
pub fn map_update<K, V>(map: BorrowedFd<'_>, key: &K, value: &V) -> io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd_u32(map)?,
        key: (key as *const K) as u64,
        value: (value as *const V) as u64,
        flags: BPF_ANY,
        ..ElemAttr::default()
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
}

/// Reads one element of a map into `value` (`K` and `V` are the map's key and value layout;
/// `V` must be at least the map's value size: the kernel writes that many bytes). False: no
/// such key.
pub fn map_lookup<K, V>(map: BorrowedFd<'_>, key: &K, value: &mut V) -> io::Result<bool> {
    let mut attr = ElemAttr {
        map_fd: fd_u32(map)?,
        key: (key as *const K) as u64,
        value: (value as *mut V) as u64,
        ..ElemAttr::default()
    };
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes one element of a map; an absent key is not an error.
pub fn map_delete<K>(map: BorrowedFd<'_>, key: &K) -> io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd_u32(map)?,
        key: (key as *const K) as u64,
        ..ElemAttr::default()
    };
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every key of a map whose keys are `u64` (BPF_MAP_GET_NEXT_KEY from no key until ENOENT).
/// A hash map changing meanwhile may restart the walk: callers must tolerate duplicates.
pub fn map_keys_u64(map: BorrowedFd<'_>) -> io::Result<Vec<u64>> {
    let mut keys = Vec::new();
    let mut next = 0u64;
    loop {
        let previous = keys.last().copied();
        let mut attr = ElemAttr {
            map_fd: fd_u32(map)?,
            key: previous.as_ref().map_or(0, |k| (k as *const u64) as u64),
            // `value` is `next_key` in this member of the union.
            value: (&mut next as *mut u64) as u64,
            ..ElemAttr::default()
        };
        match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(_) => keys.push(next),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
            Err(e) => return Err(e),
        }
        if keys.len() > (1 << 22) {
            return Err(io::Error::other("map walk does not end"));
        }
    }
}

/// What we need to know of a loaded program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgSummary {
    pub id: u32,
    pub name: String,
    /// SHA-1 prefix of the instructions, with map references zeroed: same code, same tag.
    pub tag: [u8; 8],
    pub map_ids: Vec<u32>,
}

/// BPF_OBJ_GET_INFO_BY_FD for a program, with its map IDs.
pub fn prog_info(fd: BorrowedFd<'_>) -> io::Result<ProgSummary> {
    let mut map_ids = vec![0u32; 8];
    let mut info = ProgInfoHead {
        nr_map_ids: 8,
        map_ids: map_ids.as_mut_ptr() as u64,
        ..ProgInfoHead::default()
    };
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(fd)?,
        info_len: size_of::<ProgInfoHead>() as u32,
        info: (&mut info as *mut ProgInfoHead) as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    map_ids.truncate((info.nr_map_ids as usize).min(map_ids.len()));
    let name_len = info.name.iter().position(|b| *b == 0).unwrap_or(16);
    Ok(ProgSummary {
        id: info.id,
        name: String::from_utf8_lossy(&info.name[..name_len]).into_owned(),
        tag: info.tag,
        map_ids,
    })
}

fn fd_u32(fd: BorrowedFd<'_>) -> io::Result<u32> {
    u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))
}
