# A lock a customer's own stopped process holds stalls nobody else (Debian 12's 6.1 counts
# refused forks in the forking leaf, so every logout after a refused fork carries the leaf's
# counts to the user's record under a lock): with alice's carry lock held by a process that
# she stopped (as she can stop her own `su` while it closes a session), bob's logouts and the
# daemon's reaping go on at once, and alice's own logout waits half a second at most.
# The daemon reaps and carries too (an earlier scenario may have stopped it).
require_daemon
vm_user_file alice <<'EOT'
"pids.max" = 24
EOT
vm_user_file bob <<'EOT'
"pids.max" = 24
EOT
# A login's command that forks until pids.max refuses, then ends with all it started. Under
# sh: bash retries a refused fork with growing sleeps (minutes), dash stops at the first
# refusal; its EXIT trap (builtins only: no fork left) kills the whole process group.
refused_forks="exec sh -c 'trap \"kill 0\" EXIT; i=0; while [ \$i -lt 40 ]; do sleep 30 </dev/null >/dev/null 2>&1 & i=\$((i + 1)); done'"
vm_login alice true >/dev/null || fail "alice cannot log in"
vm_login bob true >/dev/null || fail "bob cannot log in"

step "alice's carry lock, held by a process of hers (real uid alice, like su) that she stops"
lock=/run/pam_cgroup/carry-alice.lock
vm_root "install -d -m 700 /run/pam_cgroup; [ -e $lock ] || install -m 600 /dev/null $lock" >/dev/null
vm_root "setpriv --ruid 2001 flock $lock sleep 600 >/dev/null 2>&1 & echo \$! > /run/pamcg-s26-holder" >/dev/null
holder=$(vm_root "cat /run/pamcg-s26-holder")
POLL_EVERY=0.5 wait_until 10 vm_root "grep -q FLOCK /proc/locks && ! flock -n $lock true" >/dev/null 2>&1 ||
    fail "the holder did not take $lock"
vm_login alice "kill -STOP $holder" >/dev/null || fail "alice cannot stop her own process $holder"

step "bob's logouts after refused forks: quick, and his counts carried"
t0=$SECONDS
vm_login bob "$refused_forks" >/dev/null || true
vm_login bob "$refused_forks" >/dev/null || true
dt=$((SECONDS - t0))
tlog "bob's two logins with refused forks took $dt s"
((dt < 60)) || fail "bob's logins and logouts took $dt s while alice's lock was held"
shown=$(vm_root "cgroupctl stats --user bob --json" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["pids_events_max"])') \
    || fail "cgroupctl stats --user bob failed"
tlog "bob's refused forks in cgroupctl stats: $shown"
((shown > 0)) || fail "bob's refused forks were not counted ($shown): his leaves' counts were not carried"
left=$(wait_until 20 matching '' vm_root "ls -d '$(user_cg bob)'/session-* 2>/dev/null || true") ||
    fail "bob's leaves were not removed: $left"

step "alice's own logout waits at most the carry lock's bound"
t0=$SECONDS
vm_login alice "$refused_forks" >/dev/null || true
dt=$((SECONDS - t0))
tlog "alice's login with refused forks, behind her own held lock, took $dt s"
((dt < 30)) || fail "alice's logout behind her own stopped lock holder took $dt s"

vm_root "pkill -KILL -P $holder; kill -KILL $holder; rm -f /run/pamcg-s26-holder; true" >/dev/null
kill_user_processes alice
kill_user_processes bob
