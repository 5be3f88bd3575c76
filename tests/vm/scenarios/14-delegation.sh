# Delegation under the single-writer tree: users/alice is root's (0750 root:alice, limits and
# caps root's); her session leaf is hers (0700, the files of /sys/kernel/cgroup/delegate), its
# caps and login/ (where the session's own processes start) root's. In her leaf she makes
# children, moves her processes into them, enables controllers for them and sets a child's
# memory.max below her plan; she cannot write anything of users/alice.
vm_login_bg alice "exec -a pamcg-s14 sleep 300" >/dev/null
pa=$(wait_tagged pamcg-s14)
login=$(assert_session_leaf "$pa" alice "alice's session")
leaf=${login%/login}
ucg=$(user_cg alice)
assert_eq "owner, group and mode of $ucg" "$(vm_root "stat -c '%U %G %a' '$ucg'")" "root alice 750"
assert_eq "owner and mode of $VM_TREE_ROOT/users" "$(vm_root "stat -c '%U %a' '$VM_TREE_ROOT/users'")" "root 711"
for f in cgroup.procs cgroup.subtree_control memory.max pids.max cpu.max cgroup.max.descendants cgroup.max.depth; do
    assert_eq "owner of $ucg/$f" "$(vm_root "stat -c %U '$ucg/$f'")" root
done
assert_eq "owner and mode of the leaf" "$(vm_root "stat -c '%U %a' '$leaf'")" "alice 700"
for f in cgroup.procs cgroup.subtree_control cgroup.threads; do
    assert_eq "owner of $leaf/$f" "$(vm_root "stat -c %U '$leaf/$f'")" alice
done
for f in cgroup.max.descendants cgroup.max.depth cgroup.type memory.max pids.max login login/cgroup.procs; do
    assert_eq "owner of $leaf/$f" "$(vm_root "stat -c %U '$leaf/$f'")" root
done

step "alice organises her leaf: children, her processes in them, controllers, a lower memory.max"
out=$(vm_login alice "set -e
me=$(cg_mount)\$(sed -n 's/^0:://p' /proc/self/cgroup)
leaf=\${me%/login}
mkdir \$leaf/shell \$leaf/web
echo \$\$ > \$leaf/shell/cgroup.procs
echo '+memory +pids' > \$leaf/cgroup.subtree_control
echo 64M > \$leaf/web/memory.max
(exec -a pamcg-s14-web sleep 300 </dev/null >/dev/null 2>&1 &)
sleep 0.5
pgrep -o -f '^pamcg-s14-web' > \$leaf/web/cgroup.procs
echo leaf=\$leaf") || fail "alice could not organise her leaf: $out"
leaf2=$(sed -n 's/^leaf=//p' <<<"$out")
pw=$(wait_tagged pamcg-s14-web)
assert_eq "cgroup of alice's web process" "$(cgroup_of "$pw")" "$leaf2/web"
assert_file_eq "$leaf2/web/memory.max" $((64 * 1024 * 1024))
assert_file_eq "$ucg/memory.max" $((384 * 1024 * 1024))

step "alice cannot write anything of users/alice, nor leave her leaf for it"
for attempt in "echo max > $ucg/memory.max" "echo max > $ucg/pids.max" \
    "echo 100000 > $ucg/cgroup.max.descendants" "echo \$\$ > $ucg/cgroup.procs" \
    "echo -memory > $ucg/cgroup.subtree_control" "mkdir $ucg/mine" "rmdir $leaf" \
    "echo 100000 > $leaf/cgroup.max.descendants" "echo threaded > $leaf/cgroup.type" \
    "echo max > $leaf/memory.max"; do
    if vm_login alice "$attempt" >/dev/null 2>&1; then
        fail "alice could: $attempt"
    fi
done
assert_file_eq "$ucg/memory.max" $((384 * 1024 * 1024))
assert_file_eq "$ucg/pids.max" 300
kill_user_processes alice
