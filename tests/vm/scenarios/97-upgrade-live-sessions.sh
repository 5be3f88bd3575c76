# Upgrading the package under live sessions (issue 15), on both suites. The installed .deb is
# repacked in the guest with a higher version (same files: a real dpkg upgrade, maintainer
# scripts called with the old version) and installed while alice and bob have sessions open.
# - systemd >= 254 (trixie: 257): the unit has DelegateSubgroup=supervisor applied; the upgrade
#   restarts the daemon (a new MainPID, in supervisor/, the unit active) and no session moves,
#   ends or loses its limits; the unit's own cgroup holds no process.
# - systemd < 254 (bookworm: 252): systemd ignores the key; the upgrade leaves the daemon as it
#   was (same MainPID: a restart would fail while sessions hold the tree) and the sessions too.
# Both: a new login after the upgrade is confined; then the original package is put back (a
# downgrade, also under a live session) so that the scenarios after this one see it.
[[ $VM_INSTALL_MODE == deb* ]] || fail "feature missing: the upgrade needs the .deb install mode ($VM_INSTALL_MODE)"
apt_install="DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
systemd_version=$(vm_root "systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p'")
version=$(vm_root "dpkg-query -W -f='\${Version}' pam-cgroup")
step "systemd $systemd_version, pam-cgroup $version; repack it as $version+upgrade1"
vm_root "set -e; rm -rf /root/repack; dpkg-deb -R /root/pam-cgroup.deb /root/repack
sed -i 's/^Version: .*/Version: $version+upgrade1/' /root/repack/DEBIAN/control
dpkg-deb -b /root/repack /root/pam-cgroup-upgrade.deb >/dev/null; rm -rf /root/repack" >/dev/null ||
    fail "cannot repack the package with a higher version"

# 16-unit-lifecycle leaves the unit stopped. On systemd 252 it cannot start again while its
# cgroup is an inner node with controllers enabled (see the unit's header): remove the empty
# leftovers of the earlier scenarios first (no session is open now), as a reboot would.
if [[ $(vm_root "systemctl is-active pam-cgroup.service" || true) != active ]]; then
    step "start the unit (stopped by an earlier scenario)"
    vm_root "cgroupctl gc --min-age 0 >/dev/null 2>&1 || true
             d=/sys/fs/cgroup/system.slice/pam-cgroup.service
             [ -d \$d ] && find \$d -depth -type d -exec rmdir {} + 2>/dev/null || true
             systemctl start pam-cgroup.service" >/dev/null || fail "pam-cgroup.service does not start: $(vm_root 'systemctl --no-pager status pam-cgroup.service 2>&1 | tail -n 5' || true)"
fi
unit_cg=$(cg_mount)$(vm_root "systemctl show -p ControlGroup --value pam-cgroup.service")
delegate_subgroup=$(vm_root "systemctl show -P DelegateSubgroup pam-cgroup.service 2>/dev/null || true")
if ((systemd_version >= 254)); then
    assert_eq "DelegateSubgroup applied by systemd $systemd_version" "$delegate_subgroup" supervisor
else
    assert_eq "DelegateSubgroup on systemd $systemd_version (unknown there)" "$delegate_subgroup" ""
fi
main_before=$(vm_root "systemctl show -p MainPID --value pam-cgroup.service")
[[ $main_before -gt 0 ]] || fail "pam-cgroup.service has no main process before the upgrade"

step "live sessions of alice (pro) and bob (defaults)"
vm_login_bg alice "exec -a pamcg-s97-alice sleep 600" >/dev/null
vm_login_bg bob "exec -a pamcg-s97-bob sleep 600" >/dev/null
pa=$(wait_tagged pamcg-s97-alice)
pb=$(wait_tagged pamcg-s97-bob)
leaf_a=$(assert_session_leaf "$pa" alice "alice's session")
leaf_b=$(assert_session_leaf "$pb" bob "bob's session")
# Only the users with live sessions: empty user cgroups that earlier scenarios left behind
# (the LDAP customers of 22/23) may be reaped by the restarted daemon, which is no change to
# a session. A user manager's leaf is compared, not what is inside it: that tree is the
# customer's own systemd --user's, which makes and removes its units' cgroups at will (on
# Debian 13 its socket units' cgroups came and went across the upgrade).
# The user cgroups are named by the tree key, which the upgrade keeps (it lives in
# /var/lib/pam_cgroup, removed only at purge): the same names before and after.
ucg_a=$(user_cg alice)
ucg_b=$(user_cg bob)
snapshot() {
    vm_root "find '$ucg_a' '$ucg_b' -type d | grep -v '/manager-[^/]*/' | sort
for d in '$ucg_a' '$ucg_b'; do for f in memory.max pids.max cpu.max; do
    printf '%s %s ' \$d \$f; cat \$d/\$f; done; done
cat /var/lib/pam_cgroup/tree-key"
}
before=$(snapshot)

step "upgrade to $version+upgrade1 with both sessions live"
vm_root "$apt_install /root/pam-cgroup-upgrade.deb" >/dev/null 2>&1 || fail "apt-get install of $version+upgrade1 failed"
assert_eq "installed version" "$(vm_root "dpkg-query -W -f='\${Version}' pam-cgroup")" "$version+upgrade1"
sleep 2
assert_eq "unit state after the upgrade" "$(vm_root "systemctl show -p ActiveState --value pam-cgroup.service")" active
main_after=$(vm_root "systemctl show -p MainPID --value pam-cgroup.service")
if ((systemd_version >= 254)); then
    [[ $main_after != "$main_before" && $main_after -gt 0 ]] ||
        fail "the upgrade did not restart the daemon on systemd $systemd_version (MainPID $main_before -> $main_after)"
    vm_root "kill -0 $main_before 2>/dev/null" && fail "the old daemon $main_before still runs after the restart"
    assert_eq "cgroup of the new daemon" "$(cgroup_of "$main_after")" "$unit_cg/supervisor"
    vm_root "journalctl -u pam-cgroup.service -n 30 --no-pager" >/dev/null || true
else
    assert_eq "the daemon on systemd $systemd_version (not restarted)" "$main_after" "$main_before"
fi
[[ -z $(vm_root "cat '$unit_cg/cgroup.procs'") ]] || fail "the unit's own cgroup holds processes after the upgrade"

step "the sessions: alive, in the same leaves, the tree and limits unchanged"
vm_root "kill -0 $pa && kill -0 $pb" || fail "a session ended during the upgrade"
assert_eq "alice's session leaf" "$(cgroup_of "$pa")" "$leaf_a"
assert_eq "bob's session leaf" "$(cgroup_of "$pb")" "$leaf_b"
after=$(snapshot)
[[ $before == "$after" ]] || fail "the upgrade changed the tree or limits: $(diff <(echo "$before") <(echo "$after") | head -n 5 | tr '\n' ' ')"

step "a new login after the upgrade is confined"
out=$(vm_login bob "grep ^0:: /proc/self/cgroup") || fail "bob's login failed after the upgrade"
# /proc/self/cgroup names the cgroup from the mount; user_cg names it from / (with the mount).
[[ $(cg_mount)${out#0::} == "$ucg_b/session-"*/login ]] || fail "bob's login after the upgrade is in ${out#0::}, not in $ucg_b"

step "back to $version (a downgrade, alice's session still live)"
vm_root "$apt_install /root/pam-cgroup.deb" >/dev/null 2>&1 || fail "apt-get install of $version (downgrade) failed"
assert_eq "installed version" "$(vm_root "dpkg-query -W -f='\${Version}' pam-cgroup")" "$version"
assert_eq "alice's session leaf after the downgrade" "$(cgroup_of "$pa")" "$leaf_a"
assert_eq "unit state after the downgrade" "$(vm_root "systemctl show -p ActiveState --value pam-cgroup.service")" active
vm_root "rm -f /root/pam-cgroup-upgrade.deb" >/dev/null
kill_user_processes alice
kill_user_processes bob
