//! The mountinfo parser: any text. Every mount it returns came from a line marked cgroup2.
#![no_main]

use cgroup_core::mount::parse_cgroup2_mounts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mounts = parse_cgroup2_mounts(&text);
    let marked = text.lines().filter(|l| l.contains(" - cgroup2")).count();
    assert!(mounts.len() <= marked);
});
