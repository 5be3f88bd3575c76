# An ssh login of a confined user lands in <tree root>/users/<user>.<tag>/session-*, with the
# limits of the user's plan (alice: group plan-pro -> profile pro; bob: the defaults).
tag=pamcg-s01
vm_login_bg alice "exec -a $tag-alice sleep 120" >/dev/null
vm_login_bg bob "exec -a $tag-bob sleep 120" >/dev/null
pa=$(wait_tagged "$tag-alice")
pb=$(wait_tagged "$tag-bob")
leaf_a=$(assert_session_leaf "$pa" alice "alice's ssh command")
leaf_b=$(assert_session_leaf "$pb" bob "bob's ssh command")
[[ $leaf_a != "$leaf_b" ]] || fail "alice and bob share the leaf $leaf_a"

step "plan limits: alice (pro) and bob (defaults)"
assert_file_eq "$(user_cg alice)/memory.max" $((384 * 1024 * 1024))
assert_file_eq "$(user_cg alice)/pids.max" 300
assert_file_eq "$(user_cg alice)/cpu.max" "150000 100000"
assert_file_eq "$(user_cg bob)/memory.max" $((256 * 1024 * 1024))
assert_file_eq "$(user_cg bob)/pids.max" 200
assert_file_eq "$(user_cg bob)/cpu.max" "100000 100000"

step "the leaf really holds the session (cgroup.procs)"
vm_root "grep -qx $pa '$leaf_a/cgroup.procs'" || fail "$leaf_a/cgroup.procs does not list $pa"

step "a per-user file overrides the plan for the next login"
vm_user_file alice <<'EOT'
"memory.max" = "300M"
EOT
vm_login alice true >/dev/null || fail "alice's second login failed"
assert_file_eq "$(user_cg alice)/memory.max" $((300 * 1024 * 1024))
kill_user_processes alice
kill_user_processes bob
