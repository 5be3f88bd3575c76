# Delegation: alice owns her cgroup directory and its delegatable files, not its resource
# files; she can make a sub-cgroup for a service and move a process there, but not raise
# her own limits.
vm_login_bg alice "exec -a pamcg-s14 sleep 120" >/dev/null
pa=$(wait_tagged pamcg-s14)
assert_session_leaf "$pa" alice "alice's session" >/dev/null
ucg=$(user_cg alice)
for f in "" /cgroup.procs /cgroup.subtree_control /cgroup.threads; do
    assert_eq "owner of $ucg$f" "$(vm_root "stat -c %U '$ucg$f'")" alice
done
for f in memory.max pids.max cpu.max cgroup.max.descendants cgroup.max.depth; do
    assert_eq "owner of $ucg/$f" "$(vm_root "stat -c %U '$ucg/$f'")" root
done
step "alice makes users/alice/web and moves a process into it"
vm_login alice "mkdir '$ucg/web' && (exec -a pamcg-s14-web sleep 120 </dev/null >/dev/null 2>&1 & echo \$! > '$ucg/web/cgroup.procs')" >/dev/null \
    || fail "alice could not make $ucg/web and move her process into it"
pw=$(wait_tagged pamcg-s14-web)
assert_eq "cgroup of alice's web process" "$(cgroup_of "$pw")" "$ucg/web"
step "alice tries to raise her own memory.max"
before=$(cgread "$ucg/memory.max")
vm_login alice "echo max > '$ucg/memory.max'" >/dev/null 2>&1 || true
assert_file_eq "$ucg/memory.max" "$before"
kill_user_processes alice
vm_root "rmdir '$ucg/web' 2>/dev/null; true" >/dev/null
