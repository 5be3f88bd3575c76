# Issue 13: `cgroupctl suspend` of a customer with real sshd and cron. Her running session is
# frozen; a new ssh login is refused after authentication by the module's account part, and
# the reason is printed on the client's terminal; her cron job does not run; root and an
# exempt admin (carol) log in throughout; `resume` thaws her and restores ssh and cron.
require_cgroupctl_verb suspend
require_cgroupctl_verb resume
tag=pamcg-s18
reason="unpaid invoice 2026-11 (ticket 4711)"


step "the package's profile put the account part in common-account"
vm_root "grep -E '^account.*pam_cgroup.so' /etc/pam.d/common-account" >/dev/null ||
    fail "common-account has no pam_cgroup line after pam-auth-update --enable pam-cgroup"

step "alice has a running session"
vm_login_bg alice "exec -a $tag-run sleep 200" >/dev/null
pa=$(wait_tagged "$tag-run")
assert_session_leaf "$pa" alice "alice's running session" >/dev/null

step "suspend alice"
vm_root "cgroupctl suspend alice --reason '$reason'" >/dev/null || fail "cgroupctl suspend failed"
assert_eq "frozen of users/alice" "$(cgkey "$(user_cg alice)/cgroup.events" frozen)" 1
state=$(vm_root "awk '{print \$3}' /proc/$pa/stat")
tlog "state of alice's sleep while frozen: $state"
vm_root "grep -q '^\[suspend\]' /etc/pam_cgroup/users/alice.toml" || fail "no [suspend] in alice's user file"

step "ssh of the suspended alice: refused, the reason on the client's terminal"
status=0
out=$(vm_client_ssh alice "echo logged-in") || status=$?
tlog "client output: $out (status $status)"
[[ $status -ne 0 ]] || fail "ssh of a suspended alice succeeded: $out"
[[ $out != *logged-in* ]] || fail "the suspended alice's command ran: $out"
[[ $out == *"account suspended: $reason"* ]] || fail "the client did not print the reason; it printed: $out"

step "root and the exempt admin carol log in while alice is suspended"
assert_eq "root's login" "$(vm_login root 'echo in')" in
assert_eq "carol's login" "$(vm_login carol 'echo in')" in

step "reload keeps the suspension"
vm_root "cgroupctl reload" >/dev/null || fail "cgroupctl reload failed"
assert_eq "frozen of users/alice after reload" "$(cgkey "$(user_cg alice)/cgroup.events" frozen)" 1

step "alice's cron job does not run while she is suspended (real cron: one minute)"
# Which part refuses it: the account part, unless a line above ours ends common-account for
# local users first, as libpam-sss's `sufficient pam_localuser.so` does (the image has SSSD
# for the LDAP scenarios; docs/admin-guide.md, "The PAM stack"); then the session part refuses, and doctor
# says why.
part=account
doctor=$(vm_root "cgroupctl doctor" || true)
if grep -q '^WARN pam-account:cron' <<<"$doctor"; then
    grep '^WARN pam-account:cron' <<<"$doctor" | grep -q 'sufficient pam_localuser.so' ||
        fail "doctor warns about cron's account stack for another reason: $(grep -A2 '^WARN pam-account:cron' <<<"$doctor" | tr '\n' ' ')"
    part=session
fi
tlog "the refusal expected from the $part part"
cursor=$(journal_cursor)
vm_root "rm -f /tmp/$tag-cron.log" >/dev/null
vm_write /etc/cron.d/pamcg-s18 644 <<EOT
* * * * * alice echo ran >> /tmp/$tag-cron.log
EOT
vm_root "touch /etc/cron.d" >/dev/null
# cron_refused: the journal's refusal of alice's cron job, once there is one.
cron_refused() { journal_since "$cursor" | grep "pam_cgroup(cron:$part).*account suspended"; }
refused=$(POLL_EVERY=3 wait_until 100 cron_refused) ||
    fail "no refusal of alice's cron job in the journal within 100 s"
tlog "cron refused: $refused"
vm_root "test ! -e /tmp/$tag-cron.log" || fail "alice's cron job ran while she was suspended"

step "resume alice: thawed, ssh and cron work again"
vm_root "cgroupctl resume alice" >/dev/null || fail "cgroupctl resume failed"
assert_eq "frozen of users/alice after resume" "$(cgkey "$(user_cg alice)/cgroup.events" frozen)" 0
vm_root "! grep -q suspend /etc/pam_cgroup/users/alice.toml" || fail "[suspend] still in alice's file"
out=$(vm_client_ssh alice "echo logged-in") || fail "ssh of alice after resume failed: $out"
[[ $out == *logged-in* ]] || fail "alice's command did not run after resume: $out"
POLL_EVERY=3 wait_until 100 vm_root "test -s /tmp/$tag-cron.log" >/dev/null ||
    fail "alice's cron job did not run within 100 s of resume"
assert_eq "root's login after resume" "$(vm_login root 'echo in')" in

vm_root "rm -f /etc/cron.d/pamcg-s18 /tmp/$tag-cron.log" >/dev/null
kill_user_processes alice
