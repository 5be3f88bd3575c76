//! Loads the policy programs with a config's min_gid and port range (read-only globals set
//! between open and load; the verifier then sees them as constants).

use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle, OpenObject, Program, ProgramMut};

use super::skel::{PrivateIpSkel, PrivateIpSkelBuilder};
use super::sys::{self, ProgSummary};
use crate::config::PrivateIpConfig;
use crate::error::{Error, Result};

pub(super) fn bpf_err(
    op: &'static str,
    target: impl Into<String>,
    e: impl std::fmt::Display,
) -> Error {
    Error::Bpf {
        op,
        target: target.into(),
        reason: e.to_string(),
    }
}

/// Opens the embedded object, sets the globals, and loads (verifies) the six programs. The
/// fence map is the one pinned at `fence_pin` when there is one (libbpf checks it is
/// compatible), else created and pinned there. Nothing is attached yet; the programs live as
/// long as the returned skeleton or a link to them.
pub(super) fn load<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    policy: &PrivateIpConfig,
    fence_level: u32,
    fence_pin: &std::path::Path,
) -> Result<PrivateIpSkel<'obj>> {
    let mut open = PrivateIpSkelBuilder::default()
        .open(storage)
        .map_err(|e| bpf_err("open", "the embedded private-IP object", e))?;
    let rodata = open
        .maps
        .rodata_data
        .as_deref_mut()
        .ok_or_else(|| bpf_err("open", ".rodata", "the map is not memory-mapped"))?;
    rodata.min_gid = policy.min_gid;
    rodata.port_min = *policy.ports.start();
    rodata.port_max = *policy.ports.end();
    rodata.fence_level = fence_level;
    open.maps
        .pcg_fences
        .set_pin_path(fence_pin)
        .map_err(|e| bpf_err("set pin path of", fence_pin.display().to_string(), e))?;
    open.load().map_err(|e| {
        bpf_err(
            "load",
            "the private-IP programs (see libbpf's log above)",
            e,
        )
    })
}

/// A loaded program of a skeleton's object by name.
pub(super) fn program<'a>(object: &'a libbpf_rs::Object, name: &str) -> Result<ProgramMut<'a>> {
    // progs_mut: attaching needs the mutable view (it only takes &self of the object).
    object
        .progs_mut()
        .find(|p| p.name() == name)
        .ok_or_else(|| bpf_err("find", name, "no such program in the object"))
}

/// Summary (tag, maps) of a loaded program.
pub(super) fn summary(prog: &Program<'_>) -> Result<ProgSummary> {
    sys::prog_info(prog.as_fd())
        .map_err(|e| bpf_err("get info of", prog.name().to_string_lossy(), e))
}

/// The contents of a program's .rodata map (its min_gid and ports), if it has one.
pub(super) fn rodata_of(prog: &ProgSummary) -> Result<Option<Vec<u8>>> {
    for &id in &prog.map_ids {
        let map = MapHandle::from_map_id(id).map_err(|e| bpf_err("open map of", &prog.name, e))?;
        if !map.name().to_string_lossy().ends_with(".rodata") {
            continue;
        }
        return map
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| bpf_err("read .rodata of", &prog.name, e));
    }
    Ok(None)
}

/// Same code and same globals: swapping one for the other would change nothing.
pub(super) fn same_program(a: &ProgSummary, b: &ProgSummary) -> Result<bool> {
    Ok(a.name == b.name && a.tag == b.tag && rodata_of(a)? == rodata_of(b)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::private_ip::HOOKS;
    use libbpf_rs::skel::OpenSkel;

    /// Opening parses the embedded object without the kernel: the C file must define exactly
    /// the programs of HOOKS, each in the section (hence attach type) of its pin name.
    #[test]
    fn object_defines_every_hook_in_its_section() {
        let mut storage = MaybeUninit::uninit();
        let open = PrivateIpSkelBuilder::default().open(&mut storage).unwrap();
        let progs: Vec<(String, String)> = open
            .open_object()
            .progs()
            .map(|p| {
                (
                    p.name().to_string_lossy().into_owned(),
                    p.section().to_string_lossy().into_owned(),
                )
            })
            .collect();
        let wanted: Vec<(String, String)> = HOOKS
            .iter()
            .map(|h| (h.prog_name.to_string(), format!("cgroup/{}", h.pin_name)))
            .collect();
        assert_eq!(progs, wanted);
    }
}
