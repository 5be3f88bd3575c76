//! Loads the traffic programs (bpf/net_traffic.bpf.c) with the depth of `users/<user>`,
//! reusing the fence map pinned by the private-IP load and the counters map when pinned
//! (both by pin path: libbpf checks they are compatible), else creating and pinning it.

use std::mem::MaybeUninit;
use std::path::Path;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::OpenObject;

use super::loader::bpf_err;
use super::traffic_skel::{NetTrafficSkel, NetTrafficSkelBuilder};
use crate::error::Result;

pub(super) fn load<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    fence_level: u32,
    fence_pin: &Path,
    traffic_pin: &Path,
) -> Result<NetTrafficSkel<'obj>> {
    let mut open = NetTrafficSkelBuilder::default()
        .open(storage)
        .map_err(|e| bpf_err("open", "the embedded traffic object", e))?;
    let rodata = open
        .maps
        .rodata_data
        .as_deref_mut()
        .ok_or_else(|| bpf_err("open", ".rodata", "the map is not memory-mapped"))?;
    rodata.fence_level = fence_level;
    open.maps
        .pcg_fences
        .set_pin_path(fence_pin)
        .map_err(|e| bpf_err("set pin path of", fence_pin.display().to_string(), e))?;
    open.maps
        .pcg_traffic
        .set_pin_path(traffic_pin)
        .map_err(|e| bpf_err("set pin path of", traffic_pin.display().to_string(), e))?;
    open.load()
        .map_err(|e| bpf_err("load", "the traffic programs (see libbpf's log above)", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::private_ip::NET_HOOKS;

    /// The C file defines exactly the programs of NET_HOOKS, each in its cgroup_skb section.
    #[test]
    fn object_defines_every_net_hook_in_its_section() {
        let mut storage = MaybeUninit::uninit();
        let open = NetTrafficSkelBuilder::default().open(&mut storage).unwrap();
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
        let wanted: Vec<(String, String)> = NET_HOOKS
            .iter()
            .map(|h| {
                (
                    h.prog_name.to_string(),
                    format!("cgroup_skb/{}", h.pin_name),
                )
            })
            .collect();
        assert_eq!(progs, wanted);
    }
}
