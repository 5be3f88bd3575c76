# Delegation under the single-writer tree: users/alice is root's (0750 root:alice, limits and
# caps root's); her session leaf is hers (0700, the files of /sys/kernel/cgroup/delegate), its
# caps and login/ (where the session's own processes start) root's. In her leaf she makes
# children, moves her processes into them, enables controllers for them and sets a child's
# memory.max below her plan; she cannot write anything of users/alice. After her logout the
# leaf's delegated files are root's again (the directory stays hers).
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

step "after the logout alice's leaf is no longer hers to arrange: what she changed there is undone"
# During the session she turns on the leaf's memory.oom.group (an OOM of her processes would
# kill every process of the leaf, a root caller left there among them) and makes its
# cgroup.procs writable by all; she leaves a process behind, so the leaf outlives the session.
out=$(vm_login alice "set -e
me=$(cg_mount)\$(sed -n 's/^0:://p' /proc/self/cgroup)
leaf=\${me%/login}
echo 1 > \$leaf/memory.oom.group
chmod 666 \$leaf/cgroup.procs
mkdir \$leaf/mine
(exec -a pamcg-s14-left sleep 300 </dev/null >/dev/null 2>&1 &)
echo leaf=\$leaf") || fail "alice could not prepare her leaf: $out"
leaf3=$(sed -n 's/^leaf=//p' <<<"$out")
pl=$(wait_tagged pamcg-s14-left)
# sshd closes the session as the connection ends, around the client's exit.
wait_until 20 matching "root 644" vm_root "stat -c '%U %a' '$leaf3/cgroup.procs'" >/dev/null ||
    fail "$leaf3/cgroup.procs after the logout: $(vm_root "stat -c '%U %a' '$leaf3/cgroup.procs'")"
for f in cgroup.threads cgroup.subtree_control memory.oom.group; do
    assert_eq "owner of $leaf3/$f after the logout" "$(vm_root "stat -c %U '$leaf3/$f'")" root
done
assert_file_eq "$leaf3/memory.oom.group" 0
assert_eq "owner of the leaf after the logout" "$(vm_root "stat -c %U '$leaf3'")" alice
if vm_login alice "echo $pl > $leaf3/mine/cgroup.procs" >/dev/null 2>&1; then
    fail "alice moved the process her closed session left behind across her old leaf's top"
fi
assert_eq "cgroup of the process left behind" "$(cgroup_of "$pl")" "$leaf3/login"
vm_login alice "rmdir $leaf3/mine" || fail "alice could not remove her empty sub-cgroup of her old leaf"
kill_user_processes alice
