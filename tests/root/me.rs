//! `cgroupctl me` (issue 14): each customer, as a real unprivileged process, sees its own
//! limits and faults through the daemon's me socket, and nothing of another customer's; what
//! a customer sends cannot make the daemon read anything else, and the socket cannot be
//! replaced by a customer.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pam_cgroup_tests::support::{require_root, wait_for_value, wait_until, TestSetup, TestUser};

use crate::cgroupctl::cgroupctl_bin;
use crate::events::{events_config, fake_user, FakeTreeDaemon, PassMarker, Sleeper};

/// What the daemon tells a uid that asked again within a second.
const BUSY: &str = "busy: one request per second";

/// Runs `ask` until the daemon's answer is not "busy": one answer per uid per second, so a
/// customer's second question waits for its turn. A refusal closes the connection at once,
/// so a client that had sent bytes the daemon never read may see a reset instead of the text.
fn until_not_busy(mut ask: impl FnMut() -> Output) -> Output {
    wait_for_value("an answer other than busy", Duration::from_secs(10), || {
        let out = ask();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (!said.contains(BUSY) && !said.contains("ConnectionResetError")).then_some(out)
    })
}

fn me_as(user: &TestUser, socket: &std::path::Path, json: bool) -> Output {
    until_not_busy(|| {
        let mut cmd = user.command(cgroupctl_bin().to_str().unwrap());
        cmd.arg("me").arg("--socket").arg(socket);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    })
}

/// A process of `user` with a recognisable command line, returned once it runs it.
fn sleeper_as(user: &TestUser, tag: &str) -> Sleeper {
    let child = user
        .command("sh")
        .args(["-c", &format!("exec sleep 300 {tag}"), "x"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // GNU sleep adds its operands: `sleep 300 TAG` sleeps 300 + TAG seconds.
    let sleeper = Sleeper(child);
    // setpriv and sh exec in place: the pid is the sleep's once its command line is.
    let cmdline = format!("/proc/{}/cmdline", sleeper.pid());
    let want = format!("sleep\0300\0{tag}\0");
    wait_until("the sleeper to run", Duration::from_secs(10), || {
        std::fs::read(&cmdline).is_ok_and(|c| c == want.as_bytes())
    });
    sleeper
}

/// A work directory, a config with an event history in it, and where the me socket goes (in
/// a root-owned 0755 directory, as the daemon requires).
fn me_setup() -> (tempfile::TempDir, TestSetup, std::path::PathBuf) {
    me_setup_with(|work| events_config(&work.join("state/events")))
}

/// A daemon over the fake `users` answering `cgroupctl me` on `socket`, its log in `work`.
pub fn me_daemon(setup: &TestSetup, users: &Path, socket: &Path, work: &Path) -> FakeTreeDaemon {
    let socket_arg = socket.display().to_string();
    FakeTreeDaemon::start(
        setup,
        users,
        &["--me-socket", &socket_arg],
        work.join("d.log"),
    )
}

/// As `me_setup`, with the config `config` gives for the work directory.
pub fn me_setup_with(
    config: impl FnOnce(&std::path::Path) -> String,
) -> (tempfile::TempDir, TestSetup, std::path::PathBuf) {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let setup = TestSetup::new(&config(work.path()), "");
    let run_dir = work.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = run_dir.join("me.sock");
    (work, setup, socket)
}

#[test]
fn each_customer_sees_only_its_own_faults() {
    let (work, setup, socket) = me_setup();
    let alice = TestUser::new("pcma");
    let bob = TestUser::new("pcmb");
    let users = work.path().join("users");
    std::fs::create_dir(&users).unwrap();
    let alice_proc = sleeper_as(&alice, "1");
    let root_proc = Sleeper(Command::new("sleep").arg("301").spawn().unwrap());
    let alice_dir = fake_user(&users, &alice.name, &[alice_proc.pid(), root_proc.pid()]);
    fake_user(&users, &bob.name, &[]);
    let mut marker = PassMarker::new(&users);

    let socket_arg = socket.display().to_string();
    let daemon = me_daemon(&setup, &users, &socket, work.path());
    daemon.wait_log("answering cgroupctl me", Duration::from_secs(20));
    daemon.wait_log("watching", Duration::from_secs(20));
    // Moved after the baseline pass, or the move would be the baseline.
    marker.wait_for_a_pass(&daemon);
    std::fs::write(
        alice_dir.join("memory.events"),
        "low 0\nhigh 0\nmax 1\noom 1\noom_kill 1\noom_group_kill 0\n",
    )
    .unwrap();
    daemon.wait_log(
        &format!("fault user={} kind=oom_kill", alice.name),
        Duration::from_secs(10),
    );
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);

    // alice: her limits and her fault, with her process and not root's.
    let out = me_as(&alice, &socket, true);
    assert!(out.status.success(), "{out:?}\n{}", daemon.log());
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["user"], alice.name.as_str());
    assert_eq!(me["uid"], alice.uid);
    assert_eq!(me["limits"]["memory.max"], "268435456");
    let kinds: Vec<&str> = me["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"oom_kill"), "{me}");
    let oom = me["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "oom_kill")
        .unwrap();
    let pids: Vec<u64> = oom["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids, vec![u64::from(alice_proc.pid())], "{oom}");
    let text = me_as(&alice, &socket, false);
    assert!(text.status.success(), "{text:?}");
    assert!(String::from_utf8_lossy(&text.stdout).contains("oom_kill"));

    // bob: his own (empty) view; nothing of alice's anywhere in the answer.
    let out = me_as(&bob, &socket, true);
    assert!(out.status.success(), "{out:?}");
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["user"], bob.name.as_str());
    assert!(me["events"].as_array().unwrap().is_empty(), "{body}");
    assert!(
        !body.contains(&alice.name),
        "alice's name in bob's answer: {body}"
    );
    // Numbers as whole values: a pid of 8000 is not in a memory_current of 268000000.
    let values = json_scalars(&me);
    for secret in [alice.uid.to_string(), alice_proc.pid().to_string()] {
        assert!(
            !values.contains(&secret),
            "{secret} in bob's answer: {body}"
        );
    }

    // bob talks to the socket himself: whatever he sends (a user, a path), the answer is
    // about him, and it is the same as when he sends nothing. (Told "busy", he finds the
    // connection closed before his send: he still reads what he was told, and asks again.)
    let script = format!(
        "import socket, sys\n\
         s = socket.socket(socket.AF_UNIX)\n\
         s.connect({:?})\n\
         try:\n s.sendall(b'{{\"user\":\"{}\",\"history_dir\":\"/etc\"}}\\n../../../etc/shadow\\n')\n\
         except OSError: pass\n\
         sys.stdout.write(s.makefile().read())\n",
        socket_arg, alice.name
    );
    let out = until_not_busy(|| {
        bob.command("/usr/bin/python3")
            .args(["-c", &script])
            .output()
            .unwrap()
    });
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        body.contains(&format!("\"user\":\"{}\"", bob.name)),
        "{out:?}"
    );
    assert!(
        !body.contains(&alice.name) && !body.contains("root:"),
        "{body}"
    );

    // bob cannot replace the socket (its directory is root's, 0755).
    let out = bob
        .command("sh")
        .args([
            "-c",
            &format!("rm -f {socket_arg}; ln -s /etc/shadow {socket_arg}.x"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(socket.exists());

    // Root's own connection: root is not a customer, so no cgroup and no fault.
    let mut s = UnixStream::connect(&socket).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let _ = s.write_all(b"x");
    let v: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(v["user"], "root");
    assert!(v["events"].as_array().unwrap().is_empty());
    drop(daemon);
    drop(alice_proc);
    drop(root_proc);
}

/// A customer that reads its answer, then trickles a byte every 0.5 s for as long as the
/// daemon keeps the connection (at most 15 s); with `twice`, it opens a second connection
/// meanwhile. Prints `ready` once it has its answer, then one JSON line.
const DRIPPER: &str = r#"
import json, socket, sys, time
path, twice = sys.argv[1], sys.argv[2] == "1"
s = socket.socket(socket.AF_UNIX)
s.connect(path)
t0 = time.monotonic()
s.settimeout(5)
answer = b""
while not answer.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    answer += chunk
print("ready", flush=True)
second = None
while time.monotonic() - t0 < 15:
    try:
        s.send(b"x")
    except OSError:
        break
    if twice and second is None:
        s2 = socket.socket(socket.AF_UNIX)
        s2.connect(path)
        s2.settimeout(5)
        second = s2.recv(4096).decode(errors="replace")
    time.sleep(0.5)
held = time.monotonic() - t0
print(json.dumps({"held": held, "answer": answer.decode(errors="replace"), "second": second}))
"#;

#[test]
fn slow_customers_hold_a_slot_only_until_the_deadline_and_never_shut_out_another() {
    use std::io::BufRead;
    let (work, setup, socket) = me_setup();
    let users = work.path().join("users");
    std::fs::create_dir(&users).unwrap();
    // Eight slow customers (the daemon serves eight connections at once) and a ninth.
    let slow: Vec<TestUser> = (0..8).map(|_| TestUser::new("pcmd")).collect();
    let ninth = TestUser::new("pcmn");
    let socket_arg = socket.display().to_string();
    let daemon = me_daemon(&setup, &users, &socket, work.path());
    daemon.wait_log("answering cgroupctl me", Duration::from_secs(20));

    let started = std::time::Instant::now();
    let mut drippers: Vec<_> = slow
        .iter()
        .enumerate()
        .map(|(i, u)| {
            u.command("/usr/bin/python3")
                .args(["-c", DRIPPER, &socket_arg, if i == 0 { "1" } else { "0" }])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outputs: Vec<_> = drippers
        .iter_mut()
        .map(|c| std::io::BufReader::new(c.stdout.take().unwrap()))
        .collect();
    for out in &mut outputs {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "{}", daemon.log());
    }
    // Every slot is held by a slow customer: the ninth is still served, after a wait for the
    // first slot to free (at most the connection deadline).
    let asked = std::time::Instant::now();
    let out = ninth
        .command(cgroupctl_bin().to_str().unwrap())
        .args(["me", "--json", "--socket", &socket_arg])
        .output()
        .unwrap();
    let waited = asked.elapsed();
    assert!(out.status.success(), "{out:?}\n{}", daemon.log());
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["user"], ninth.name.as_str());
    eprintln!(
        "the ninth customer was answered {:.2} s after asking ({:.2} s after the slow ones began)",
        waited.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(waited < Duration::from_secs(6), "waited {waited:?}");

    for ((user, mut child), mut out) in slow.iter().zip(drippers).zip(outputs) {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        child.wait().unwrap();
        let report: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{e}: {line:?}\n{}", daemon.log()));
        let answer: serde_json::Value =
            serde_json::from_str(report["answer"].as_str().unwrap().trim()).unwrap();
        assert_eq!(answer["user"], user.name.as_str(), "{report}");
        // The daemon cuts a trickling connection at its deadline (3 s), not when it pleases.
        let held = report["held"].as_f64().unwrap();
        eprintln!("{} held its connection {held:.2} s", user.name);
        assert!(held < 5.0, "{} held a slot {held:.2} s", user.name);
        if user.name == slow[0].name {
            // One slot per customer: its second connection is told so at once.
            let second = report["second"].as_str().unwrap();
            assert!(second.contains("busy"), "{report}");
        }
    }
    drop(daemon);
}

/// Every number of a JSON document, and every run of digits in its keys and strings, as text.
fn json_scalars(v: &serde_json::Value) -> Vec<String> {
    let digit_runs = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect()
    };
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .flat_map(|(k, x)| digit_runs(k).into_iter().chain(json_scalars(x)))
            .collect(),
        serde_json::Value::Array(a) => a.iter().flat_map(json_scalars).collect(),
        serde_json::Value::String(s) => digit_runs(s),
        serde_json::Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}
