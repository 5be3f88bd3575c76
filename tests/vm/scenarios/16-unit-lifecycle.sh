# The packaged unit: Delegate=yes, the tree in a child of its own cgroup, the daemon in its
# supervisor/ leaf; `systemctl daemon-reload` leaves the tree and the sessions alone; `stop`
# ends the daemon cleanly and never the customers' sessions.
[[ $VM_INSTALL_MODE == deb* ]] || fail "feature missing: the unit comes with the .deb ($VM_INSTALL_MODE)"
step "the unit is active with Delegate=yes"
[[ $(vm_root "systemctl is-active pam-cgroup.service" || true) == active ]] \
    || fail "pam-cgroup.service is not active: $(vm_root 'systemctl --no-pager status pam-cgroup.service 2>&1 | tail -n 5' || true)"
[[ $(vm_root "systemctl show -p Delegate --value pam-cgroup.service") == yes ]] || fail "the unit does not have Delegate=yes"
unit_cg=$(vm_root "systemctl show -p ControlGroup --value pam-cgroup.service")
[[ $VM_TREE_ROOT == "$(cg_mount)$unit_cg/"* ]] || fail "the tree $VM_TREE_ROOT is not below the unit's cgroup $unit_cg"
main=$(vm_root "systemctl show -p MainPID --value pam-cgroup.service")
[[ $(cgroup_of "$main") == "$(cg_mount)$unit_cg/supervisor" ]] \
    || fail "the daemon ($main) runs in $(cgroup_of "$main"), not in $unit_cg/supervisor"
[[ -z $(vm_root "cat '$(cg_mount)$unit_cg/cgroup.procs'") ]] || fail "the unit's own cgroup holds processes"
controllers=$(vm_root "cat '$VM_TREE_ROOT/users/cgroup.controllers'")
for c in cpu memory pids io; do
    grep -qw "$c" <<<"$controllers" || fail "controller $c is not available to users/ (have: $controllers)"
done

step "a session of alice survives daemon-reload, in the same leaf, tree untouched"
vm_login_bg alice "exec -a pamcg-s16 sleep 300" >/dev/null
pa=$(wait_tagged pamcg-s16)
leaf=$(assert_session_leaf "$pa" alice "alice's session")
before=$(vm_root "find '$VM_TREE_ROOT' -type d | sort; cat '$(user_cg alice)/memory.max'")
vm_root "systemctl daemon-reload" >/dev/null
sleep 2
after=$(vm_root "find '$VM_TREE_ROOT' -type d | sort; cat '$(user_cg alice)/memory.max'")
[[ $before == "$after" ]] || fail "daemon-reload changed the tree: $(diff <(echo "$before") <(echo "$after") | head -n 5)"
[[ $(cgroup_of "$pa") == "$leaf" ]] || fail "alice's session moved during daemon-reload: $(cgroup_of "$pa")"
[[ $(vm_root "systemctl show -p MainPID --value pam-cgroup.service") == "$main" ]] || fail "daemon-reload restarted the daemon"

step "stop: the daemon exits cleanly, alice's session keeps running in its leaf"
vm_root "systemctl stop pam-cgroup.service" >/dev/null
state=$(vm_root "systemctl show -p ActiveState --value pam-cgroup.service")
result=$(vm_root "systemctl show -p Result --value pam-cgroup.service")
[[ $state == inactive && $result == success ]] || fail "after stop: state $state, result $result"
vm_root "kill -0 $pa" || fail "stopping the unit killed alice's session"
[[ $(cgroup_of "$pa") == "$leaf" ]] || fail "stopping the unit moved alice's session: $(cgroup_of "$pa")"
vm_root "kill -0 $main 2>/dev/null" && fail "the daemon $main still runs after stop"
step "logins keep working without the unit"
out=$(vm_login bob "grep ^0:: /proc/self/cgroup") || fail "bob's login failed with the unit stopped"
[[ $out =~ /users/bob\.[0-9a-f]{16}/session- ]] || fail "bob's login was not confined with the unit stopped: $out"
kill_user_processes alice
