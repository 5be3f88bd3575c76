# Fault events (issue 14) with real controllers: an OOM kill, a fork bomb at pids.max and a
# CPU hog each give one event of the right kind promptly after the kernel's counter moved,
# with a snapshot that names the guilty process (for the OOM kill: the killed process, from
# the kernel's log); `cgroupctl events --json` still lists them after the daemon restarts;
# `cgroupctl me` shows alice hers, and bob nothing of hers. bob, a customer with a shell,
# removes a sub-cgroup of his own that counted refused forks: on Debian 12, where the kernel
# counts them where they happen and the daemon sums bob's subtree, the sum drops; that is no
# event (it was one, repeating his old count, each time he did it).
[[ $VM_INSTALL_MODE == deb* ]] || fail "feature missing: the unit comes with the .deb ($VM_INSTALL_MODE)"
require_cgroupctl_verb events
require_cgroupctl_verb me
kill_user_processes alice
kill_user_processes bob
# One kind of one user is recorded at most every repeat_after (60 s): a scenario run just
# before this one may have had alice's events recorded (05's and 13's OOM kills, 19's refused
# forks), and that window would fold this scenario's events into one up to a minute later.
# So this waits until her newest event is over a minute old (again if a folded one came
# meanwhile). Not a daemon restart: on Debian 12 (systemd 252) that fails with 219/CGROUP while
# other scenarios' sessions keep tree/ populated (debian/pam-cgroup.service says why).
for _ in 1 2 3; do
    newest=$(vm_root "cgroupctl events --json --user alice | python3 -c '
import json, sys
print(max([json.loads(l)[\"time_epoch\"] for l in sys.stdin if l.strip()] or [0]))'") \
        || fail "cgroupctl events --json --user alice failed"
    quiet=$((newest + 62 - $(vm_root "date +%s")))
    ((quiet > 0)) || break
    tlog "alice's newest event is $((62 - quiet)) s old: waiting ${quiet} s for repeat_after's window to close"
    sleep "$quiet"
done
vm_user_file alice <<'EOT'
"memory.max" = "96M"
"pids.max" = 64
EOT
# bob's logins below must not hit a limit of their own: at the fixture's cpu.max = 100% the
# systemd --user his login starts (1.2 s of CPU under TCG, several threads at once) was
# throttled in 7 of 10 periods on Debian 13, a real cpu_throttled event of bob's that the
# check "no fault of bob's since alice's began" then counted.
vm_user_file bob <<'EOT'
"cpu.max" = "max"
EOT
require_daemon
vm_login alice true >/dev/null || fail "alice cannot log in"
ucg=$(user_cg alice)
assert_file_eq "$ucg/pids.max" 64
start=$(vm_root "date +%s")

# s20-wait.py KIND DIR FILE KEY: started before the hog; waits (50 ms polls) until the
# kernel's counter (KEY of FILE summed over DIR and its descendants: Debian 12's 6.1 counts a
# refused fork in the forking task's own cgroup) passes its value at the start, then until
# `cgroupctl events` lists a KIND event of alice since the start; prints the event's lag
# after the counter moved, and the event.
vm_write /tmp/s20-wait.py 644 <<PY
import datetime, json, os, subprocess, sys, time
kind, top, name, key = sys.argv[1:5]
def counter():
    total = 0
    for d, _, files in os.walk(top):
        if name in files:
            try:
                for line in open(os.path.join(d, name)):
                    k, v = line.split()[:2]
                    if k == key:
                        total += int(v)
            except OSError:
                pass
    return total
base = counter()
print(json.dumps({"base": base}), file=sys.stderr)
deadline = time.time() + 100
while counter() <= base:
    if time.time() > deadline:
        print(json.dumps({"error": "the counter never moved"})); sys.exit(0)
    time.sleep(0.05)
moved_ms = int(time.time() * 1000)
while time.time() < deadline:
    out = subprocess.run(["cgroupctl", "events", "--json", "--user", "alice", "--kind", kind,
                          "--since", "@$start"], capture_output=True, text=True).stdout
    events = [json.loads(l) for l in out.splitlines() if l.strip()]
    if events:
        e = events[0]
        # time_at: RFC 3339 UTC with milliseconds (docs/json.md).
        at = datetime.datetime.strptime(e["time_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        at_ms = int(at.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
        print(json.dumps({"lag_ms": at_ms - moved_ms, "count": len(events), "event": e}))
        sys.exit(0)
    time.sleep(0.2)
print(json.dumps({"error": "no %s event listed" % kind}))
PY
# wait_event KIND FILE KEY: starts the waiter in the background (before the hog).
wait_event() {
    vm_root "rm -f /tmp/s20-$1.json; nohup python3 /tmp/s20-wait.py $1 '$ucg' $2 $3 >/tmp/s20-$1.json 2>/tmp/s20-$1.err </dev/null &
             sleep 1" >/dev/null
}
# event_result KIND: the waiter's answer (waits for it).
event_result() {
    local r
    r=$(wait_until 110 vm_root "grep . /tmp/s20-$1.json 2>/dev/null") || true
    tlog "$1: $r"
    [[ -n $r && $r != *'"error"'* ]] || fail "$1: ${r:-the waiter never answered}"
    printf '%s\n' "$r"
}
field() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
# The daemon's goal is 2 s from the counter moving to the event (its once-a-second read of the
# counters, then a snapshot of the processes with a CPU window of 300-400 ms). This guest is
# software-emulated (TCG) on two shared cores, where an OOM event has come 2.8 s after the
# counter: the test holds the event to 10 s (a few of the daemon's rounds: an event that is
# not lost and not left for a later pass) and says when the 2 s goal was missed, a figure of
# this emulated guest rather than a pass criterion.
assert_lag() {
    local lag
    lag=$(field 'v["lag_ms"]' <<<"$2")
    ((lag <= 10000)) || fail "$1: the event came ${lag} ms after the counter moved (> 10 s)"
    if ((lag <= 2000)); then
        tlog "ok: $1 event ${lag} ms after the kernel's counter moved"
    else
        tlog "note: $1 event ${lag} ms after the kernel's counter moved (over the 2 s goal, under TCG)"
    fi
}

step "OOM kill: a memory hog above memory.max = 96M"
wait_event oom_kill memory.events oom_kill
vm_login alice "sh -c 'echo \$\$ > /tmp/s20-mem.pid; exec python3 -c \"x = [bytearray(8 << 20) for _ in range(60)]\"'" >/dev/null 2>&1 || true
r=$(event_result oom_kill)
assert_lag oom_kill "$r"
hog=$(vm_root "cat /tmp/s20-mem.pid")
killed=$(field '" ".join("%s:%s" % (k["pid"], k["comm"]) for k in v["event"].get("killed", []))' <<<"$r")
[[ " $killed " == *" $hog:python3 "* ]] || fail "the oom_kill event does not name the killed hog $hog (killed: '$killed')"
assert_eq "the oom_kill event's delta" "$(field 'v["event"]["delta"]' <<<"$r")" 1
assert_eq "the oom_kill event's limit (memory.max)" "$(field 'v["event"]["limit"]' <<<"$r")" 100663296

step "fork bomb at pids.max = 64"
wait_event pids_max pids.events max
vm_login alice "setsid bash -c ':(){ :|:& };:' </dev/null >/dev/null 2>&1 & sleep 1; true" >/dev/null || true
r=$(event_result pids_max)
kill_user_processes alice
assert_lag pids_max "$r"
bomb=$(field 'sum(1 for p in v["event"]["processes"] if ":|:&" in p["cmdline"])' <<<"$r")
((bomb >= 1)) || fail "the pids_max snapshot shows no process of the bomb: $r"
assert_eq "the pids_max event's limit" "$(field 'v["event"]["limit"]' <<<"$r")" 64

step "CPU hog throttled by cpu.max = 20%"
# The loop starts unthrottled (cpu.max max) and is throttled by a live `cgroupctl set`: the
# scenario's logins (sshd's key exchange under TCG) are never what is throttled.
vm_root "cgroupctl set alice cpu.max=max" >/dev/null || fail "cgroupctl set alice cpu.max=max failed"
vm_login alice "setsid bash -c 'exec -a pamcg-s20-cpu bash -c \"while :; do :; done\"' </dev/null >/dev/null 2>&1 & true" >/dev/null
wait_tagged pamcg-s20-cpu >/dev/null
sleep 2
wait_event cpu_throttled cpu.stat nr_throttled
vm_root "cgroupctl set alice cpu.max=20%" >/dev/null || fail "cgroupctl set alice cpu.max=20% failed"
assert_file_eq "$ucg/cpu.max" "20000 100000"
r=$(event_result cpu_throttled)
kill_user_processes alice
first=$(field 'v["event"]["processes"][0]["cmdline"]' <<<"$r")
[[ $first == pamcg-s20-cpu* ]] || fail "the busiest process of the cpu_throttled snapshot is '$first', not the hog"
# The throttled counter moves in the hog's first period; the event needs a sample above 50 %:
# at most two samples (2 s) later, plus the snapshot.
assert_lag cpu_throttled "$r"

step "one event of each kind (repeats within repeat_after are folded into the next)"
list=$(vm_root "cgroupctl events --json --user alice --since @$start")
for k in oom_kill pids_max cpu_throttled; do
    n=$(grep -c "\"kind\":\"$k\"" <<<"$list" || true)
    assert_eq "$k events of alice since the start" "$n" 1
done

step "the history survives a daemon restart"
kill_user_processes alice
kill_user_processes bob
vm_root "systemctl restart pam-cgroup.service" >/dev/null \
    || fail "restart failed: $(vm_root 'systemctl --no-pager status pam-cgroup.service 2>&1 | tail -n 5' || true)"
after=$(vm_root "cgroupctl events --json --user alice --since @$start")
for k in oom_kill pids_max cpu_throttled; do
    grep -q "\"kind\":\"$k\"" <<<"$after" || fail "no $k event after the restart: $after"
done
# The events are in the history database, root's alone; no ring files any more.
assert_eq "the history database's mode and owner" \
    "$(vm_root "stat -c '%a %U' /var/lib/pam_cgroup/history.db")" "600 root"
vm_root "test ! -e /var/lib/pam_cgroup/events" || fail "an event ring directory exists"

step "cgroupctl me: alice sees hers; bob nothing of alice's"
# cgroupctl is in /usr/sbin, which is not in a customer's PATH.
vm_root "test -S /run/pam_cgroup-me/me.sock" || fail "no me socket"
me=$(vm_login alice "/usr/sbin/cgroupctl me --json") || fail "cgroupctl me failed for alice"
assert_eq "me's user for alice" "$(field 'v["user"]' <<<"$me")" alice
kinds=$(field '" ".join(sorted(set(e["kind"] for e in v["events"])))' <<<"$me")
for k in oom_kill pids_max cpu_throttled; do
    [[ " $kinds " == *" $k "* ]] || fail "alice's cgroupctl me lacks her $k event: '$kinds'"
done
mekilled=$(field '" ".join(str(k["pid"]) for e in v["events"] for k in e.get("killed", []))' <<<"$me")
[[ " $mekilled " == *" $hog "* ]] || fail "alice's cgroupctl me does not name her killed hog $hog"
sleep 1.2
bme=$(vm_login bob "/usr/sbin/cgroupctl me --json") || fail "cgroupctl me failed for bob"
assert_eq "me's user for bob" "$(field 'v["user"]' <<<"$bme")" bob
[[ $bme != *alice* && $bme != *":|:&"* && $bme != *pamcg-s20* && $bme != *"\"pid\":$hog,"* && $bme != *"\"pid\": $hog,"* ]] \
    || fail "bob's cgroupctl me shows something of alice's: $bme"
# bob may have faults of his own from earlier scenarios (the daemon records from boot): every
# event he is shown is his, with only his own processes, and none is since alice's start.
assert_eq "events of others, or processes of other uids, in bob's view" \
    "$(field 'sum(1 for e in v["events"] if e["user"] != "bob" or any(p["uid"] != v["uid"] for p in e.get("processes", [])))' <<<"$bme")" 0
# (bob's own `fenced` events are his: the safety net moves his sshd's unprivileged child, which
# sshd forks before the PAM session opens, at each of his logins.)
assert_eq "bob's faults since alice's faults began" \
    "$(field "sum(1 for e in v['events'] if e['time_epoch'] >= $start and e['kind'] != 'fenced')" <<<"$bme")" 0
r=$(vm_login bob "/usr/sbin/cgroupctl events --json 2>&1; echo rc=\$?") || true
[[ $r == *"root only"*"rc="[1-9]* ]] || fail "bob ran cgroupctl events: $r"

step "bob removes a sub-cgroup of his own that counted refused forks: no event"
# bob, a customer with a shell, in a session he keeps open (a dead session's leaf is trimmed
# by the daemon, its counts carried first): /tmp/s20-bob.py makes s20a and s20b in his leaf
# with pids.max = 1 (pids enabled in the leaf's subtree_control, which is his), moves itself
# into each and tries forks, all refused (4, then 12); then, each when root's flag file
# appears, removes s20a (empty, 4 refused forks counted in it), makes s20c and has 3 forks
# refused there, and ends. On Debian 12 the daemon sums his subtree, which drops by 4 at the
# removal: no fault, and the 3 that follow are 3.
vm_write /tmp/s20-bob.py 644 <<'PY'
import os, sys, time
out = open("/tmp/s20-bob.out", "w", buffering=1)
mount = [l.split()[4] for l in open("/proc/self/mountinfo") if " - cgroup2 " in l][0]
rel = [l.split("::", 1)[1].strip() for l in open("/proc/self/cgroup") if l.startswith("0::")][0]
top = os.path.dirname(mount + rel)
def refuse(name, forks):
    d = os.path.join(top, name)
    os.mkdir(d)
    with open(d + "/pids.max", "w") as f:
        f.write("1")
    with open(d + "/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
    n = 0
    for _ in range(forks):
        try:
            pid = os.fork()
        except BlockingIOError:
            n += 1
            continue
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return n
def wait_for(flag):
    deadline = time.time() + 300
    while not os.path.exists(flag):
        if time.time() > deadline:
            sys.exit(1)
        time.sleep(0.2)
with open(top + "/cgroup.subtree_control", "w") as f:
    f.write("+pids")
print("made", top, refuse("s20a", 4) + refuse("s20b", 12), file=out)
wait_for("/tmp/s20-bob.rm")
os.rmdir(os.path.join(top, "s20a"))
print("removed", file=out)
wait_for("/tmp/s20-bob.more")
print("refused", refuse("s20c", 3), file=out)
wait_for("/tmp/s20-bob.end")
PY
vm_root "rm -f /tmp/s20-bob.out /tmp/s20-bob.rm /tmp/s20-bob.more /tmp/s20-bob.end" >/dev/null
# bob_pids_deltas SINCE: the deltas of bob's pids_max events since SINCE (epoch seconds).
bob_pids_deltas() {
    vm_root "cgroupctl events --json --user bob --kind pids_max --since @$1" \
        | python3 -c 'import json, sys; print(" ".join(str(json.loads(l)["delta"]) for l in sys.stdin if l.strip()))'
}
# bob_pids_sum_reaches SINCE N: bob's pids_max deltas since SINCE add up to N or more.
bob_pids_sum_reaches() {
    local d
    d=$(bob_pids_deltas "$1") || return 1
    (( $(tr ' ' '+' <<<"${d:-0}") >= $2 ))
}
# bob_quiet: waits until bob's newest pids_max event is over repeat_after (60 s) old, so that
# the next one is reported at once.
bob_quiet() {
    local newest quiet
    for _ in 1 2; do
        newest=$(vm_root "cgroupctl events --json --user bob --kind pids_max | python3 -c '
import json, sys
print(max([json.loads(l)[\"time_epoch\"] for l in sys.stdin if l.strip()] or [0]))'") \
            || fail "cgroupctl events --json --user bob failed"
        quiet=$((newest + 62 - $(vm_root "date +%s")))
        ((quiet > 0)) || return 0
        tlog "bob's newest pids_max event is $((62 - quiet)) s old: waiting ${quiet} s"
        sleep "$quiet"
    done
}
# agent_says PATTERN: the line of bob's script that matches, once it is written.
agent_says() {
    wait_until 60 vm_root "grep '$1' /tmp/s20-bob.out" || fail "bob's script did not say '$1': $(vm_root 'cat /tmp/s20-bob.out' || true)"
}
bob_quiet
bob0=$(vm_root "date +%s")
vm_login_bg bob "python3 /tmp/s20-bob.py" >/dev/null
made=$(agent_says '^made ')
assert_eq "forks refused to bob in s20a and s20b" "${made##* }" 16
# Reported at once, or in two events a repeat_after apart when the forks straddled a pass.
wait_until 80 bob_pids_sum_reaches "$bob0" 16 >/dev/null \
    || fail "bob's refused forks were not reported: pids_max deltas '$(bob_pids_deltas "$bob0")'"
# A false event would be held back while bob's last one is younger than repeat_after.
bob_quiet
bob1=$(vm_root "date +%s")
vm_root "touch /tmp/s20-bob.rm" >/dev/null
agent_says '^removed' >/dev/null
# The daemon's passes are a second apart: three of them see the drop.
sleep 3
vm_root "touch /tmp/s20-bob.more" >/dev/null
refused=$(agent_says '^refused ')
assert_eq "forks refused to bob in s20c" "${refused##* }" 3
# Reported at once, or in two events a repeat_after apart when the forks straddled a pass (as
# above: one CI run saw "1", its other 2 held back): what must hold is that the removal made
# no event and the deltas since add up to the 3 refused forks.
wait_until 80 bob_pids_sum_reaches "$bob1" 3 >/dev/null || true
sleep 2
deltas=$(bob_pids_deltas "$bob1")
sum=${deltas:-0}
assert_eq "the sum of bob's pids_max deltas since he removed s20a ($deltas)" "$((${sum// /+}))" 3
vm_root "touch /tmp/s20-bob.end" >/dev/null
kill_user_processes bob
vm_root "rm -f /tmp/s20-bob.py /tmp/s20-bob.out /tmp/s20-bob.rm /tmp/s20-bob.more /tmp/s20-bob.end" >/dev/null
