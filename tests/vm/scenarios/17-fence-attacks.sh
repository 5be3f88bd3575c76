# The review's attack 4 with real controllers (issue 11): under 0.1.0 a customer put a process
# straight into users/<user> with its controllers disabled, so the controller chain failed at
# the next config change and `cgroupctl set` could no longer lower its limits. Now the customer
# cannot reach users/<user> at all; whatever it does inside its own leaf (threaded children,
# controllers off, filled caps), the next login and `cgroupctl set` work and the limits hold.
vm_login_bg alice "exec -a pamcg-s17 sleep 300" >/dev/null
pa=$(wait_tagged pamcg-s17)
login=$(assert_session_leaf "$pa" alice "alice's session")
leaf=${login%/login}
ucg=$(user_cg alice)

step "alice tries the attack on users/alice, then the same in her own leaves"
for attempt in "echo \$\$ > $ucg/cgroup.procs" "echo '-memory -pids -cpu' > $ucg/cgroup.subtree_control" \
    "mkdir $ucg/t"; do
    # Refused for the right reason: the files are root's. (Were they hers, the kernel would
    # still refuse the pid write with EBUSY, the user cgroup having controllers enabled.)
    if out=$(vm_login alice "$attempt" 2>&1); then
        fail "alice could: $attempt"
    fi
    [[ $out == *"Permission denied"* ]] || fail "'$attempt' failed, but not for lack of permission: $out"
done
for f in cgroup.procs cgroup.subtree_control; do
    assert_eq "owner of $ucg/$f" "$(vm_root "stat -c %U:%G '$ucg/$f'")" root:root
done
# In her leaves: a threaded child, controllers off again, the other leaf filled to its cap.
vm_login alice "set -e
me=$(cg_mount)\$(sed -n 's/^0:://p' /proc/self/cgroup)
mine=\${me%/login}
mkdir -p \$mine/x/t
echo threaded > \$mine/x/t/cgroup.type
echo '+pids' > $leaf/cgroup.subtree_control
echo '-pids' > $leaf/cgroup.subtree_control
for i in \$(seq 1 200); do mkdir $leaf/f\$i 2>/dev/null || break; done
true" >/dev/null || fail "alice could not act in her own leaves"
assert_eq "type of $ucg" "$(cgread "$ucg/cgroup.type")" "domain"
ctl=$(cgread "$ucg/cgroup.subtree_control")
for c in cpu memory pids; do
    [[ " $ctl " == *" $c "* ]] || fail "controller $c no longer enabled for alice's leaves ($ctl)"
done

step "the admin lowers her limits with cgroupctl set; new logins are confined with them"
vm_root "cgroupctl set alice pids.max=40 memory.max=200M" >/dev/null || fail "cgroupctl set alice failed after the attack"
assert_file_eq "$ucg/pids.max" 40
assert_file_eq "$ucg/memory.max" $((200 * 1024 * 1024))
vm_root "sed -i 's/\"memory.max\" = \"384M\"/\"memory.max\" = \"320M\"/' /etc/pam_cgroup/config.toml" >/dev/null
vm_root "cgroupctl reload" >/dev/null || fail "cgroupctl reload failed after the attack"
vm_login_bg alice "exec -a pamcg-s17-new sleep 300" >/dev/null
pn=$(wait_tagged pamcg-s17-new)
assert_session_leaf "$pn" alice "alice's new login" >/dev/null
assert_file_eq "$ucg/pids.max" 40

step "the limit holds: 100 background sleeps stop at pids.max 40"
# Under sh, not alice's bash: bash retries a refused fork with growing sleeps (minutes for 60
# refusals), dash stops at the first one. The sleeps outlive the login, so pids.current is read
# while they are all alive, and pids.events shows that the limit was what stopped them.
refused_before=$(pids_max_refusals "$ucg")
vm_login alice "exec sh -c 'i=0; while [ \$i -lt 100 ]; do sleep 120 </dev/null >/dev/null 2>&1 & i=\$((i + 1)); done'" >/dev/null 2>&1 || true
cur=$(cgread "$ucg/pids.current")
refused=$(pids_max_refusals "$ucg")
tlog "pids.current of alice: $cur; forks refused by pids.max: $refused_before before, $refused after"
((cur <= 40)) || fail "pids.current $cur is above pids.max 40"
((refused > refused_before)) || fail "no fork was refused by pids.max 40 (pids.events max $refused_before -> $refused): the limit was never reached"
((cur >= 30)) || fail "pids.current $cur: the sleeps did not fill alice's pids.max 40"
kill_user_processes alice
