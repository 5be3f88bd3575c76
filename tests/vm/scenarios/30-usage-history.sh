# The usage history (issue 28) with real controllers: the daemon samples every user cgroup
# every [history] interval (2 s here). Customer hog30 runs a CPU hog (a busy loop) and a
# memory hog that allocates past its memory.max = 48M again and again (each attempt OOM-killed);
# customer calm30 only holds a sleeping session. Then `cgroupctl report --by usage` (by CPU)
# and `--by faults` name hog30 first; `report --user hog30` has its rows; the human tables
# print; calm30's `cgroupctl me --history` has calm30's rows and nothing of hog30 (neither name
# nor uid, none of its limit hits); a customer cannot run `report` or read the database.
[[ $VM_INSTALL_MODE == deb* ]] || fail "feature missing: the daemon's unit comes with the .deb ($VM_INSTALL_MODE)"
require_cgroupctl_verb report
require_cgroupctl_verb me
tag=pamcg-s30
A=hog30 A_ID=3031 B=calm30 B_ID=3032
field() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

step "the scenario's customers $A and $B; $A's memory.max = 48M"
make_customers "$A:$A_ID" "$B:$B_ID"
vm_user_file "$A" <<'EOT'
"memory.max" = "48M"
EOT
# calm30 cannot hit a limit of its own: at the fixture's cpu.max = 100% its ssh login's
# processes, running at once on two CPUs, were throttled a few periods (seen: 4). Every limit
# hit its answer shows would then be someone else's.
vm_user_file "$B" <<'EOT'
"cpu.max" = "max"
EOT
# The hogs, started in hog30's session and left running there (setsid: they outlive the ssh
# command, in its leaf). The memory hog's python is the biggest process of the cgroup, so it is
# what the OOM killer picks each time; the loop starts it again.
vm_write /tmp/s30-hogs.sh 755 <<EOF
#!/bin/bash
setsid bash -c 'exec -a $tag-cpu bash -c "while :; do :; done"' </dev/null >/dev/null 2>&1 &
setsid bash -c 'exec -a $tag-mem bash -c "while :; do python3 -c \"x = [bytearray(8 << 20) for _ in range(12)]\"; sleep 1; done"' </dev/null >/dev/null 2>&1 &
EOF

step "[history] interval = 2, reloaded (SIGHUP): the daemon samples at the new interval at once"
# A reload, not a restart: on systemd < 254 a restart fails (219/CGROUP) while any customer's
# session populates the tree (pam_cgroup(8)), and a reload is what an administrator does.
require_daemon
cursor=$(journal_cursor)
vm_write_config '
[history]
interval = 2'
reload_daemon() {
    vm_root 'kill -HUP "$(systemctl show -p MainPID --value pam-cgroup.service)"' >/dev/null
}
restore_history_config() {
    vm_write_config
    reload_daemon || true
}
reload_daemon || fail "cannot signal the daemon"
wait_until 30 matching '*a pass every 2 s*' journal_since "$cursor" >/dev/null ||
    fail "the daemon did not take the new interval: $(journal_since "$cursor" | grep cgroupctl | tail -n 5)"
start=$(vm_root "date +%s")

step "$B holds a quiet session; $A runs the hogs"
vm_login_bg "$B" "exec -a $tag-calm sleep 600" >/dev/null
pb=$(wait_tagged "$tag-calm" 60)
assert_session_leaf "$pb" "$B" "$B's session" >/dev/null
vm_login "$A" "/tmp/s30-hogs.sh" >/dev/null || fail "$A cannot log in"
pc=$(wait_tagged "$tag-cpu")
assert_session_leaf "$pc" "$A" "$A's CPU hog" >/dev/null
wait_tagged "$tag-mem" >/dev/null
ucg=$(user_cg "$A")
assert_file_eq "$ucg/memory.max" $((48 << 20))
assert_file_eq "$(user_cg "$B")/cpu.max" "max 100000"

# a_history: hog30's line of the report over the scenario's time, once it holds enough: 15
# samples (30 s at interval 2), 60 s of CPU (more than a fixture customer gathers in a whole
# suite's logins and short hogs, all within the hour the report below reads), memory.max hit
# and OOM kills more than twice each.
a_history() {
    local r
    r=$(vm_root "cgroupctl report --from @$start --user $A --json") || return 1
    printf '%s\n' "$r"
    python3 -c '
import json, sys
u = json.load(sys.stdin)["users"]
sys.exit(0 if u and u[0]["samples"] >= 15 and (u[0]["cpu_seconds"] or 0) >= 60
         and u[0]["faults"]["memory_max"] > 2 and u[0]["faults"]["oom_kill"] > 2 else 1)' <<<"$r"
}
step "the daemon records the hogs: wait for 15 samples, 60 s of CPU and repeated limit hits of $A"
got=$(POLL_EVERY=3 wait_until 170 a_history) \
    || fail "the history of $A did not reach 15 samples, 60 CPU seconds, repeated memory.max hits and OOM kills: $got ($(vm_root "cat '$ucg/memory.events'" | tr '\n' ' '))"
tlog "$A so far: $got"
kill_user_processes "$A"

step "report --by usage --order-by cpu: $A first"
usage=$(vm_root "cgroupctl report --from @$start --by usage --order-by cpu --json") || fail "report --by usage failed"
assert_eq "the first user of report --by usage --order-by cpu" "$(field 'v["users"][0]["user"]' <<<"$usage")" "$A"
assert_eq "by" "$(field 'v["by"]' <<<"$usage")" usage
a_cpu=$(field '[u["cpu_seconds"] for u in v["users"] if u["user"] == "'"$A"'"][0]' <<<"$usage")
b_cpu=$(field '[u["cpu_seconds"] for u in v["users"] if u["user"] == "'"$B"'"][0]' <<<"$usage") \
    || fail "$B (sampled while its session was open) is not in report --by usage: $usage"
tlog "cpu_seconds: $A $a_cpu, $B $b_cpu"
python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if a >= 10 and a > 10 * b else 1)" "$a_cpu" "$b_cpu" \
    || fail "$A's busy loop counts $a_cpu CPU seconds, $B's quiet session $b_cpu: not what ran"
assert_eq "$A's uid in the report" "$(field '[u["uid"] for u in v["users"] if u["user"] == "'"$A"'"][0]' <<<"$usage")" "$A_ID"
assert_eq "users in descending CPU order" \
    "$(field 'all(a["cpu_seconds"] >= b["cpu_seconds"] for a, b in zip(v["users"], v["users"][1:]))' <<<"$usage")" True

step "report --by faults: $A first with its limit hits; $B (none) left out"
faults=$(vm_root "cgroupctl report --from @$start --by faults --json") || fail "report --by faults failed"
assert_eq "the first user of report --by faults" "$(field 'v["users"][0]["user"]' <<<"$faults")" "$A"
a_faults=$(field 'v["users"][0]["faults_total"]' <<<"$faults")
((a_faults > 0)) || fail "$A's faults_total is $a_faults"
tlog "$A's faults: $(field 'v["users"][0]["faults"]' <<<"$faults")"
assert_eq "$B in report --by faults" "$(field 'sum(1 for u in v["users"] if u["user"] == "'"$B"'")' <<<"$faults")" 0
assert_eq "users without a hit in report --by faults" "$(field 'sum(1 for u in v["users"] if u["faults_total"] == 0)' <<<"$faults")" 0

step "report --user $A: its rows only"
mine=$(vm_root "cgroupctl report --from @$start --user $A --json") || fail "report --user $A failed"
assert_eq "users of report --user $A" "$(field '[u["user"] for u in v["users"]]' <<<"$mine")" "['$A']"
samples=$(field 'v["users"][0]["samples"]' <<<"$mine")
((samples >= 15)) || fail "report --user $A has $samples samples"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)" \
    "$(field 'v["users"][0]["cpu_seconds"]' <<<"$mine")" "$a_cpu" \
    || fail "report --user $A counts less CPU than the same period's report of everyone: $mine"

step "the human tables print"
text=$(vm_root "cgroupctl report --from @$start") || fail "cgroupctl report (table) failed"
tlog "report: $text"
grep -E "^USER[[:space:]]+CPU" <<<"$text" >/dev/null || fail "the usage table has no header: $text"
grep -E "^$A[[:space:]]" <<<"$text" >/dev/null || fail "the usage table has no line of $A: $text"
text=$(vm_root "cgroupctl report --from @$start --by faults --utc") || fail "cgroupctl report --by faults (table) failed"
grep -E "^$A[[:space:]]" <<<"$text" >/dev/null || fail "the faults table has no line of $A: $text"

step "$B's me --history: its own rows, nothing of $A"
vm_root "test -S /run/pam_cgroup-me/me.sock" || fail "no me socket"
bme=$(vm_login "$B" "/usr/sbin/cgroupctl me --history --json") || fail "cgroupctl me --history failed for $B"
assert_eq "me --history's user for $B" "$(field 'v["user"]' <<<"$bme")" "$B"
rows=$(field 'len(v["rows"])' <<<"$bme")
((rows > 0)) || fail "$B's me --history has no rows: $bme"
[[ $bme != *"$A"* ]] || fail "$B's me --history names $A: $bme"
# uids: every "user" and "uid" anywhere in the answer is $B's (A's uid may appear as digits
# of a byte count, so the answer is walked rather than searched).
others_in() {
    python3 -c '
import json, sys
name, uid = sys.argv[1], int(sys.argv[2])
def walk(x):
    if isinstance(x, dict):
        n = sum(1 for k, mine in (("user", name), ("uid", uid)) if k in x and x[k] != mine)
        return n + sum(walk(y) for y in x.values())
    if isinstance(x, list):
        return sum(walk(y) for y in x)
    return 0
print(walk(json.load(sys.stdin)))' "$B" "$B_ID"
}
assert_eq "names or uids of others in $B's answer" "$(others_in <<<"$bme")" 0
assert_eq "limit hits in $B's rows ($A's are not $B's)" "$(field 'sum(r["limit_hits"] or 0 for r in v["rows"])' <<<"$bme")" 0
text=$(vm_login "$B" "/usr/sbin/cgroupctl me --history") || fail "cgroupctl me --history (table) failed for $B"
tlog "me --history of $B: $text"
[[ $text != *"$A"* ]] || fail "$B's me --history table names $A"

step "a customer runs no report and reads no database"
r=$(vm_login "$B" "/usr/sbin/cgroupctl report --period 1h 2>&1; echo rc=\$?") || true
[[ $r == *"root only"*"rc="[1-9]* && $r != *"$A"* ]] || fail "$B ran cgroupctl report: $r"
db_mode=$(vm_root "stat -c '%a %U' /var/lib/pam_cgroup/history.db")
assert_eq "the database's mode and owner" "$db_mode" "600 root"
r=$(vm_login "$B" "head -c 16 /var/lib/pam_cgroup/history.db >/dev/null 2>&1; echo rc=\$?") || true
[[ $r == *"rc="[1-9]* ]] || fail "$B read the history database: $r"

step "cleanup: the customers and the interval go"
kill_user_processes "$B"
vm_root "userdel -f -r $A; userdel -f -r $B; groupdel $A 2>/dev/null; groupdel $B 2>/dev/null
         rm -f /tmp/s30-hogs.sh /etc/pam_cgroup/users/$A.toml /etc/pam_cgroup/users/$B.toml; true" >/dev/null
restore_history_config
