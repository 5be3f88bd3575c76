//! The libbpf-rs skeleton that build.rs generates from bpf/net_traffic.bpf.c. Generated code:
//! its unwrap/expect/panic calls check invariants of the object embedded at build time (a map
//! or program the C file defines is present), never runtime data.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::all,
    unused_imports,
    unsafe_op_in_unsafe_fn
)]

include!(concat!(env!("OUT_DIR"), "/net_traffic.skel.rs"));
