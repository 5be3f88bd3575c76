# Issue 13: `sessions.max = 2` with real ssh logins: two open sessions, the third refused with
# the cap named on the client's terminal, bob and root and the exempt admin unaffected;
# `cgroupctl sessions --json` shows an ssh session's remote host and tty.
require_cgroupctl_verb sessions
tag=pamcg-s19


vm_root "cgroupctl set alice sessions.max=2" >/dev/null || fail "cgroupctl set alice sessions.max=2 failed"

step "two sessions of alice, one with a terminal (ssh -tt)"
vm_login_bg alice "exec -a $tag-one sleep 200" >/dev/null
mapfile -t opts < <(vm_ssh_opts)
tlog "login alice with a pty (background)"
ssh "${opts[@]}" -tt -o ControlMaster=no -o ControlPath=none alice@127.0.0.1 \
    "echo \$SSH_CLIENT > /tmp/$tag-client; tty > /tmp/$tag-tty; exec -a $tag-tty sleep 200" \
    </dev/null >>"$VM_TRANSCRIPT" 2>&1 &
p1=$(wait_tagged "$tag-one")
p2=$(wait_tagged "$tag-tty")
assert_session_leaf "$p1" alice "alice's first session" >/dev/null
leaf2=$(assert_session_leaf "$p2" alice "alice's second session")

step "the third login of alice is refused with the cap"
status=0
out=$(vm_client_ssh alice "echo logged-in") || status=$?
tlog "client output: $out (status $status)"
[[ $status -ne 0 && $out != *logged-in* ]] || fail "a third session of alice got in: $out"
[[ $out == *"sessions.max = 2"* ]] || fail "the client was not told the cap; it printed: $out"

step "bob, root and the exempt admin carol are not affected"
assert_eq "bob's login" "$(vm_login bob 'echo in')" in
assert_eq "root's login" "$(vm_login root 'echo in')" in
assert_eq "carol's login" "$(vm_login carol 'echo in')" in

step "cgroupctl sessions --json: the ssh session's remote host and tty"
json=$(vm_root "cgroupctl sessions alice --json") || fail "cgroupctl sessions failed"
client_ip=$(vm_root "cut -d' ' -f1 /tmp/$tag-client")
session_dir=${leaf2%/login}
line=$(vm_root "cgroupctl sessions alice --json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s[\"path\"] == \"$session_dir\":
        print(s[\"service\"], s[\"tty\"], s[\"terminal\"], s[\"rhost\"], s[\"open\"])
'") || fail "cannot read the sessions JSON: $json"
tlog "the pty session: $line"
read -r service tty terminal rhost open <<<"$line"
assert_eq "service" "$service" sshd
# sshd opens the PAM session before it allocates the pty: PAM_TTY is "ssh" then; the
# terminal is the session's controlling tty, as the session itself sees it.
assert_eq "PAM_TTY at open" "$tty" ssh
assert_eq "terminal (as \`tty\` printed it in the session)" "$terminal" "$(vm_root "cat /tmp/$tag-tty")"
[[ $terminal == /dev/pts/* ]] || fail "terminal of the ssh -tt session is '$terminal', not /dev/pts/N"
vm_root "cgroupctl sessions alice" | grep -q -- "$terminal" || fail "the table does not show $terminal"
assert_eq "remote host (sshd's PAM_RHOST = the client's address)" "$rhost" "$client_ip"
assert_eq "open" "$open" True
count=$(vm_root "cgroupctl sessions alice --json | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s[\"open\"]))'")
assert_eq "open sessions of alice" "$count" 2

step "one session closed: a new login fits again"
vm_root "pkill -f '^$tag-one( |\$)'" >/dev/null || true
count=$(wait_until 30 matching 1 vm_root "cgroupctl sessions alice --json | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s[\"open\"]))'") || true
assert_eq "open sessions of alice after one closed" "$count" 1
out=$(vm_client_ssh alice "echo logged-in") || fail "alice's login with one session open failed: $out"
[[ $out == *logged-in* ]] || fail "alice's command did not run: $out"

vm_root "rm -f /tmp/$tag-client /tmp/$tag-tty" >/dev/null
kill_user_processes alice
