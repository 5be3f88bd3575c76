# pam_systemd and pam_cgroup together, in the arrangement the package installs: the login is
# confined, and logind still tracks the session and keeps the user's runtime dir and user@
# manager (in the user's fence) while any session of the user is open.
stack=$(vm_root "grep -E '^[^#]*(pam_systemd|pam_cgroup)' /etc/pam.d/common-session || true")
tlog "common-session order: $(tr '\n' '|' <<<"$stack")"
grep -q pam_cgroup <<<"$stack" || fail "pam_cgroup.so is not in /etc/pam.d/common-session"

vm_login_bg alice "exec -a pamcg-s09-a sleep 200" >/dev/null
pa=$(wait_tagged pamcg-s09-a)
assert_session_leaf "$pa" alice "alice's first session" >/dev/null

if grep -q pam_systemd <<<"$stack"; then
    step "logind tracks alice's session"
    sessions=$(vm_root "loginctl list-sessions --no-legend | awk '\$3 == \"alice\"' ")
    [[ -n $sessions ]] || fail "logind has no session of alice while she is logged in (pam_systemd's scope lost?)"
    if ! vm_root "systemctl is-active user@2001.service" >/dev/null; then
        why=$(vm_root "journalctl -q --no-pager -b -u user@2001.service; journalctl -q --no-pager -b _COMM=systemd _UID=2001" 2>/dev/null \
            | grep -Eo 'Failed to create [^ ]+ control group: [A-Za-z ]+' | tail -n 1 || true)
        fail "user@2001.service (alice's systemd --user) is not active while she is logged in${why:+: $why}"
    fi
    vm_root "test -d /run/user/2001" || fail "alice's XDG_RUNTIME_DIR /run/user/2001 does not exist while she is logged in"
    step "alice's user manager runs in her fence, in a leaf of its own (it manages that cgroup)"
    um=$(vm_root "systemctl show -p MainPID --value user@2001.service")
    cg=$(cgroup_of "$um")
    tlog "alice's user manager is in $cg"
    [[ $cg =~ ^${VM_TREE_ROOT}/users/alice\.[0-9a-f]{16}/manager-[^/]+/init\.scope$ ]] \
        || fail "alice's user manager runs in $cg, not in $VM_TREE_ROOT/users/alice.<tag>/manager-*/init.scope"
    step "a second session opens and closes; the first keeps its runtime dir"
    vm_root "touch /run/user/2001/pamcg-s09-marker && chown alice: /run/user/2001/pamcg-s09-marker" >/dev/null
    vm_login alice true >/dev/null || fail "alice's second login failed"
    sleep 3
    vm_root "test -e /run/user/2001/pamcg-s09-marker" \
        || fail "/run/user/2001 was emptied when alice's second session closed, while her first was still open (logind thinks she logged out)"
    vm_root "kill -0 $pa" || fail "alice's first session's process was killed when the second closed"
    assert_session_leaf "$pa" alice "alice's first session after the second closed" >/dev/null
    step "logind's view matches: still one open session of alice"
    vm_root "loginctl list-sessions --no-legend | awk '\$3 == \"alice\"' | grep -q ." \
        || fail "logind lost alice's session"
else
    tlog "pam_systemd is not in common-session: the arrangement without logind sessions"
    vm_root "test -e /lib/x86_64-linux-gnu/security/pam_systemd.so" >/dev/null \
        && fail "pam_systemd is installed but not in common-session: document this arrangement or keep pam_systemd"
fi
kill_user_processes alice
