# hidepid: with [proc] hidepid = "invisible" and an admin group, applied by
# `cgroupctl proc-apply` (what pam-cgroup.service runs at start), alice cannot see bob's
# processes; a member of the admin group can; alice still sees her own.
require_cgroupctl_verb proc-apply
if [[ $VM_INSTALL_MODE == deb* ]]; then
    vm_root "systemctl show -p ExecStartPre --value pam-cgroup.service | grep -q 'cgroupctl.*proc-apply'" \
        || fail "pam-cgroup.service does not run cgroupctl proc-apply at start"
fi
vm_write_config '
[proc]
hidepid = "invisible"
group = "admins"'
vm_root "cgroupctl proc-apply" >/dev/null || fail "cgroupctl proc-apply failed"
opts=$(vm_root "findmnt -n -o OPTIONS /proc")
tlog "/proc mount options: $opts"
[[ ,$opts, == *,hidepid=invisible,* || ,$opts, == *,hidepid=2,* ]] \
    || fail "/proc is not mounted with hidepid=invisible after proc-apply (options: $opts)"
assert_eq "gid= of /proc" "$(sed -n 's/.*,gid=\([0-9]*\).*/\1/p' <<<",$opts,")" 1500

vm_login_bg bob "exec -a pamcg-s08-bob sleep 120" >/dev/null
pb=$(wait_tagged pamcg-s08-bob)
step "alice looks for bob's process $pb"
seen=$(vm_login alice "if [ -e /proc/$pb ]; then echo visible; else echo hidden; fi; ps -eo pid= | grep -cw $pb || true")
assert_eq "what alice's session finds of /proc/$pb and in ps" "$(tr '\n' ' ' <<<"$seen")" "hidden 0 "
step "carol (group admins) looks for it"
seen=$(vm_login carol "if [ -e /proc/$pb ]; then echo visible; else echo hidden; fi; ps -eo pid= | grep -cw $pb || true")
assert_eq "what carol's session finds of /proc/$pb and in ps" "$(tr '\n' ' ' <<<"$seen")" "visible 1 "
step "alice still sees her own processes"
vm_login_bg alice "exec -a pamcg-s08-alice sleep 120" >/dev/null
pa=$(wait_tagged pamcg-s08-alice)
seen=$(vm_login alice "if [ -e /proc/$pa ]; then echo visible; else echo hidden; fi")
assert_eq "alice's view of her own process" "$seen" visible
kill_user_processes alice
kill_user_processes bob
vm_root "mount -o remount,hidepid=0 /proc" >/dev/null
