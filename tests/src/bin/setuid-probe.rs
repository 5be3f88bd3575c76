//! setuid-probe: a root program that switches to a user the way root daemons do (PHP-FPM
//! workers, suexec, runuser), for the safety net's tests and bench.
//!
//! ```text
//! setuid-probe switch UID GID [NAME_HEX before|after]
//!                                wait for a line on stdin, setresgid/setresuid to UID/GID
//!                                (real, effective, saved), print "switched", wait for EOF;
//!                                with NAME_HEX, prctl(PR_SET_NAME) to those bytes (any bytes,
//!                                as a CGI's file name gives) before the switch (as root) or
//!                                after it (as the customer)
//! setuid-probe seteuid UID       wait for a line, seteuid(UID) only (real uid stays root),
//!                                print "switched", wait for EOF
//! setuid-probe setreuid UID      wait for a line, setreuid(UID, -1) only (the real uid becomes
//!                                UID, effective and saved stay root: what pam_keyinit does in
//!                                sshd's privileged monitor), print "switched", wait for EOF
//! setuid-probe window UID GID N FENCE TIMEOUT_MS
//!                                N times: fork a child that setresuid()s to UID and spin-reads
//!                                /proc/self/cgroup until it contains FENCE; print the window
//!                                (ns from just before the switch to the first read showing the
//!                                fence) per child, or "timeout"
//! setuid-probe hop UID GID SECS [alone]
//!                                wait for a line, fork a child that switches like `switch`,
//!                                forks the hopper, prints "switched" and stays SECS (with
//!                                `alone`: exits at once, leaving only the hopper); the
//!                                hopper, for SECS: works ~0.2 ms, forks, its parent _exit()s
//!                                at once, the child does the same (each generation an orphan
//!                                in its cgroup); the probe stays root, reaps them, waits for EOF
//! setuid-probe background UID GID
//!                                wait for a line, switch like `switch`, fork a child that waits
//!                                for EOF on stdin (`sh -c 'sleep 100 &'`), print "switched",
//!                                wait for EOF
//! setuid-probe storm UID SECS WORKERS PROGRAM
//!                                WORKERS processes switch to UID once, then run PROGRAM
//!                                back to back for SECS; print "EXECS SECONDS"
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, Read, Write};
use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} missing or invalid: {args:?}"))
}

fn wait_line() {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
}

fn switch_fully(uid: u32, gid: u32) {
    // SAFETY: plain syscalls with integer arguments.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setresgid(gid, gid, gid), 0);
        assert_eq!(libc::setresuid(uid, uid, uid), 0);
    }
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The process's name (comm, at most 15 bytes), any bytes but NUL.
fn set_name(name: &[u8]) {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) }, 0);
}

fn announce_and_wait() {
    println!("switched");
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

/// One child: the window between its setresuid() and the first /proc/self/cgroup that shows
/// the fence, in ns (or u64::MAX on timeout), written to `out`.
fn one_window(uid: u32, gid: u32, fence: &str, timeout: Duration) -> u64 {
    let start = Instant::now();
    switch_fully(uid, gid);
    let mut buf = Vec::with_capacity(512);
    loop {
        buf.clear();
        if let Ok(mut f) = std::fs::File::open("/proc/self/cgroup") {
            let _ = f.read_to_end(&mut buf);
        }
        if String::from_utf8_lossy(&buf).contains(fence) {
            return start.elapsed().as_nanos() as u64;
        }
        if start.elapsed() > timeout {
            return u64::MAX;
        }
    }
}

fn windows(uid: u32, gid: u32, n: usize, fence: &str, timeout: Duration) {
    for _ in 0..n {
        let mut fds = [0; 2];
        // SAFETY: a pipe into a two-int array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only switches uid, reads /proc and writes to the pipe.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ns = one_window(uid, gid, fence, timeout);
            let bytes = ns.to_ne_bytes();
            // SAFETY: fds[1] is the write end of the pipe; bytes is valid.
            unsafe {
                libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
                libc::_exit(0);
            }
        }
        let mut bytes = [0u8; 8];
        // SAFETY: fds[0] is the read end; bytes is valid for 8 bytes.
        let got = unsafe {
            libc::close(fds[1]);
            let got = libc::read(fds[0], bytes.as_mut_ptr().cast(), 8);
            libc::close(fds[0]);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            got
        };
        let ns = u64::from_ne_bytes(bytes);
        if got != 8 || ns == u64::MAX {
            println!("timeout");
        } else {
            println!("{ns}");
        }
    }
}

/// Forks `body` off; the parent goes on.
fn fork_off(body: impl FnOnce()) {
    // SAFETY: the child runs `body` and _exit()s; the probe is single-threaded.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        body();
        // SAFETY: ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(0) };
    }
}

/// The hopper: fork, parent gone at once, for `secs`. No generation lives past ~0.2 ms of
/// work, so each is an orphan by the time a move of its parent is done.
fn hop(secs: f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let worked = Instant::now();
        while worked.elapsed() < Duration::from_micros(200) {
            std::hint::spin_loop();
        }
        if Instant::now() >= deadline {
            return;
        }
        // SAFETY: the parent only _exit()s; the child goes on hopping.
        let pid = unsafe { libc::fork() };
        if pid != 0 {
            // A failed fork ends the hopper too (-1: the generation just ends).
            // SAFETY: ends this generation at once.
            unsafe { libc::_exit(0) };
        }
    }
}

/// Exec storm: `workers` processes of `uid` running `program` back to back for `secs`.
fn storm(uid: u32, secs: f64, workers: usize, program: &str) {
    let start = Instant::now();
    let deadline = Duration::from_secs_f64(secs);
    let mut readers = Vec::new();
    for _ in 0..workers {
        let mut fds = [0; 2];
        // SAFETY: a pipe into a two-int array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child switches uid, spawns /bin/true in a loop and writes a count.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            switch_fully(uid, uid);
            let mut n: u64 = 0;
            while start.elapsed() < deadline {
                if std::process::Command::new(program).status().is_ok() {
                    n += 1;
                }
            }
            let bytes = n.to_ne_bytes();
            // SAFETY: fds[1] is the write end; bytes is valid.
            unsafe {
                libc::write(fds[1], bytes.as_ptr().cast(), 8);
                libc::_exit(0);
            }
        }
        // SAFETY: the parent keeps only the read end.
        unsafe { libc::close(fds[1]) };
        readers.push((pid, fds[0]));
    }
    let mut total = 0;
    for (pid, fd) in readers {
        let mut bytes = [0u8; 8];
        // SAFETY: fd is the read end; bytes is valid for 8 bytes.
        unsafe {
            if libc::read(fd, bytes.as_mut_ptr().cast(), 8) == 8 {
                total += u64::from_ne_bytes(bytes);
            }
            libc::close(fd);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
        }
    }
    println!("{total} {:.3}", start.elapsed().as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("switch") => {
            let (uid, gid) = (arg(&args, 2), arg(&args, 3));
            let name = args.get(4).map(|hex| from_hex(hex));
            let after = args.get(5).map(String::as_str) == Some("after");
            wait_line();
            if let Some(name) = name.as_ref().filter(|_| !after) {
                set_name(name);
            }
            switch_fully(uid, gid);
            if let Some(name) = name.as_ref().filter(|_| after) {
                set_name(name);
            }
            announce_and_wait();
        }
        Some("seteuid") => {
            let uid: u32 = arg(&args, 2);
            wait_line();
            // SAFETY: plain syscall.
            assert_eq!(unsafe { libc::seteuid(uid) }, 0);
            announce_and_wait();
        }
        Some("setreuid") => {
            let uid: u32 = arg(&args, 2);
            wait_line();
            // SAFETY: plain syscall; u32::MAX is -1, "leave the effective uid alone".
            assert_eq!(unsafe { libc::setreuid(uid, u32::MAX) }, 0);
            announce_and_wait();
        }
        Some("hop") => {
            let (uid, gid, secs): (u32, u32, f64) = (arg(&args, 2), arg(&args, 3), arg(&args, 4));
            let alone = args.get(5).map(String::as_str) == Some("alone");
            wait_line();
            // The orphaned generations are reaped by the probe, which stays root where it
            // is: an init that reaps late (a sandbox's) lets thousands of zombies pile up,
            // and those count against the fence's pids.max until the hopper cannot fork.
            // SAFETY: plain prctl with integer arguments.
            assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }, 0);
            fork_off(|| {
                switch_fully(uid, gid);
                fork_off(|| hop(secs));
                println!("switched");
                std::io::stdout().flush().unwrap();
                if !alone {
                    std::thread::sleep(Duration::from_secs_f64(secs));
                }
            });
            std::thread::spawn(|| loop {
                let mut status = 0;
                // SAFETY: waits for any child; status is a valid int.
                if unsafe { libc::waitpid(-1, &mut status, 0) } < 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
            let mut rest = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut rest);
        }
        Some("leader-exits") => {
            // Switches, then its main thread alone exits (the exit syscall, not exit_group:
            // pthread_exit() in C) while a second thread waits for stdin to close.
            let (uid, gid) = (arg(&args, 2), arg(&args, 3));
            wait_line();
            switch_fully(uid, gid);
            std::thread::spawn(|| {
                let mut rest = Vec::new();
                let _ = std::io::stdin().read_to_end(&mut rest);
                // SAFETY: ends the whole process from its last thread.
                unsafe { libc::_exit(0) };
            });
            println!("switched");
            std::io::stdout().flush().unwrap();
            // SAFETY: ends the main thread only; nothing of it is used after (the other thread
            // owns what it reads).
            unsafe { libc::syscall(libc::SYS_exit, 0) };
        }
        Some("background") => {
            let (uid, gid) = (arg(&args, 2), arg(&args, 3));
            wait_line();
            switch_fully(uid, gid);
            fork_off(|| {
                let mut rest = Vec::new();
                let _ = std::io::stdin().read_to_end(&mut rest);
            });
            announce_and_wait();
        }
        Some("window") => {
            let fence: String = arg(&args, 5);
            let timeout = Duration::from_millis(arg(&args, 6));
            windows(arg(&args, 2), arg(&args, 3), arg(&args, 4), &fence, timeout);
        }
        Some("storm") => {
            let program: String = arg(&args, 5);
            storm(arg(&args, 2), arg(&args, 3), arg(&args, 4), &program)
        }
        _ => panic!(
            "usage: setuid-probe switch UID GID [NAME_HEX before|after] | seteuid UID | setreuid UID | hop UID GID SECS [alone] | leader-exits UID GID | background UID GID | window UID GID N FENCE TIMEOUT_MS | storm UID SECS WORKERS PROGRAM"
        ),
    }
}
