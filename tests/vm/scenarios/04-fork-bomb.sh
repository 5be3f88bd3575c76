# A fork bomb by alice stops at pids.max; bob logs in and works meanwhile; pids.events
# counts the refusals, and `cgroupctl stats` / its Prometheus output show them on Debian 12's
# kernel (6.1: counted in the forking leaf), also after the leaf is gone (issue 18).
vm_user_file alice <<'EOT'
"pids.max" = 64
EOT
vm_login alice true >/dev/null || fail "alice cannot log in"
ucg=$(user_cg alice)
assert_file_eq "$ucg/pids.max" 64
before=$(pids_max_refusals "$ucg")

step "the fork bomb (detached from the ssh session, killed through cgroup.kill later)"
vm_login alice "setsid bash -c ':(){ :|:& };:' </dev/null >/dev/null 2>&1 & sleep 1; true" >/dev/null || true
sleep 10
cur=$(cgread "$ucg/pids.current")
tlog "pids.current of alice during the bomb: $cur"
((cur <= 64)) || fail "pids.current $cur is above pids.max 64"
((cur >= 40)) || fail "pids.current is only $cur: the bomb did not run (expected it to reach pids.max 64)"
after=$(pids_max_refusals "$ucg")
((after > before)) || fail "pids.events max did not increase ($before -> $after)"
tlog "kernel: $(vm_root "uname -r"); pids.events.local present: $(vm_root "test -e '$ucg/pids.events.local' && echo yes || echo no")"

# cgroupctl's per-user count of refused forks (JSON field pids_events_max).
stats_pids_events() {
    vm_root "cgroupctl stats --user alice --json" \
        | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v[0]["pids_events_max"])'
}
prom_pids_events() {
    vm_root "cgroupctl stats --user alice --prometheus" \
        | awk '$1 == "pam_cgroup_pids_max_events_total{user=\"alice\"}" {print $2}'
}
step "cgroupctl stats and Prometheus count the refused forks during the bomb"
shown=$(stats_pids_events) || fail "cgroupctl stats --json failed"
kernel_now=$(pids_max_refusals "$ucg")
tlog "pids_events_max in cgroupctl stats: $shown (the kernel's files summed before/after: $after/$kernel_now)"
[[ $shown =~ ^[0-9]+$ ]] || fail "pids_events_max is not a number: '$shown'"
((shown >= after && shown > 0)) || fail "cgroupctl stats shows pids_events_max $shown, the kernel counted $after refused forks"
prom=$(prom_pids_events)
tlog "pam_cgroup_pids_max_events_total{user=\"alice\"} $prom"
[[ $prom =~ ^[0-9]+$ ]] && ((prom >= after)) \
    || fail "Prometheus pam_cgroup_pids_max_events_total for alice is '$prom', the kernel counted $after"

step "bob logs in and works while the bomb runs"
vm_login_bg bob "echo \$((6 * 7)) > /tmp/bob-s04; exec -a pamcg-s04-bob sleep 120" >/dev/null
pb=$(wait_tagged pamcg-s04-bob 90)
assert_session_leaf "$pb" bob "bob's process" >/dev/null
assert_eq "file bob wrote during the bomb" "$(vm_root 'cat /tmp/bob-s04')" 42
cur=$(cgread "$ucg/pids.current")
((cur >= 40)) || fail "the bomb was no longer running while bob worked (alice's pids.current $cur)"
vm_root true >/dev/null || fail "root's master connection stopped answering"
vm_login root true >/dev/null || fail "root cannot log in during alice's fork bomb"

step "kill the bomb"
last=$(pids_max_refusals "$ucg")
kill_user_processes alice
sleep 1
# (the daemon's gc may already have removed the emptied cgroup)
cur=$(vm_root "cat '$ucg/pids.current' 2>/dev/null || echo 'cgroup removed'")
tlog "pids.current after cgroup.kill: $cur"
kill_user_processes bob

step "the count survives the removal of the bomb's leaf"
# The daemon removes emptied leaves at once; gc is the fallback if it has not yet.
# leaves_gone: true once no session leaf is left; runs gc when one is.
leaves_gone() {
    local leaves
    leaves=$(vm_root "ls -d '$ucg'/session-* 2>/dev/null || true")
    [[ -z $leaves ]] && return 0
    echo "$leaves"
    vm_root "cgroupctl gc --min-age 0" >/dev/null || true
    return 1
}
leaves=$(wait_until 20 leaves_gone) ||
    fail "alice's session leaves are still there after the bomb ended: $leaves"
kernel_left=$(pids_max_refusals "$ucg")
tlog "refused forks still in the kernel's files after the leaves went: $kernel_left (last sum with the leaf: $last)"
final=$(stats_pids_events) || fail "cgroupctl stats --json failed after the leaf went"
prom=$(prom_pids_events)
tlog "after the leaf is gone: pids_events_max $final, Prometheus $prom"
((final >= last && final > 0)) || fail "after the leaf was removed cgroupctl stats shows $final refused forks (there were $last)"
assert_eq "Prometheus pam_cgroup_pids_max_events_total after the leaf is gone" "$prom" "$final"
tlog "carried record on $ucg: $(vm_root "python3 -c \"import os; print(os.getxattr('$ucg', 'trusted.pam_cgroup.carried').decode())\" 2>&1" || true)"
