//! Private loopback IPs (DESIGN.md "Private IPs"): six cgroup sock_addr programs
//! (bpf/private_ip.bpf.c) attached once at the tree root with BPF links pinned in bpffs; and
//! next to them, with the same life cycle, two cgroup_skb programs counting each customer's
//! traffic (bpf/net_traffic.bpf.c, `traffic`).
//!
//! Without the `bpf` feature this module only *inspects* the kernel through raw bpf(2) calls,
//! so pam_cgroup.so can check that the programs are attached without linking libbpf. The
//! loader (`install`, `uninstall`) needs the feature and is used by cgroupctl and the tests.

mod address;
mod attached;
mod bpffs;
mod fence;
mod pins;
mod sys;
pub mod traffic;

#[cfg(feature = "bpf")]
mod install;
#[cfg(feature = "bpf")]
mod loader;
#[cfg(feature = "bpf")]
mod skel;
#[cfg(feature = "bpf")]
mod traffic_loader;
#[cfg(feature = "bpf")]
mod traffic_skel;

pub use address::{private_address, private_address_of, MAX_PRIVATE_GID};
pub use attached::{
    attached_programs, attached_programs_of, empty_hooks, missing_programs, programs_attached,
    query_empty_hooks, AttachedProgram,
};
pub use bpffs::{ensure_bpffs, is_bpffs, BpffsState, DEFAULT_BPFFS};
pub use fence::{
    cgroup_id, fence_level, fence_map_pin, forget_fence, mark_attached, marked_attached,
    register_fence, sync_fences, unmark_attached, FenceSync, FenceValue, FENCE_MAP_PIN,
};
pub use pins::{pin_dir, pin_dir_name, PIN_BASE};
pub use traffic::{Flow, Traffic, TRAFFIC_MAP_PIN};

#[cfg(feature = "bpf")]
pub use install::{install, uninstall, Action, InstallReport, ProgramReport, UninstallReport};

/// One program of the policy: its name in the object (also its kernel name, <= 15 bytes), its
/// pin file name, and its cgroup attach type (uapi `enum bpf_attach_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    pub prog_name: &'static str,
    pub pin_name: &'static str,
    pub attach_type: u32,
}

/// The six hooks, in the order the C file defines them.
pub const HOOKS: [Hook; 6] = [
    Hook {
        prog_name: "pcg_bind4",
        pin_name: "bind4",
        attach_type: sys::BPF_CGROUP_INET4_BIND,
    },
    Hook {
        prog_name: "pcg_bind6",
        pin_name: "bind6",
        attach_type: sys::BPF_CGROUP_INET6_BIND,
    },
    Hook {
        prog_name: "pcg_connect4",
        pin_name: "connect4",
        attach_type: sys::BPF_CGROUP_INET4_CONNECT,
    },
    Hook {
        prog_name: "pcg_connect6",
        pin_name: "connect6",
        attach_type: sys::BPF_CGROUP_INET6_CONNECT,
    },
    Hook {
        prog_name: "pcg_sendmsg4",
        pin_name: "sendmsg4",
        attach_type: sys::BPF_CGROUP_UDP4_SENDMSG,
    },
    Hook {
        prog_name: "pcg_sendmsg6",
        pin_name: "sendmsg6",
        attach_type: sys::BPF_CGROUP_UDP6_SENDMSG,
    },
];

/// The traffic counters' two hooks (bpf/net_traffic.bpf.c), installed and removed with
/// `HOOKS` but not part of the login-time check (`empty_hooks`): they count, they do not
/// enforce, so a login does not depend on them.
pub const NET_HOOKS: [Hook; 2] = [
    Hook {
        prog_name: "pcg_ingress",
        pin_name: "ingress",
        attach_type: sys::BPF_CGROUP_INET_INGRESS,
    },
    Hook {
        prog_name: "pcg_egress",
        pin_name: "egress",
        attach_type: sys::BPF_CGROUP_INET_EGRESS,
    },
];
