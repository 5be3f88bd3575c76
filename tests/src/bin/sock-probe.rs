//! sock-probe: performs socket calls as whatever process runs it and prints one line per call
//! (`ok`, `ok ADDR`, `errno N`), after a first line `gid G egid E`. The private-IP tests run it
//! as a real customer after `sg`, `newgrp` or as a setgid binary, where a forked probe child
//! cannot follow.
//!
//! ```text
//! sock-probe OP...   OP: bind:ADDR bind-udp:ADDR connect:ADDR peer:ADDR send:ADDR
//!                        send-from:SRC=ADDR
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pam_cgroup_tests::support::probe::{outcome_text, perform_op, Op};

fn main() {
    // SAFETY: plain getters.
    let (gid, egid) = unsafe { (libc::getgid(), libc::getegid()) };
    println!("gid {gid} egid {egid}");
    for arg in std::env::args().skip(1) {
        let op = Op::parse(&arg).unwrap_or_else(|| panic!("bad op {arg:?}"));
        println!("{}", outcome_text(&perform_op(&op)));
    }
}
