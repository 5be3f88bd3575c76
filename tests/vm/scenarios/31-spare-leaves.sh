# [tree] spare_leaves with real sshd logins and the packaged daemon: after alice's first login
# the daemon makes her a session leaf ahead (root's, 0700, its caps and login/ written,
# empty), which alice cannot enter; her next ssh login runs in that very leaf, handed over to
# her, inside her plan's limits; with the option off again gc gives the next spare back.
require_daemon
A=alice
tag=pamcg-s31
cfg=/etc/pam_cgroup/config.toml
reload_daemon() {
    vm_root 'kill -HUP "$(systemctl show -p MainPID --value pam-cgroup.service)"' >/dev/null
}
# reload_to CURSOR: waits for the daemon's "reloaded" line after CURSOR.
reloaded_since() {
    wait_until 30 matching '*reloaded /etc/pam_cgroup/config.toml*' journal_since "$1" >/dev/null ||
        fail "the daemon did not reload: $(journal_since "$1" | grep cgroupctl | tail -n 3)"
}
# spare_of USER [NOT]: the user's spare leaf (a session-* leaf with the spare mark) other
# than NOT; fails while there is none.
spare_of() {
    vm_root "python3 - '$(user_cg "$1")' '${2:-}' <<'PY'
import glob, os, sys
for d in sorted(glob.glob(sys.argv[1] + '/session-*')):
    try:
        if d != sys.argv[2] and os.getxattr(d, 'trusted.pam_cgroup.spare'):
            print(d)
            sys.exit(0)
    except OSError:
        pass
sys.exit(1)
PY"
}

step "spare_leaves on, the daemon reloaded"
vm_write_config
vm_root "sed -i 's/^\\[tree\\]\$/[tree]\\nspare_leaves = true/' $cfg && grep -q '^spare_leaves = true' $cfg" >/dev/null ||
    fail "cannot turn spare_leaves on in $cfg"
cursor=$(journal_cursor)
reload_daemon || fail "cannot signal the daemon"
reloaded_since "$cursor"

step "$A's first login makes her own leaf; the daemon then makes her a spare"
vm_login "$A" true >/dev/null || fail "$A cannot log in"
spare=$(wait_until 30 spare_of "$A") || fail "no spare leaf for $A: $(vm_root "ls '$(user_cg "$A")'")"
tlog "spare: $spare"
assert_eq "owner and mode of the spare" "$(vm_root "stat -c '%U %a' '$spare'")" "root 700"
assert_eq "cgroup.max.descendants of the spare" "$(cgread "$spare/cgroup.max.descendants")" 64
assert_eq "processes in the spare" "$(vm_root "cat '$spare/cgroup.procs' '$spare/login/cgroup.procs' | wc -l")" 0

step "$A cannot list, enter or build in her spare"
# A process of hers that is no login (a login would claim the spare): as a service of hers
# a root daemon started.
uid=$(vm_root "id -u $A") && gid=$(vm_root "id -g $A") || fail "no uid for $A"
out=$(vm_root "setpriv --reuid=$uid --regid=$gid --clear-groups sh -c \"ls '$spare' 2>/dev/null && echo listed; echo \\\$\\\$ > '$spare/login/cgroup.procs' 2>/dev/null && echo entered; mkdir '$spare/mine' 2>/dev/null && echo made; echo done\"")
[[ $out == done ]] || fail "$A reached her spare: $out"

step "$A's next login runs in the spare, handed over to her, inside her limits"
vm_login_bg "$A" "exec -a $tag-run sleep 120" >/dev/null
pid=$(wait_tagged "$tag-run")
cg=$(assert_session_leaf "$pid" "$A" "$A's login")
assert_eq "the login's leaf" "${cg%/login}" "$spare"
assert_eq "owner of the claimed leaf" "$(vm_root "stat -c '%U' '$spare'")" "$A"
assert_file_eq "$(user_cg "$A")/memory.max" $((384 * 1024 * 1024))
vm_root "cgroupctl sessions $A" | grep -q "${spare##*/session-}" ||
    fail "cgroupctl sessions does not list the claimed leaf: $(vm_root "cgroupctl sessions $A")"

step "spare_leaves off: gc gives the next spare back"
next=$(wait_until 30 spare_of "$A" "$spare") || fail "no spare after the claim"
vm_write_config
cursor=$(journal_cursor)
reload_daemon || fail "cannot signal the daemon"
reloaded_since "$cursor"
vm_root "cgroupctl gc --min-age 0" >/dev/null || fail "cgroupctl gc failed"
vm_root "test ! -e '$next'" >/dev/null || fail "gc kept the spare $next with spare_leaves off"
kill_user_processes "$A"
