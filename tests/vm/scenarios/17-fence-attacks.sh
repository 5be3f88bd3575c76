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
    if vm_login alice "$attempt" >/dev/null 2>&1; then
        fail "alice could: $attempt"
    fi
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
vm_login alice "for i in \$(seq 1 100); do (exec -a pamcg-s17-fill sleep 60 </dev/null >/dev/null 2>&1 &) 2>/dev/null; done; true" >/dev/null 2>&1 || true
cur=$(cgread "$ucg/pids.current")
tlog "pids.current of alice: $cur"
((cur <= 40)) || fail "pids.current $cur is above pids.max 40"
kill_user_processes alice
