# A directory outage (issue 15). slapd stopped (SSSD up, offline): dana, cached by an earlier
# login, still logs in confined with her plan; erin, never looked up, is unknown (sshd refuses
# her before any session; SSSD answers NOTFOUND for an entry it never cached while offline);
# root and the local admin carol always get in, unconfined; local bob stays confined.
# SSSD stopped as well (nss_sss then answers UNAVAIL): a PAM session of a directory user
# (a PAM application that calls the session stack, driven with libpam from python) follows
# on_error, open or closed, with a log line saying the user database is unavailable, not that
# the user is unknown; `cgroupctl reload` applies every user it resolves, reports dana as not
# resolved and exits 1.
# shellcheck source=../ldap.sh
source "$VM_LIB_DIR/ldap.sh"
ldap_setup

step "dana logs in while the directory is up (SSSD caches her and her groups)"
vm_login dana true >/dev/null || fail "dana's first login failed"
assert_file_eq "$(user_cg dana)/pids.max" 300

step "slapd stopped"
vm_root "systemctl stop slapd; ldapsearch -x -H ldap://127.0.0.1 -b '$LDAP_BASE' -LLL '(uid=dana)' dn 2>&1 | head -n 2; true" >/dev/null
cursor=$(journal_cursor)
vm_login_bg dana "exec -a pamcg-s23-dana sleep 300" >/dev/null
pd=$(wait_tagged pamcg-s23-dana 60)
assert_session_leaf "$pd" dana "dana's login during the outage" >/dev/null
assert_file_eq "$(user_cg dana)/pids.max" 300
vm_root "cat '$(user_cg dana)/pids.max' '$(user_cg dana)/memory.max'" >/dev/null
if vm_login erin true >/dev/null 2>&1; then
    fail "erin, never cached, logged in while the directory was down"
fi
vm_root "getent passwd erin; echo \"getent passwd erin: exit \$?\"" >/dev/null || true

step "root and the local admin carol get in, unconfined; bob (local) is confined"
vm_login root "grep ^0:: /proc/self/cgroup" >/dev/null || fail "root could not log in during the outage"
out=$(vm_login carol "grep ^0:: /proc/self/cgroup") || fail "carol (admins) could not log in during the outage"
[[ $out != *"/users/"* ]] || fail "carol (exempt) was confined during the outage: $out"
out=$(vm_login bob "grep ^0:: /proc/self/cgroup") || fail "bob could not log in during the outage"
[[ $out =~ /users/bob\.[0-9a-f]{16}/session- ]] || fail "bob was not confined during the outage: $out"

step "SSSD stopped too, its memory cache gone: nss_sss answers UNAVAIL"
# nss_sss reads SSSD's memory-mapped cache (/var/lib/sss/mc) without the daemon: with it in
# place a stopped sssd still answers for dana. Removed, the client finds no socket: UNAVAIL.
vm_root "systemctl stop sssd; rm -f /var/lib/sss/mc/*; getent passwd dana; echo \"getent passwd dana: exit \$?\"" >/dev/null || true
# Two PAM services with only our module: on_error from the config (open) and closed.
vm_root "printf 'session required pam_cgroup.so\n' > /etc/pam.d/pamcg-nss-open
         printf 'session required pam_cgroup.so on_error=closed\n' > /etc/pam.d/pamcg-nss-closed" >/dev/null
pam_session() {
    vm_root "python3 - '$1' '$2' <<'EOF'
import ctypes, sys
pam = ctypes.CDLL('libpam.so.0')
pam.pam_strerror.restype = ctypes.c_char_p
class Conv(ctypes.Structure):
    _fields_ = [('conv', ctypes.c_void_p), ('appdata', ctypes.c_void_p)]
conv = Conv(None, None)
handle = ctypes.c_void_p()
rc = pam.pam_start(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(conv), ctypes.byref(handle))
assert rc == 0, rc
rc = pam.pam_open_session(handle, 0)
print('pam_open_session %s %s: %d (%s)' % (sys.argv[1], sys.argv[2], rc, pam.pam_strerror(handle, rc).decode()))
if rc == 0:
    pam.pam_close_session(handle, 0)
pam.pam_end(handle, rc)
EOF"
}
cursor=$(journal_cursor)
out_open=$(pam_session pamcg-nss-open dana) || out_open="the PAM driver failed"
out_closed=$(pam_session pamcg-nss-closed dana) || out_closed="the PAM driver failed"
# Gone before any assertion: 99-purge checks that nothing in /etc/pam.d names the module.
vm_root "rm -f /etc/pam.d/pamcg-nss-open /etc/pam.d/pamcg-nss-closed" >/dev/null
[[ $out_open == *": 0 (Success)" ]] || fail "on_error=open: dana's session was not let in: $out_open"
[[ $out_closed != *": 0 (Success)" && $out_closed == pam_open_session* ]] ||
    fail "on_error=closed: dana's session was let in with the user database down: $out_closed"
log=$(journal_since "$cursor" | grep 'pam_cgroup(pamcg-nss' || true)
tlog "module log lines: $log"
grep -q 'pam_cgroup(pamcg-nss-open:session):.*dana.*user database is unavailable' <<<"$log" ||
    fail "no log line of the open session saying the user database is unavailable: $log"
grep -q 'pam_cgroup(pamcg-nss-closed:session):.*dana.*user database is unavailable' <<<"$log" ||
    fail "no log line of the closed session saying the user database is unavailable: $log"
! grep -q 'dana.*not found' <<<"$log" || fail "the module called dana unknown while NSS was unavailable: $log"

step "cgroupctl reload: applies alice, reports dana as not resolved, exits 1"
vm_login alice true >/dev/null || fail "alice's login failed"
vm_user_file alice <<'EOT'
"pids.max" = 123
EOT
status=0
out=$(vm_root "cgroupctl reload") || status=$?
assert_eq "exit status of cgroupctl reload with dana unresolvable" "$status" 1
grep -q '^dana: NOT RESOLVED' <<<"$out" || fail "reload does not report dana as not resolved: $out"
assert_file_eq "$(user_cg alice)/pids.max" 123
assert_file_eq "$(user_cg dana)/pids.max" 300

step "the directory back: dana resolves again, reload exits 0"
vm_root "rm -f /etc/pam_cgroup/users/alice.toml
         systemctl start slapd sssd" >/dev/null
wait_until 30 vm_root "getent passwd dana" >/dev/null ||
    fail "dana does not resolve within 30 s of the directory's return"
vm_root "cgroupctl reload" >/dev/null || fail "cgroupctl reload failed with the directory back"
kill_user_processes alice
kill_user_processes bob
kill_user_processes carol
ldap_teardown
