//! Compiles the BPF programs (bpf/private_ip.bpf.c, bpf/net_traffic.bpf.c) with clang and
//! generates their libbpf-rs skeletons, only with the `bpf` feature: pam_cgroup.so builds
//! cgroup-core without it and must neither need clang nor link libbpf.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "bpf")]
    bpf::build();
}

#[cfg(feature = "bpf")]
mod bpf {
    use std::path::PathBuf;
    use std::process::Command;

    /// Each policy file and the name of its skeleton (`<name>.skel.rs` in OUT_DIR).
    const SOURCES: [(&str, &str); 2] = [
        ("bpf/private_ip.bpf.c", "private_ip"),
        ("bpf/net_traffic.bpf.c", "net_traffic"),
    ];
    /// Included by both: the fence map.
    const HEADERS: [&str; 1] = ["bpf/fence.h"];

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
        for (source, name) in SOURCES {
            let skeleton = out_dir.join(format!("{name}.skel.rs"));
            let result = libbpf_cargo::SkeletonBuilder::new()
                .source(source)
                .clang_args([multiarch_include().as_str(), "-Wall", "-Werror"])
                .build_and_generate(&skeleton);
            if let Err(e) = result {
                fail(&format!(
                    "building {source} failed (needs clang and libbpf-dev): {e:#}"
                ));
            }
            println!("cargo:rerun-if-changed={source}");
        }
        for header in HEADERS {
            println!("cargo:rerun-if-changed={header}");
        }
    }

    fn fail(msg: &str) -> ! {
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
