//! `cgroupctl top` on the real kernel (cpu.stat exists in every cgroup v2, with or without the
//! cpu controller): a user with a busy process comes first by CPU; not on a terminal, the
//! output is one plain table with no terminal codes.

use std::process::{Command, Stdio};

use pam_cgroup_tests::support::{require_root, unique_name, TestSetup};

use crate::cgroupctl::cgroupctl_bin;
use crate::events::Sleeper;

#[test]
fn top_puts_the_cpu_hog_first_and_prints_plain_text_to_a_pipe() {
    require_root();
    let setup = TestSetup::new("", "");
    // The hog's name sorts after the idle user's: top breaks ties by name, so a table with no
    // CPU figures or no sort at all would not put the hog first.
    let (hog, idle) = (unique_name("pcti"), unique_name("pcth"));
    assert!(idle < hog);
    let leaf = setup.tree.user(&hog).join("session-1");
    std::fs::create_dir_all(&leaf).unwrap();
    std::fs::create_dir_all(setup.tree.user(&idle).join("session-1")).unwrap();
    let busy = Sleeper(
        Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::fs::write(leaf.join("cgroup.procs"), format!("{}\n", busy.pid())).unwrap();
    let out = Command::new(cgroupctl_bin())
        .arg("--config")
        .arg(setup.config_path())
        .args(["top", "--interval", "1"])
        .output()
        .unwrap();
    drop(busy);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "{text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("USER"), "{text}");
    assert!(lines[1].starts_with(&hog), "{text}");
    assert!(lines.iter().any(|l| l.starts_with(&idle)), "{text}");
    assert_eq!(lines.len(), 3, "one table: {text}");
}
