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
//!
//! Also for the cdylib's link only: `-z pack-relative-relocs` (DT_RELR). The module's ~1,850
//! relative relocations (vtables, string slices, panic locations) become a bitmap of a few
//! hundred bytes instead of a 44 KB `.rela.dyn` the loader reads at every dlopen (libpam loads
//! and unloads the module in every PAM transaction). glibc reads DT_RELR from 2.36 (Debian 12
//! and 13); the linker then records a need for the `GLIBC_ABI_DT_RELR` version, so an older
//! glibc refuses the module by name instead of misloading it, and a linker or glibc without
//! support leaves the classic relocations (GNU ld >= 2.38 and lld know the option).
//!
//! And `-z nodelete`: once loaded, the module stays in the process after pam_end's dlclose.
//! Whether a process has closed a session (`cgroup_core::session`, a static) must outlive the
//! transaction that closed it: a PAM caller that opens and closes sessions without exiting is
//! found at its next open by that, and only such a process pays the read of its cgroup. It
//! also spares a long-lived caller a dlopen and its relocations at each transaction.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    // The GNU targets of Linux: where std links libgcc_s and glibc reads DT_RELR.
    if !target.contains("-linux-gnu") {
        return;
    }
    println!("cargo:rustc-link-arg-cdylib=-Wl,-z,pack-relative-relocs");
    println!("cargo:rustc-link-arg-cdylib=-Wl,-z,nodelete");
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
