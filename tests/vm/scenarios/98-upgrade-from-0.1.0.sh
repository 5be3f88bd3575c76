# Upgrade from 0.1.0 under a live session (issue 11): the 0.1.0 package is installed over the
# new one, alice logs in (0.1.0 hands her users/alice) and uses what 0.1.0 allowed: a cgroup of
# her own there holding a process. The new package is then installed over it: users/alice is
# root's again (postinst's reload), her old session and her own cgroup keep running, a new
# login is confined in a delegated leaf of her keyed cgroup users/alice.<tag> with her limits,
# the levers reach both, and once the legacy users/alice empties gc removes it. The new
# package stays installed.
[[ -n ${PAM_CGROUP_OLD_DEB:-} && -f ${PAM_CGROUP_OLD_DEB:-} ]] ||
    fail "no 0.1.0 package (tests/vm/old-deb; the upgrade needs the .deb install mode)"
apt_install="DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
new_version=$(vm_root "dpkg-query -W -f='\${Version}' pam-cgroup")
vm_copy_in "$PAM_CGROUP_OLD_DEB" /root/pam-cgroup-0.1.0.deb || fail "cannot copy the 0.1.0 package in"
step "install 0.1.0 over $new_version"
vm_root "$apt_install /root/pam-cgroup-0.1.0.deb" >/dev/null 2>&1 || fail "apt-get install of the 0.1.0 package failed"
assert_eq "installed version" "$(vm_root "dpkg-query -W -f='\${Version}' pam-cgroup")" 0.1.0
# The downgrade leaves the new daemon running (upgrades never stop the unit): its safety net
# would place alice's sshd child in her keyed cgroup and take users/alice back from her at
# once, which no 0.1.0 host ever does. A 0.1.0 host is modelled without it (the module does not
# need the daemon); it is started again once the new package is installed.
vm_root "systemctl stop pam-cgroup.service" >/dev/null || fail "cannot stop the daemon for the 0.1.0 phase"
# 0.1.0 names the user cgroup users/alice (its cgroupctl has no `path`).
ucg=$(legacy_user_cg alice)

step "alice logs in under 0.1.0 and makes a cgroup of her own in users/alice"
vm_login_bg alice "exec -a pamcg-s98-old sleep 600" >/dev/null
po=$(wait_tagged pamcg-s98-old)
old_leaf=$(cgroup_of "$po")
[[ $old_leaf == "$ucg/session-"* ]] || fail "alice's 0.1.0 session is in $old_leaf"
assert_eq "owner of $ucg under 0.1.0" "$(vm_root "stat -c %U '$ucg'")" alice
vm_login alice "set -e; mkdir $ucg/mine
(exec -a pamcg-s98-mine sleep 600 </dev/null >/dev/null 2>&1 &)
sleep 0.5; pgrep -o -f '^pamcg-s98-mine' > $ucg/mine/cgroup.procs" >/dev/null ||
    fail "alice could not use her 0.1.0 delegation"
pm=$(wait_tagged pamcg-s98-mine)
assert_eq "cgroup of alice's own process" "$(cgroup_of "$pm")" "$ucg/mine"

step "install $new_version over 0.1.0 with alice's session and process live"
vm_root "$apt_install /root/pam-cgroup.deb" >/dev/null 2>&1 || fail "apt-get install of $new_version over 0.1.0 failed"
assert_eq "installed version" "$(vm_root "dpkg-query -W -f='\${Version}' pam-cgroup")" "$new_version"
vm_root "systemctl start pam-cgroup.service" >/dev/null 2>&1 ||
    tlog "pam-cgroup.service did not start with alice's 0.1.0 session live: $(vm_root "systemctl status pam-cgroup.service --no-pager -n 5" 2>&1 | tail -n 5 | tr '\n' ' ')"
assert_eq "owner, group and mode of $ucg" "$(vm_root "stat -c '%U %G %a' '$ucg'")" "root alice 750"
assert_eq "owner of $ucg/cgroup.procs" "$(vm_root "stat -c %U '$ucg/cgroup.procs'")" root
assert_eq "owner and mode of users/" "$(vm_root "stat -c '%U %a' '$VM_TREE_ROOT/users'")" "root 711"
assert_eq "alice's old session" "$(cgroup_of "$po")" "$old_leaf"
assert_eq "alice's own process" "$(cgroup_of "$pm")" "$ucg/mine"
assert_file_eq "$ucg/memory.max" $((384 * 1024 * 1024))
if vm_login alice "echo \$\$ > $ucg/cgroup.procs" >/dev/null 2>&1; then
    fail "alice can still move processes into $ucg after the upgrade"
fi

step "a new login: confined in a delegated leaf; the old session closes cleanly"
vm_login_bg alice "exec -a pamcg-s98-new sleep 600" >/dev/null
pn=$(wait_tagged pamcg-s98-new)
login=$(assert_session_leaf "$pn" alice "alice's first login after the upgrade")
new_ucg=$(user_cg alice)
[[ $login == "$new_ucg/session-"* ]] || fail "alice's new login is in $login, not in $new_ucg"
assert_eq "owner of her new leaf" "$(vm_root "stat -c '%U %a' '${login%/login}'")" "alice 700"
assert_file_eq "$new_ucg/memory.max" $((384 * 1024 * 1024))
assert_eq "alice's cgroups as cgroupctl path --all lists them" \
    "$(vm_root "cgroupctl path --all alice" | tr '\n' ' ')" "$new_ucg $ucg "
step "a plan lowered after the upgrade reaches users/alice too (cgroupctl set)"
# Else her old session (a tmux server, a nohup job) kept the plan of the day of the upgrade,
# and anything started there ran beyond what set says.
vm_root "cgroupctl set alice memory.max=200M" >/dev/null || fail "cgroupctl set alice memory.max=200M failed"
assert_file_eq "$new_ucg/memory.max" $((200 * 1024 * 1024))
assert_file_eq "$ucg/memory.max" $((200 * 1024 * 1024))
step "a freeze reaches her old session and her own cgroup in users/alice too"
vm_root "cgroupctl freeze alice" >/dev/null || fail "cgroupctl freeze alice failed"
assert_eq "frozen of $ucg" "$(cgkey "$ucg/cgroup.events" frozen)" 1
assert_eq "frozen of $new_ucg" "$(cgkey "$new_ucg/cgroup.events" frozen)" 1
vm_root "cgroupctl thaw alice" >/dev/null || fail "cgroupctl thaw alice failed"
assert_eq "frozen of $ucg after thaw" "$(cgkey "$ucg/cgroup.events" frozen)" 0
vm_root "pkill -f '^pamcg-s98-old'" >/dev/null || true
sleep 2
vm_root "cgroupctl gc --min-age 0" >/dev/null || fail "cgroupctl gc failed after the upgrade"
[[ $(vm_root "test -d '$old_leaf' && echo present || echo gone") == gone ]] || fail "the 0.1.0 session leaf $old_leaf stayed after its session ended"
[[ $(vm_root "test -d '$ucg/mine' && echo present || echo gone") == present ]] || fail "alice's own cgroup went while it held a process"
step "once her own cgroup empties, gc removes it"
vm_root "pkill -f '^pamcg-s98-mine'" >/dev/null || true
sleep 1
vm_root "cgroupctl gc --min-age 0" >/dev/null || fail "cgroupctl gc failed"
[[ $(vm_root "test -d '$ucg/mine' && echo present || echo gone") == gone ]] || fail "alice's emptied cgroup $ucg/mine was not removed"
[[ $(vm_root "test -d '$ucg' && echo present || echo gone") == gone ]] || fail "the emptied legacy $ucg was not removed"
[[ $(vm_root "test -d '$new_ucg' && echo present || echo gone") == present ]] || fail "gc removed alice's own cgroup $new_ucg"
kill_user_processes alice
