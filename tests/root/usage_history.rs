//! The usage history (issue 28) on a host without controllers: the daemon samples a fake
//! users/ (bind-mounted over the real one in its own mount namespace, as in events.rs) whose
//! counter files the test moves; `cgroupctl report` orders the users by usage and by limit
//! hits; each customer, as a real unprivileged process, gets its own rows through the me
//! socket and nothing of another's whatever it sends. Rollups, retention and the bound of the
//! file are checked on a database filled with explicit times; a typo in `[history]` names its
//! line; and the PAM module does not link SQLite at all.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use cgroup_core::history::{Retention, Row, Store, Table};
use pam_cgroup_tests::support::{require_root, wait_for_value, TestSetup, TestUser};

use crate::cgroupctl::cgroupctl_bin;
use crate::events::{cgroupctl, fake_user};

fn history_config(db: &Path) -> String {
    history_config_every(db, 1)
}

fn history_config_every(db: &Path, interval: u32) -> String {
    format!(
        "[history]\ndatabase = \"{}\"\ninterval = {interval}\n",
        db.display()
    )
}

/// Sets a fake user's counters as the kernel would show them.
fn counters(dir: &Path, cpu_usec: u64, memory: u64, memory_max_hits: u64, pids_max_hits: u64) {
    let files = [
        (
            "cpu.stat",
            format!("usage_usec {cpu_usec}\nuser_usec {cpu_usec}\nsystem_usec 0\n"),
        ),
        ("memory.current", format!("{memory}\n")),
        ("memory.peak", format!("{memory}\n")),
        (
            "memory.events",
            format!("low 0\nhigh 0\nmax {memory_max_hits}\noom 0\noom_kill 0\noom_group_kill 0\n"),
        ),
        ("pids.events", format!("max {pids_max_hits}\n")),
        ("pids.events.local", format!("max {pids_max_hits}\n")),
        (
            "io.stat",
            format!("8:0 rbytes={memory} wbytes=4096 rios=1 wios=1 dbytes=0 dios=0\n"),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn report(setup: &TestSetup, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["report", "--json"];
    all.extend_from_slice(args);
    let out = cgroupctl(setup, &all);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One step of a customer's simulated load: a second more of CPU in its counters, a moment for
/// the daemon's pass (interval 1 s) to come, then the report with `args`.
fn step_and_report(
    setup: &TestSetup,
    dir: &Path,
    cpu: &mut u64,
    args: &[&str],
) -> serde_json::Value {
    *cpu += 1_000_000;
    counters(dir, *cpu, 10 << 20, 0, 0);
    std::thread::sleep(Duration::from_millis(200));
    report(setup, args)
}

fn names(report: &serde_json::Value) -> Vec<String> {
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap().to_string())
        .collect()
}

/// The daemon's refusals a customer is told to try again after: "busy" (one answer a second,
/// every slot held) and a connection ended at its deadline without an answer (a loaded host).
fn refused_for_now(out: &Output) -> bool {
    let said = String::from_utf8_lossy(&out.stderr);
    said.contains("busy") || said.contains("without an answer")
}

fn me_history_as(user: &TestUser, socket: &Path) -> Output {
    wait_for_value("an answer other than busy", Duration::from_secs(10), || {
        let out = user
            .command(cgroupctl_bin().to_str().unwrap())
            .args(["me", "--history", "--period", "1h", "--json", "--socket"])
            .arg(socket)
            .output()
            .unwrap();
        (!refused_for_now(&out)).then_some(out)
    })
}

#[test]
fn sampled_usage_is_reported_by_usage_and_by_faults_and_each_customer_sees_only_itself() {
    let (work, setup, socket) =
        crate::me::me_setup_with(|w| history_config(&w.join("state/history.db")));
    let db = work.path().join("state/history.db");
    let users = work.path().join("users");
    std::fs::create_dir(&users).unwrap();
    let hog = TestUser::new("pcuh");
    let quiet = TestUser::new("pcuq");
    let hog_dir = fake_user(&users, &hog.name, &[]);
    let quiet_dir = fake_user(&users, &quiet.name, &[]);
    counters(&hog_dir, 1_000_000, 100 << 20, 0, 0);
    counters(&quiet_dir, 1_000, 300 << 20, 0, 0);

    let socket_arg = socket.display().to_string();
    let daemon = crate::me::me_daemon(&setup, &users, &socket, work.path());
    daemon.wait_log("recording usage every 1 s", Duration::from_secs(20));
    // The hog burns CPU and hits its limits; the quiet one uses more memory, nothing else.
    let mut cpu = 1_000_000;
    let mut hits = 0;
    let totals = wait_for_value("three sampled intervals", Duration::from_secs(30), || {
        cpu += 5_000_000;
        hits += 3;
        counters(&hog_dir, cpu, 100 << 20, hits, hits);
        std::thread::sleep(Duration::from_millis(400));
        let r = report(&setup, &["--period", "1h", "--user", &hog.name]);
        let samples = r["users"][0]["samples"].as_u64().unwrap_or(0);
        (samples >= 3).then_some(r)
    });
    let hog_line = &totals["users"][0];
    assert_eq!(hog_line["uid"], hog.uid, "{totals}");
    assert!(hog_line["cpu_seconds"].as_f64().unwrap() >= 5.0, "{totals}");
    assert!(
        hog_line["faults"]["memory_max"].as_u64().unwrap() >= 3,
        "{totals}"
    );
    assert!(
        hog_line["faults"]["pids_max"].as_u64().unwrap() >= 3,
        "{totals}"
    );
    assert_eq!(hog_line["memory_peak_bytes"], 100u64 << 20);

    // By usage: the hog first by CPU, the quiet one first by memory.
    let by_cpu = report(&setup, &["--period", "1h"]);
    assert_eq!(by_cpu["by"], "usage");
    assert_eq!(names(&by_cpu)[..2], [hog.name.clone(), quiet.name.clone()]);
    let by_memory = report(&setup, &["--period", "1h", "--order-by", "memory"]);
    assert_eq!(names(&by_memory)[0], quiet.name);
    // By faults: the hog only (the quiet one hit nothing).
    let by_faults = report(&setup, &["--period", "1h", "--by", "faults"]);
    assert_eq!(names(&by_faults), vec![hog.name.clone()], "{by_faults}");
    assert_eq!(
        report(&setup, &["--period", "1h", "--limit", "1"])["users"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The table: human units, UTC on request.
    let out = cgroupctl(&setup, &["report", "--period", "1h", "--utc"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" UTC") && text.contains(&hog.name),
        "{text}"
    );
    assert!(text.contains("100M"), "{text}");

    // The database is root's alone.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(db.parent().unwrap()), 0o700);
    let out = quiet.command("cat").arg(&db).output().unwrap();
    assert!(
        !out.status.success(),
        "a customer read the database: {out:?}"
    );

    // Each customer: its own rows through the daemon, nothing of the other.
    let out = me_history_as(&quiet, &socket);
    assert!(out.status.success(), "{out:?}\n{}", daemon.log());
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["user"], quiet.name.as_str());
    let rows = me["rows"].as_array().unwrap();
    assert!(!rows.is_empty(), "{body}");
    assert!(rows.iter().all(|r| r["limit_hits"] == 0), "{body}");
    assert!(
        rows.iter().all(|r| r["memory_bytes"] == 300u64 << 20),
        "{body}"
    );
    assert!(!body.contains(&hog.name), "{body}");
    let out = me_history_as(&hog, &socket);
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["user"], hog.name.as_str());
    let hits: u64 = me["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["limit_hits"].as_u64().unwrap())
        .sum();
    assert!(hits > 0, "{me}");
    // The human table speaks the customer's words.
    let out = wait_for_value("a plain answer", Duration::from_secs(10), || {
        let out = quiet
            .command(cgroupctl_bin().to_str().unwrap())
            .args(["me", "--history", "--utc", "--socket", &socket_arg])
            .output()
            .unwrap();
        (!refused_for_now(&out)).then_some(out)
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MEMORY") && text.contains("LIMIT HITS") && text.contains("300M"),
        "{text}\nstatus {}, stderr: {}\ndaemon: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );

    // The quiet customer talks to the socket itself: another user's name, a path, JSON,
    // a huge period. Whatever it sends, the rows are its own or it gets the plain answer.
    for request in [
        format!("history 3600 {}\n", hog.name),
        format!("history 3600\n{}\n", hog.name),
        format!("{{\"user\":\"{}\",\"history\":3600}}\n", hog.name),
        "history 3600\0/etc/shadow\n".to_string(),
        "history 99999999999999999999\n".to_string(),
        format!("history {}\n", "9".repeat(200)),
    ] {
        let script = format!(
            "import socket, sys\n\
             s = socket.socket(socket.AF_UNIX)\n\
             s.connect({socket_arg:?})\n\
             try:\n s.sendall({:?}.encode())\n\
             except OSError: pass\n\
             sys.stdout.write(s.makefile().read())\n",
            request
        );
        let out = wait_for_value("an answer", Duration::from_secs(10), || {
            let out = quiet
                .command("/usr/bin/python3")
                .args(["-c", &script])
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            (!said.contains("busy") && !said.is_empty()).then_some(said)
        });
        assert!(
            out.contains(&format!("\"user\":\"{}\"", quiet.name)),
            "{request:?}: {out}"
        );
        assert!(!out.contains(&hog.name), "{request:?}: {out}");
        assert!(!out.contains("\"limit_hits\":3"), "{request:?}: {out}");
    }
    drop(daemon);
}

/// A test config whose database is in a directory of the test's, and the daemon's writer on
/// it, for rows written at explicit times.
fn store_with_explicit_times() -> (tempfile::TempDir, std::path::PathBuf, TestSetup, Store) {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("state/history.db");
    let setup = TestSetup::new(&history_config(&db), "");
    let store = Store::open_writer(&db).unwrap();
    (work, db, setup, store)
}

/// Three days of samples of three users at explicit times, as the daemon writes and
/// maintains them: the report over the whole time equals what was written (whichever rows
/// hold it), the oldest samples are gone, and with a small bound the file stays within it.
#[test]
fn rollups_keep_the_totals_and_the_file_stays_bounded() {
    let (_work, db, setup, mut store) = store_with_explicit_times();
    let now = (cgroup_core::time::now_ms() / 1000) as i64;
    let start = now - now % 86_400 - 3 * 86_400;
    let keep = Retention {
        sample_secs: 86_400,
        hour_secs: 30 * 86_400,
        day_secs: 365 * 86_400,
        max_bytes: 256 << 20,
    };
    let ids: Vec<i64> = ["pcra", "pcrb", "pcrc"]
        .iter()
        .zip([5001, 5002, 5003])
        .map(|(n, uid)| store.user_id(n, uid).unwrap())
        .collect();
    let row = |i: u64, m: i64| Row {
        samples: 1,
        secs: 60,
        cpu_usec: Some((i + 1) * 1_000_000),
        memory_sum: Some((3 - i) << 20),
        memory_peak: Some((3 - i) << 20),
        oom_kills: Some(u64::from(i == 2 && m % 10 == 0)),
        // Traffic that differs every minute, so the packed samples fill pages of their own.
        io_read: Some(((m as u64 * 2_654_435_761) ^ (i * 97)) % (1 << 30)),
        io_write: Some(((m as u64 * 40_503) ^ (i * 31)) % (1 << 30)),
        net_rx: Some(((m as u64 * 2_246_822_519) ^ i) % (1 << 30)),
        net_tx: Some(((m as u64 * 3_266_489_917) ^ i) % (1 << 30)),
        ..Row::default()
    };
    let minutes = 3 * 1440;
    for m in 0..minutes {
        let at = start + m * 60;
        let rows: Vec<(i64, Row)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, row(i as u64, m)))
            .collect();
        store.insert(Table::Sample, at, &rows).unwrap();
        if at % 3600 == 0 {
            store.maintain(at, &keep).unwrap();
        }
    }
    let end = start + minutes * 60;
    store.maintain(end, &keep).unwrap();
    let from = cgroup_core::time::utc_text(start as u64 * 1000);
    let to = cgroup_core::time::utc_text(end as u64 * 1000);
    let r = report(&setup, &["--from", &from, "--to", &to]);
    assert_eq!(names(&r), ["pcrc", "pcrb", "pcra"], "{r}");
    for (i, u) in r["users"].as_array().unwrap().iter().rev().enumerate() {
        assert_eq!(u["samples"], minutes, "{u}");
        assert_eq!(
            u["cpu_seconds"].as_f64().unwrap(),
            (minutes as u64 * (i as u64 + 1)) as f64,
            "{u}"
        );
        assert_eq!(u["memory_avg_bytes"], (3 - i as u64) << 20);
    }
    let faults = report(&setup, &["--from", &from, "--to", &to, "--by", "faults"]);
    assert_eq!(names(&faults), ["pcrc"]);
    assert_eq!(faults["users"][0]["faults"]["oom_kill"], 3 * 24 * 6);
    // A day-old period reads hourly rows: the same hours, the same sums.
    let day2_from = cgroup_core::time::utc_text((start + 86_400) as u64 * 1000);
    let day2_to = cgroup_core::time::utc_text((start + 2 * 86_400) as u64 * 1000);
    let day2 = report(
        &setup,
        &["--from", &day2_from, "--to", &day2_to, "--user", "pcra"],
    );
    assert_eq!(day2["users"][0]["samples"], 1440, "{day2}");
    // Retention: no sample row older than a day.
    let conn_oldest = Store::open_reader(&db).unwrap().coverage().unwrap();
    assert!(conn_oldest.oldest_sample.unwrap() >= end - keep.sample_secs);
    // The bound: half the packed samples' pages given back (the file's other tables take a
    // page each whatever they hold).
    let samples = store.table_bytes("sample_pack").unwrap();
    let small = Retention {
        max_bytes: store.used_bytes().unwrap() - samples / 2,
        ..keep
    };
    let done = store.maintain(end, &small).unwrap();
    assert!(done.evicted > 0);
    assert!(store.used_bytes().unwrap() <= small.max_bytes);
    let on_disk = std::fs::metadata(&db).unwrap().len();
    assert!(
        on_disk <= small.max_bytes + 64 * 1024,
        "{on_disk} > {}",
        small.max_bytes
    );
    // What is left still reports the most recent samples.
    let recent = report(&setup, &["--period", "2h", "--to", &to]);
    assert_eq!(names(&recent).len(), 3, "{recent}");
}

#[test]
fn a_typo_in_history_names_its_line_and_key() {
    require_root();
    let setup = TestSetup::new("[history]\ninterval = 1\nminutes_kept_days = 0\n", "");
    let out = cgroupctl(&setup, &["check"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("history.minutes_kept_days"), "{text}");
    // [tree] takes two lines before the body: the key is on line 5.
    assert!(text.contains("config.toml:5"), "{text}");
    setup.write_config(&format!(
        "[tree]\nroot = \"{}\"\n[history]\nintreval = 5\n",
        setup.tree.root.display()
    ));
    let out = cgroupctl(&setup, &["check"]);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("intreval") && text.contains("config.toml:4"),
        "{text}"
    );
}

/// A login never opens the database: the module does not even link SQLite.
#[test]
fn pam_module_does_not_link_sqlite() {
    crate::private_ip::module_lacks(&["libsqlite3"], "sqlite3_open");
}

/// `remove` takes the customer's usage rows and identity with it (a new account with the
/// same name and uid must not read its predecessor's history); a neighbour's rows stay, and
/// rows alone are something to remove.
#[test]
fn remove_erases_the_customers_usage_rows_and_only_them() {
    let (_work, db, setup, mut store) = store_with_explicit_times();
    let now = (cgroup_core::time::now_ms() / 1000) as i64;
    let gone = store.user_id("pcrmgone", 5101).unwrap();
    let again = store.user_id("pcrmgone", 5102).unwrap();
    let stays = store.user_id("pcrmstay", 5103).unwrap();
    let row = Row {
        samples: 1,
        secs: 60,
        cpu_usec: Some(1_000_000),
        ..Row::default()
    };
    for m in 0..10 {
        let rows: Vec<(i64, Row)> = [gone, again, stays].iter().map(|id| (*id, row)).collect();
        store
            .insert(Table::Sample, now - 3600 + m * 60, &rows)
            .unwrap();
    }
    drop(store);
    let o = cgroupctl(&setup, &["remove", "pcrmgone", "--yes", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["usage_rows_erased"], 20, "{v:#}");
    assert!(!cgroup_core::history::forget::knows_user(&db, "pcrmgone").unwrap());
    assert!(cgroup_core::history::forget::knows_user(&db, "pcrmstay").unwrap());
    let r = report(&setup, &["--period", "1d"]);
    assert_eq!(names(&r), ["pcrmstay"], "{r}");
    // Nothing of it left: a second remove has nothing to do.
    let o = cgroupctl(&setup, &["remove", "pcrmgone", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

/// A reload that shortens `[history] interval` applies at once: the sampler does not sleep
/// out the old interval (an hour here) before it samples at the new one.
#[test]
fn a_reload_that_shortens_the_interval_samples_at_once() {
    let (work, setup, socket) =
        crate::me::me_setup_with(|w| history_config_every(&w.join("state/history.db"), 3600));
    let db = work.path().join("state/history.db");
    let users = work.path().join("users");
    std::fs::create_dir(&users).unwrap();
    let user = TestUser::new("pcri");
    let dir = fake_user(&users, &user.name, &[]);
    counters(&dir, 1_000, 10 << 20, 0, 0);
    let daemon = crate::me::me_daemon(&setup, &users, &socket, work.path());
    // The first pass (the baseline) is done at start; the next would be an hour later.
    daemon.wait_log("recording usage every 3600 s", Duration::from_secs(20));
    setup.write_config_with_tree("", &history_config_every(&db, 1));
    // unshare and sh exec: the child is the daemon itself.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let mut cpu = 1_000;
    let r = wait_for_value(
        "two samples at the new interval",
        Duration::from_secs(30),
        || {
            let r = step_and_report(
                &setup,
                &dir,
                &mut cpu,
                &["--period", "1h", "--user", &user.name],
            );
            (r["users"][0]["samples"].as_u64().unwrap_or(0) >= 2).then_some(r)
        },
    );
    assert!(r["users"][0]["cpu_seconds"].as_f64().unwrap() > 0.0, "{r}");
    assert!(
        daemon.log().contains("a pass every 1 s"),
        "{}",
        daemon.log()
    );
}

/// A daemon started again over a database an earlier one filled keeps recording: the rows
/// after the restart are reported (`--from` the restart).
#[test]
fn a_restarted_daemon_goes_on_recording_in_the_same_database() {
    let (work, setup, socket) =
        crate::me::me_setup_with(|w| history_config(&w.join("state/history.db")));
    let users = work.path().join("users");
    std::fs::create_dir(&users).unwrap();
    let user = TestUser::new("pcrs");
    let dir = fake_user(&users, &user.name, &[]);
    let mut cpu = 1_000;
    counters(&dir, cpu, 10 << 20, 0, 0);
    let mut first = crate::me::me_daemon(&setup, &users, &socket, work.path());
    first.wait_log("recording usage every 1 s", Duration::from_secs(20));
    wait_for_value(
        "samples of the first daemon",
        Duration::from_secs(30),
        || {
            let r = step_and_report(
                &setup,
                &dir,
                &mut cpu,
                &["--period", "1h", "--user", &user.name],
            );
            (r["users"][0]["samples"].as_u64().unwrap_or(0) >= 2).then_some(())
        },
    );
    first.stop();
    drop(first);
    let _ = std::fs::remove_file(&socket);
    // A second before the restart (a period must not be empty).
    let since = (cgroup_core::time::now_ms() / 1000) as i64 - 1;
    let second = crate::me::me_daemon(&setup, &users, &socket, work.path());
    let from = format!("@{since}");
    let r = wait_for_value(
        "samples of the second daemon",
        Duration::from_secs(30),
        || {
            let r = step_and_report(
                &setup,
                &dir,
                &mut cpu,
                &["--from", &from, "--user", &user.name],
            );
            (r["users"][0]["samples"].as_u64().unwrap_or(0) >= 2).then_some(r)
        },
    );
    assert!(r["users"][0]["cpu_seconds"].as_f64().unwrap() > 0.0, "{r}");
    drop(second);
}

/// Whatever the daemon opens keeps SQLite's locks: a customer's `me --history` made the
/// daemon check the database's files by opening and closing them, which dropped the POSIX
/// locks of its own writer (closing any descriptor of a file drops all of a process's locks
/// on it); root's next `cgroupctl report`, another process, then took itself for the
/// database's first user and truncated the -shm file under the daemon's mapping: the daemon
/// died of SIGBUS at its next pass (a customer could stop the daemon at will).
#[test]
fn a_report_after_a_customers_history_leaves_the_daemon_recording() {
    let (work, setup, socket) =
        crate::me::me_setup_with(|w| history_config(&w.join("state/history.db")));
    let users = work.path().join("users");
    std::fs::create_dir(&users).unwrap();
    let user = TestUser::new("pcsb");
    let dir = fake_user(&users, &user.name, &[]);
    let mut cpu = 1_000;
    counters(&dir, cpu, 10 << 20, 0, 0);
    let mut daemon = crate::me::me_daemon(&setup, &users, &socket, work.path());
    daemon.wait_log("recording usage every 1 s", Duration::from_secs(20));
    let samples = |cpu: &mut u64| {
        let r = step_and_report(&setup, &dir, cpu, &["--period", "1h", "--user", &user.name]);
        r["users"][0]["samples"].as_u64().unwrap_or(0)
    };
    wait_for_value("a first sample", Duration::from_secs(30), || {
        (samples(&mut cpu) >= 1).then_some(())
    });
    // The customer asks (the daemon opens a reader next to its writer), then root reports
    // (other processes open the database) while the daemon goes on writing.
    let out = me_history_as(&user, &socket);
    assert!(out.status.success(), "{out:?}\n{}", daemon.log());
    let until = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < until {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("the daemon exited: {status:?}\n{}", daemon.log());
        }
        cpu += 100_000;
        counters(&dir, cpu, 10 << 20, 0, 0);
        let _ = cgroupctl(&setup, &["report", "--json", "--period", "1h"]);
    }
    let before = samples(&mut cpu);
    wait_for_value("three more samples", Duration::from_secs(30), || {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("the daemon exited: {status:?}\n{}", daemon.log());
        }
        (samples(&mut cpu) >= before + 3).then_some(())
    });
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "{}",
        daemon.log()
    );
}
