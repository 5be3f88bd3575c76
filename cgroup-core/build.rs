//! Compiles the private-IP policy (bpf/private_ip.bpf.c) with clang and generates its libbpf-rs
//! skeleton, only with the `bpf` feature: pam_cgroup.so builds cgroup-core without it and must
//! neither need clang nor link libbpf.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "bpf")]
    bpf::build();
}

#[cfg(feature = "bpf")]
mod bpf {
    use std::path::PathBuf;
    use std::process::Command;

    const SOURCE: &str = "bpf/private_ip.bpf.c";

    /// Debian's clang finds <asm/types.h> only under the multiarch include directory.
    fn multiarch_include() -> String {
        let from_gcc = Command::new("gcc")
            .arg("-print-multiarch")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let triple = from_gcc.unwrap_or_else(|| {
            let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
            format!("{arch}-linux-gnu")
        });
        format!("-I/usr/include/{triple}")
    }

    pub fn build() {
        let out_dir = match std::env::var_os("OUT_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => fail("OUT_DIR is not set (not run by cargo?)"),
        };
        let skeleton = out_dir.join("private_ip.skel.rs");
        let result = libbpf_cargo::SkeletonBuilder::new()
            .source(SOURCE)
            .clang_args([multiarch_include().as_str(), "-Wall", "-Werror"])
            .build_and_generate(&skeleton);
        if let Err(e) = result {
            fail(&format!(
                "building {SOURCE} failed (needs clang and libbpf-dev): {e:#}"
            ));
        }
        println!("cargo:rerun-if-changed={SOURCE}");
    }

    fn fail(msg: &str) -> ! {
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
