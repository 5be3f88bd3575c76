//! PAM callers that outlive pam_close_session (Dovecot's auth worker with `session=yes`):
//! out of the customer's reach after a close, recognised at their next open, and not forged by
//! a customer's process given a closed session's PID (issue: logins at the kernel's floor).

use std::path::Path;
use std::process::Command;

use pam_cgroup_tests::support::{require_root, TestSetup, TestUser};

use crate::session::kernel_path;

const PAM_SUCCESS: i32 = 0;

/// Removes a survivor record of a test's own PAM service (kept under /run until reboot).
struct ForgetSurvivor(std::path::PathBuf);

/// A PAM service of this test's own (`<prefix><pid>`, the test stack under another name):
/// a survivor record is host-wide (under /run) and by service. Its record, if one is made, is
/// forgotten on drop.
fn service_of_this_test(setup: &TestSetup, prefix: &str) -> (String, ForgetSurvivor) {
    let service = format!("{prefix}{}", std::process::id());
    std::fs::copy(
        setup.pam_dir().join("pamcgroup-test"),
        setup.pam_dir().join(&service),
    )
    .unwrap();
    let hex: String = service.bytes().map(|b| format!("{b:02x}")).collect();
    let record = Path::new("/run/pam_cgroup/survivor-services").join(hex);
    (service, ForgetSurvivor(record))
}

impl Drop for ForgetSurvivor {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The driver's arguments for a session of `user` through the test stack named `service`,
/// with what the module logs captured: every caller of these tests (`pam-session`).
fn add_session_args<'c>(
    cmd: &'c mut Command,
    setup: &TestSetup,
    service: &str,
    user: &str,
) -> &'c mut Command {
    cmd.arg("--confdir").arg(setup.pam_dir()).args([
        "--service",
        service,
        "--user",
        user,
        "--capture-syslog",
    ])
}

/// A long-lived PAM caller (Dovecot's auth worker with `session=yes`) opens and closes
/// sessions without exiting. Close moves nobody, so after alice's close it stays in her leaf;
/// its next open (bob's) finds it there, warns and records the service; from then on its
/// closes move it out to unconfined/. Before, it stayed in the last customer's leaf, where that
/// customer could move it into a sub-cgroup of its own and freeze or kill it (cgroup v2 lets
/// a delegatee move any process inside its leaf): one customer stopping every other's logins.
#[test]
fn a_caller_that_outlives_its_closes_is_moved_out_of_the_customers_reach_once_seen() {
    use std::io::BufRead;
    use std::os::unix::fs::MetadataExt;
    require_root();
    let alice = TestUser::new("pcv");
    let bob = TestUser::new("pcv");
    let setup = TestSetup::new("", "");
    let (service, _forget) = service_of_this_test(&setup, "pcsurv");
    let release = setup.dir.path().join("release");
    let mut worker = add_session_args(
        &mut Command::new(pam_cgroup_tests::support::driver::driver()),
        &setup,
        &service,
        &alice.name,
    )
    .args(["--then-users", &format!("{},{}", bob.name, alice.name)])
    .arg("--linger-until")
    .arg(&release)
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(worker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let r: serde_json::Value = serde_json::from_str(&line).unwrap();
    let unconfined = kernel_path(&setup, &setup.tree.root.join("unconfined/session-"));
    let under = |user: &TestUser| kernel_path(&setup, &setup.tree.user(&user.name));
    // The first close: nothing is known of the service yet; the caller stays in alice's leaf.
    assert_eq!(r["open_rc"], PAM_SUCCESS, "{r}");
    assert_eq!(r["cgroup_after_close"], r["cgroup_after_open"], "{r}");
    let then = r["then"].as_array().unwrap();
    for (session, user) in then.iter().zip([&bob, &alice]) {
        assert_eq!(session["open_rc"], PAM_SUCCESS, "{r}");
        assert!(
            session["cgroup_after_open"]
                .as_str()
                .unwrap()
                .starts_with(&under(user)),
            "confined during {}'s session: {r}",
            user.name
        );
        assert!(
            session["cgroup_after_close"]
                .as_str()
                .unwrap()
                .starts_with(&unconfined),
            "moved out at the close of {}'s session: {r}",
            user.name
        );
    }
    let said = r["syslog"].to_string();
    assert!(
        said.contains(&format!("PAM service {service} kept its process alive")),
        "{said}"
    );
    // bob, a real customer, tries what he could before: pull the worker into a sub-cgroup of
    // his last leaf (where it was left) and freeze it. His session's leaf, of a service known
    // to outlive its closes, was never handed to him (nor could he reach the worker between
    // its open and its close).
    let bob_leaf = setup
        .tree
        .path_of(then[0]["cgroup_after_open"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    for path in [bob_leaf.clone(), bob_leaf.join("cgroup.procs")] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.uid(), 0, "{} was handed to bob", path.display());
    }
    let o = bob
        .command("sh")
        .arg("-c")
        .arg("mkdir \"$0/grab\" && echo \"$1\" > \"$0/grab/cgroup.procs\" && echo 1 > \"$0/grab/cgroup.freeze\"")
        .arg(&bob_leaf)
        .arg(worker.id().to_string())
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "bob could pull the worker into his cgroup: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let now = crate::cgroupctl::cgroup_of(worker.id());
    assert!(now.starts_with(&unconfined), "the worker is in {now}");
    std::fs::write(&release, "").unwrap();
    assert!(worker.wait().unwrap().success());
}

/// Kills every process of a user's cgroup on drop (cgroup.kill), before the user goes.
struct KillUserOnDrop(std::path::PathBuf);

impl Drop for KillUserOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
    }
}

/// The survivor warning advises exempting the service, and a recorded service has its closes
/// move the caller out of the fence: neither may be forged. A leaf is named after its opener's
/// PID and outlives its session while a process of it lives, so a customer could fork inside
/// it until a child got that PID (the opener, sshd's monitor, exited), then run `su - self`
/// from that child: the open found its caller in `session-<its pid>/login` and took su for a
/// caller that outlived its close. The close now notes the closer's PID and start time on
/// the leaf (a root-only xattr); the reused PID has another start time. (Here root gives the
/// PID through ns_last_pid and moves the process in, for what the customer's forks do.)
#[test]
fn a_process_given_a_closed_sessions_pid_is_not_taken_for_a_survivor() {
    use std::io::{BufRead, Write};
    require_root();
    let alice = TestUser::new("pcv");
    let setup = TestSetup::new("", "");
    let (service, forget) = service_of_this_test(&setup, "pcforge");
    let record = forget.0.clone();
    let _kill = KillUserOnDrop(setup.tree.user(&alice.name));
    let driver = pam_cgroup_tests::support::driver::driver();
    let pam_args = |cmd: &mut Command| {
        add_session_args(cmd, &setup, &service, &alice.name);
    };
    // The first login: its child leaves a process behind, so the leaf outlives the session.
    let mut first = Command::new(&driver);
    pam_args(&mut first);
    first.args(["--", "sh", "-c", "sleep 300 </dev/null >/dev/null 2>&1 &"]);
    let first = pam_cgroup_tests::support::parse_report(&first.output().unwrap());
    assert_eq!(first.open_rc, PAM_SUCCESS, "{first:?}");
    let login = setup.tree.path_of(&first.cgroup_after_open);
    assert!(login.ends_with("login"), "{}", login.display());
    assert!(login.exists(), "the leaf outlives its session");

    // A new process with the opener's PID, in the leaf's login/, opens a session of alice.
    let reused = first.pid;
    let mut forger = None;
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", reused - 1)).unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "read x; exec \"$0\" \"$@\""]).arg(&driver);
        pam_args(&mut cmd);
        let child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if child.id() == reused {
            forger = Some(child);
            break;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut forger = forger.unwrap_or_else(|| panic!("could not get PID {reused} back"));
    std::fs::write(login.join("cgroup.procs"), format!("{reused}\n")).unwrap();
    forger.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(forger.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(forger.wait().unwrap().success());
    let second: pam_cgroup_tests::support::SessionReport =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad report {e}: {line}"));
    assert_eq!(second.pid, reused);
    assert_eq!(second.open_rc, PAM_SUCCESS, "{second:?}");
    let said = second.syslog_text();
    assert!(!said.contains("kept its process alive"), "{said}");
    assert!(!record.exists(), "the service was recorded as a survivor");
}

/// What alice tries from a shell of hers: during the session she makes a sub-cgroup of her
/// leaf, opens its cgroup.procs and the leaf's for writing, makes the leaf's writable by all
/// and turns on the leaf's memory.oom.group where it exists (she owns them all then; where
/// it does not, she names a sub-cgroup so, which the close must not stumble on); after
/// the close she tries to pull the worker (its PID on stdin) into her sub-cgroups, through the
/// descriptors and afresh. Each success is a line of its own.
const GRAB_AFTER_CLOSE: &str = r#"
mkdir "$0/grab" || exit 1
exec 3>"$0/grab/cgroup.procs" 4>"$0/cgroup.procs" || exit 1
chmod 0666 "$0/cgroup.procs" "$0/cgroup.threads" || exit 1
if [ -f "$0/memory.oom.group" ]; then echo 1 > "$0/memory.oom.group" || exit 1
else mkdir "$0/memory.oom.group" || exit 1; fi
echo ready
read pid
echo "$pid" >&3 2>/dev/null && echo "moved into her sub-cgroup through a descriptor opened during the session"
echo "$pid" >&4 2>/dev/null && echo "moved through the leaf's cgroup.procs opened during the session"
echo "$pid" 2>/dev/null > "$0/grab/cgroup.procs" && echo "moved into her sub-cgroup"
mkdir "$0/grab2" 2>/dev/null
echo "$pid" 2>/dev/null > "$0/grab2/cgroup.procs" && echo "moved into a sub-cgroup made after the close"
echo done
"#;

/// A caller that outlives its first close (Dovecot's auth worker, before its next open
/// recognises it) stays in the customer's leaf; there the customer must not reach it. cgroup
/// v2 lets a process move any process, root's too, between two cgroups when it may write the
/// cgroup.procs of their common ancestor: during the session that is the leaf's, delegated to
/// the customer, so she could pull the worker into a sub-cgroup of hers and freeze or kill it
/// (every other customer's IMAP logins stopped). Close takes the leaf's delegated files back:
/// root's, with no group or other write (she may have chmodded them while they were hers),
/// which the kernel checks at each write, so a descriptor she opened during the session does
/// not help; and it turns off the leaf's memory.oom.group, with which an OOM of her own
/// processes would kill the worker with them. Run by alice, a real unprivileged user.
#[test]
fn a_closed_leaf_is_no_longer_the_customers_so_a_caller_left_there_is_out_of_her_reach() {
    use std::io::{BufRead, Read, Write};
    use std::os::unix::fs::MetadataExt;
    use std::process::Stdio;
    require_root();
    let alice = TestUser::new("pcv");
    let setup = TestSetup::new("", "");
    let (service, _forget) = service_of_this_test(&setup, "pcleft");
    let _kill = KillUserOnDrop(setup.tree.user(&alice.name));
    let hold = setup.dir.path().join("hold");
    let release = setup.dir.path().join("release");
    let mut worker = add_session_args(
        &mut Command::new(pam_cgroup_tests::support::driver::driver()),
        &setup,
        &service,
        &alice.name,
    )
    .arg("--hold-until")
    .arg(&hold)
    .arg("--linger-until")
    .arg(&release)
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let under_alice = kernel_path(&setup, &setup.tree.user(&alice.name));
    let login = pam_cgroup_tests::support::wait::wait_for_value(
        "the worker's session to open",
        std::time::Duration::from_secs(20),
        || {
            let now = crate::cgroupctl::cgroup_of(worker.id());
            now.starts_with(&under_alice).then_some(now)
        },
    );
    let leaf = setup.tree.path_of(&login).parent().unwrap().to_path_buf();

    let mut alice_shell = alice
        .command("sh")
        .arg("-c")
        .arg(GRAB_AFTER_CLOSE)
        .arg(&leaf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(alice_shell.stdout.take().unwrap());
    let mut line = String::new();
    said.read_line(&mut line).unwrap();
    assert_eq!(
        line, "ready\n",
        "alice's preparation during the session failed"
    );

    // The worker closes alice's session and stays alive.
    std::fs::write(&hold, "").unwrap();
    let mut report = String::new();
    std::io::BufReader::new(worker.stdout.take().unwrap())
        .read_line(&mut report)
        .unwrap();
    let r: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(r["close_rc"], PAM_SUCCESS, "{r}");
    let logged = r["syslog"].to_string();
    assert!(!logged.contains("close:"), "the close failed: {logged}");
    assert_eq!(
        r["cgroup_after_close"].as_str(),
        Some(login.as_str()),
        "{r}"
    );

    writeln!(alice_shell.stdin.take().unwrap(), "{}", worker.id()).unwrap();
    let mut rest = String::new();
    said.read_to_string(&mut rest).unwrap();
    assert!(alice_shell.wait().unwrap().success());
    assert_eq!(rest, "done\n", "alice reached the worker after the close");
    assert_eq!(crate::cgroupctl::cgroup_of(worker.id()), login);
    for file in ["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
        let meta = std::fs::metadata(leaf.join(file)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{file} after the close");
        assert_eq!(
            meta.mode() & 0o022,
            0,
            "{file}: {:o} after the close",
            meta.mode()
        );
    }
    if let Ok(oom_group) = std::fs::read_to_string(leaf.join("memory.oom.group")) {
        assert_eq!(oom_group.trim(), "0", "memory.oom.group after the close");
    }
    std::fs::write(&release, "").unwrap();
    assert!(worker.wait().unwrap().success());
}
