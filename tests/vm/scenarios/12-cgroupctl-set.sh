# `cgroupctl set alice memory.max=...` applies live to her running session.
require_cgroupctl_verb set
vm_login_bg alice "exec -a pamcg-s12 sleep 120" >/dev/null
pa=$(wait_tagged pamcg-s12)
leaf=$(assert_session_leaf "$pa" alice "alice's session")
assert_file_eq "$(user_cg alice)/memory.max" $((384 * 1024 * 1024))
vm_root "cgroupctl set alice memory.max=200M" >/dev/null || fail "cgroupctl set alice memory.max=200M failed"
assert_file_eq "$(user_cg alice)/memory.max" $((200 * 1024 * 1024))
vm_root "cgroupctl set alice pids.max=77" >/dev/null || fail "cgroupctl set alice pids.max=77 failed"
assert_file_eq "$(user_cg alice)/pids.max" 77
assert_eq "alice's session leaf after the change" "$(cgroup_of "$pa")" "$leaf"
kill_user_processes alice
