# A fork bomb by alice stops at pids.max; bob logs in and works meanwhile; pids.events
# counts the refusals.
vm_user_file alice <<'EOT'
"pids.max" = 64
EOT
vm_login alice true >/dev/null || fail "alice cannot log in"
ucg=$(user_cg alice)
assert_file_eq "$ucg/pids.max" 64
# Where the kernel counts a refused fork: in the cgroup whose limit refused it (kernel 6.9+)
# or in the forking task's own cgroup, the session leaf (Debian 12's 6.1). Sum the subtree.
pids_max_events() {
    vm_root "cat '$ucg/pids.events' '$ucg'/*/pids.events 2>/dev/null | awk '\$1 == \"max\" {n += \$2} END {print n + 0}'"
}
before=$(pids_max_events)

step "the fork bomb (detached from the ssh session, killed through cgroup.kill later)"
vm_login alice "setsid bash -c ':(){ :|:& };:' </dev/null >/dev/null 2>&1 & sleep 1; true" >/dev/null || true
sleep 10
cur=$(cgread "$ucg/pids.current")
tlog "pids.current of alice during the bomb: $cur"
((cur <= 64)) || fail "pids.current $cur is above pids.max 64"
((cur >= 40)) || fail "pids.current is only $cur: the bomb did not run (expected it to reach pids.max 64)"
after=$(pids_max_events)
((after > before)) || fail "pids.events max did not increase ($before -> $after)"

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
kill_user_processes alice
sleep 1
# (the daemon's gc may already have removed the emptied cgroup)
cur=$(vm_root "cat '$ucg/pids.current' 2>/dev/null || echo 'cgroup removed'")
tlog "pids.current after cgroup.kill: $cur"
kill_user_processes bob
