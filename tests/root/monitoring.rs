//! Monitoring as Prometheus and node_exporter see it: the daemon's scrape, `stats
//! --prometheus` and `stats --textfile` pass `promtool check metrics` (Prometheus' own linter)
//! and carry the plan and suspension of each customer, the limits, the build and the daemon's
//! own counters; the textfile is replaced atomically, 0644, only in a directory that keeps
//! customers out, and no customer reads it or the daemon's socket.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use pam_cgroup_tests::support::{require_root, wait_until, TestGroup, TestSetup, TestUser};

use crate::cgroupctl::{
    ctl, ctl_ok, describe, empty_session, output_with_stdin, parse_prometheus, stdout,
};
use crate::cgroupctl_daemon::{free_loopback_addr, scrape_unix, Daemon};

/// `promtool check metrics` on `text`: its lint problems, or an empty string.
fn promtool_problems(text: &str) -> String {
    let out = output_with_stdin(
        Command::new("promtool").args(["check", "metrics"]),
        text,
        "promtool (apt-get install prometheus)",
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        String::new()
    } else {
        format!("status {:?}: {said}", out.status.code())
    }
}

fn assert_promtool_clean(what: &str, text: &str) {
    let problems = promtool_problems(text);
    assert!(
        problems.is_empty(),
        "promtool check metrics on {what}: {problems}\n---\n{text}"
    );
}

/// The info line of `user` in a scrape.
fn info_line<'a>(text: &'a str, user: &str) -> Option<&'a str> {
    let prefix = format!("pam_cgroup_user_info{{user=\"{user}\",");
    text.lines().find(|l| l.starts_with(&prefix))
}

#[test]
fn scrape_stats_and_textfile_pass_promtool_with_info_build_and_daemon_families() {
    require_root();
    let plan_group = TestGroup::new("pmg");
    let setup = TestSetup::new(
        &format!(
            "[limits]\n\"pids.max\" = 100\n[profiles.pro]\n\"pids.max\" = 400\n[groups]\n{} = \"pro\"\n",
            plan_group.name
        ),
        "",
    );
    let pro = TestUser::with_groups("pmp", &[&plan_group]);
    let plain = TestUser::new("pmd");
    empty_session(&setup, &pro.name);
    empty_session(&setup, &plain.name);
    ctl_ok(
        &setup,
        &["suspend", &plain.name, "--reason", "unpaid invoice"],
    );

    let socket = setup.dir.path().join("metrics.sock");
    let socket_arg = socket.display().to_string();
    let addr = free_loopback_addr();
    // Both listeners at once: Prometheus on loopback TCP, cgroupctl on the root-only socket.
    let daemon = Daemon::start(&setup, &["--socket", &socket_arg, "--listen", &addr]);
    wait_until(
        "the metrics socket and port",
        Duration::from_secs(20),
        || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
                && std::net::TcpStream::connect(&addr).is_ok()
        },
    );

    // The daemon's scrape.
    let (head, scrape) = scrape_unix(&socket);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{}", daemon.log());
    assert_promtool_clean("the daemon's scrape", &scrape);
    parse_prometheus(&scrape);
    assert_eq!(
        info_line(&scrape, &pro.name),
        Some(
            format!(
                "pam_cgroup_user_info{{user=\"{}\",plan=\"pro\",suspended=\"false\"}} 1",
                pro.name
            )
            .as_str()
        ),
        "{scrape}"
    );
    assert_eq!(
        info_line(&scrape, &plain.name),
        Some(
            format!(
                "pam_cgroup_user_info{{user=\"{}\",plan=\"\",suspended=\"true\"}} 1",
                plain.name
            )
            .as_str()
        ),
        "{scrape}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        scrape.contains(&format!(
            "pam_cgroup_build_info{{version=\"{version}\"}} 1\n"
        )),
        "{scrape}"
    );
    let cpu = crate::cgroupctl::controller_available(&setup.tree.mount_point, "cpu");
    assert_eq!(
        scrape.contains("pam_cgroup_cpu_max_cores{"),
        cpu,
        "{scrape}"
    );
    assert_eq!(
        scrape.contains("pam_cgroup_cpu_periods_total{"),
        cpu,
        "{scrape}"
    );
    let (_, tcp_scrape) = crate::cgroupctl_daemon::http_get({
        let s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    });
    assert_promtool_clean("the daemon's TCP scrape", &tcp_scrape);

    // stats --prometheus: the same users' families, and the daemon's own counters asked of it.
    let prom = ctl_ok(
        &setup,
        &["stats", "--prometheus", "--daemon-socket", &socket_arg],
    );
    assert_promtool_clean("stats --prometheus", &prom);
    assert!(
        prom.contains("pam_cgroup_daemon_reloads_total 1\n"),
        "{prom}"
    );
    assert_eq!(
        info_line(&prom, &plain.name),
        info_line(&scrape, &plain.name)
    );
    // Without a daemon: the users' families, and one note on stderr.
    let missing = setup.dir.path().join("no-daemon.sock");
    let o = ctl(
        &setup,
        &[
            "stats",
            "--prometheus",
            "--daemon-socket",
            &missing.display().to_string(),
        ],
    );
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        !stdout(&o).contains("pam_cgroup_daemon_"),
        "{}",
        describe(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the daemon's own counters left out"),
        "{}",
        describe(&o)
    );
    assert_promtool_clean("stats --prometheus without a daemon", &stdout(&o));

    // stats --textfile into a directory like node_exporter's, kept from others (0750).
    let dir = setup.dir.path().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    let file = dir.join("pam_cgroup.prom");
    let file_arg = file.display().to_string();
    let o = ctl(
        &setup,
        &[
            "stats",
            "--textfile",
            &file_arg,
            "--daemon-socket",
            &socket_arg,
        ],
    );
    assert!(o.status.success(), "{}", describe(&o));
    assert!(stdout(&o).is_empty(), "{}", describe(&o));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_promtool_clean("the textfile", &text);
    assert!(
        text.contains("pam_cgroup_daemon_reaped_leaves_total"),
        "{text}"
    );
    assert!(info_line(&text, &pro.name).is_some(), "{text}");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o644);
    assert_eq!(meta.uid(), 0);
    // Written again: replaced (a new inode), nothing else left in the directory.
    let first_inode = meta.ino();
    ctl_ok(
        &setup,
        &[
            "stats",
            "--textfile",
            &file_arg,
            "--daemon-socket",
            &socket_arg,
        ],
    );
    assert_ne!(std::fs::metadata(&file).unwrap().ino(), first_inode);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["pam_cgroup.prom".to_string()]);

    // A customer reads neither the textfile nor the daemon's socket. (The test's temporary
    // directory is the one thing above: it must let the customer walk to the textfile's
    // directory for the attempt to mean anything.)
    let walk_in =
        |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o711)).unwrap();
    walk_in(setup.dir.path());
    let o = pro.command("cat").arg(&file).output().unwrap();
    assert!(
        !o.status.success(),
        "a customer read the textfile: {}",
        describe(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{}",
        describe(&o)
    );
    let o = pro
        .command("/usr/bin/python3")
        .args([
            "-c",
            "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'GET /metrics HTTP/1.0\\r\\n\\r\\n'); print(s.recv(65536).decode())",
            &socket_arg,
        ])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("PermissionError"),
        "a customer reached the daemon's socket: {}",
        describe(&o)
    );

    // A directory open to others is refused, and nothing is written there.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(&file).unwrap();
    let o = ctl(&setup, &["stats", "--textfile", &file_arg]);
    assert_eq!(o.status.code(), Some(4), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("open to every local user"),
        "{}",
        describe(&o)
    );
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    // A name node_exporter would not read is a usage error.
    let o = ctl(
        &setup,
        &[
            "stats",
            "--textfile",
            &dir.join("x.txt").display().to_string(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));

    daemon.signal(Signal::SIGTERM);
}
