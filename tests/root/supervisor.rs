//! A systemd unit with Delegate=yes starts `cgroupctl init` and `cgroupctl daemon` in the
//! unit's own cgroup, the tree's parent; they must step into a leaf of their own, or no
//! controller can ever be enabled below them (issue: packaging).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use pam_cgroup_tests::support::pip_tree::cgroupctl_path;
use pam_cgroup_tests::support::{require_root, TestTree};

#[test]
fn init_run_in_the_trees_parent_moves_into_a_supervisor_leaf() {
    require_root();
    let unit = TestTree::new();
    std::fs::create_dir(&unit.root).unwrap();
    let tree_root = unit.root.join("tree");
    let conf = tempfile::tempdir().unwrap();
    std::fs::set_permissions(conf.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = conf.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[tree]\nroot = \"{}\"\n", tree_root.display()),
    )
    .unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} --config {} init",
            unit.root.display(),
            cgroupctl_path().display(),
            config.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("supervisor"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(unit.root.join("supervisor").is_dir());
    assert!(tree_root.join("users").is_dir());
    let left = std::fs::read_to_string(unit.root.join("cgroup.procs")).unwrap();
    assert!(
        left.trim().is_empty(),
        "the unit's own cgroup still holds {left}"
    );
}
