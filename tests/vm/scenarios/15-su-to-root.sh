# `sudo` to root from inside alice's confined session does not leave root's shell in
# alice's cgroup with alice's limits.
vm_write /etc/sudoers.d/pamcg-alice 440 <<<'alice ALL=(ALL) NOPASSWD: ALL'
vm_login alice "sudo -n bash -c 'exec -a pamcg-s15-root sleep 120' </dev/null >/dev/null 2>&1 &" >/dev/null \
    || fail "alice's login failed"
pr=$(wait_tagged pamcg-s15-root)
assert_eq "uid of the sudo'd process" "$(vm_root "stat -c %u /proc/$pr")" 0
cg=$(assert_not_confined "$pr" "root's shell from alice's sudo")
[[ $cg == "$VM_TREE_ROOT"/* ]] || tlog "note: the unconfined leaf $cg is outside the tree root"
vm_root "pkill -f '^pamcg-s15-root' || true; rm -f /etc/sudoers.d/pamcg-alice" >/dev/null
kill_user_processes alice
