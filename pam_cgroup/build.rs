//! Links the unwinder into pam_cgroup.so instead of depending on libgcc_s.so.1.
//!
//! Rust's std asks the linker for `-lgcc_s` (the unwinder behind panics and catch_unwind). No
//! other PAM module on a Debian host needs libgcc_s, so every PAM transaction of a C program
//! (sshd, su, login, cron) that loads this module had to map it: dlopen+dlclose of the module
//! cost 217-270 us against 98-102 us with libgcc_s already mapped. GCC ships the same unwinder
//! as a static archive, libgcc_eh.a; a copy of it named libgcc_s.a in a directory searched
//! before the system's makes `-lgcc_s` resolve to it (GNU ld takes the first directory that
//! has either form of the library). Only the cdylib's link gets the directory: the unwinder
//! becomes part of the module, its symbols local (rustc's version script exports only the
//! pam_sm_* hooks), and catch_unwind at the FFI boundary keeps working (the root test
//! `a_panic_in_the_module_follows_on_error` runs against the release module).
//!
//! `panic = "abort"` is not an option: a panic inside sshd must never abort the host.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    // Only where std links libgcc_s: the GNU targets of Linux.
    if !target.contains("-linux-gnu") {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let found = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    // `cc -print-file-name` echoes the bare name when it has no such file.
    let Some(archive) = found.filter(|p| p.is_absolute() && p.is_file()) else {
        println!(
            "cargo:warning=libgcc_eh.a not found through {cc}: pam_cgroup.so will need libgcc_s.so.1"
        );
        return;
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("static-unwind");
    let copy = out.join("libgcc_s.a");
    let made = std::fs::create_dir_all(&out).and_then(|()| std::fs::copy(&archive, &copy));
    if let Err(e) = made {
        println!("cargo:warning=cannot copy {}: {e}", archive.display());
        return;
    }
    println!("cargo:rerun-if-changed={}", archive.display());
    println!("cargo:rustc-link-arg-cdylib=-L{}", out.display());
}
