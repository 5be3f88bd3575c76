//! The escape-probe binary (tests/src/bin/escape-probe.rs): a customer's attempts, each
//! reported with its errno.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn escape_probe() -> PathBuf {
    super::driver::driver().with_file_name("escape-probe")
}

/// Runs `ops` as uid/gid with no supplementary groups, inside `cgroup` when given (root
/// joins it first); (op, errno, detail) of each.
pub fn attempt_as(
    cgroup: Option<&Path>,
    uid: u32,
    gid: u32,
    ops: &[String],
) -> Vec<(String, i32, String)> {
    let mut cmd = Command::new(escape_probe());
    if let Some(cgroup) = cgroup {
        cmd.arg("--cgroup").arg(cgroup);
    }
    let out = cmd
        .args(["--uid", &uid.to_string(), "--gid", &gid.to_string()])
        .args(ops)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.iter()
        .map(|a| {
            (
                a["op"].as_str().unwrap().to_string(),
                a["errno"].as_i64().unwrap() as i32,
                a["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
