# Plans from an LDAP directory through SSSD (issue 15): dana, a posixAccount of slapd, member
# of the posixGroup plan-gold, logs in by ssh and is confined with plan gold; the plan removed
# in the directory and put back, twice, is applied at the next login and by `cgroupctl reload`
# (after `sss_cache -E`, SSSD's way of forgetting what it cached); `cgroupctl check --user`
# names the plan. Then the login cost with a plan group of 5,001 members (frank in plan-bulk),
# measured (figures in the transcript and times.txt), not asserted.
# shellcheck source=../ldap.sh
source "$VM_LIB_DIR/ldap.sh"
ldap_setup
gold_dn="cn=plan-gold,ou=groups,$LDAP_BASE"

step "the directory: dana's account, her primary group and plan-gold"
ldap_show "(|(uid=dana)(cn=dana)(cn=plan-gold))" >/dev/null
vm_root "getent passwd dana; getent group plan-gold; id dana; grep -E '^(passwd|group):' /etc/nsswitch.conf" >/dev/null
vm_root "getent passwd dana | grep -q ':3001:3001:'" || fail "SSSD does not resolve dana from the directory"
[[ $(vm_root "grep -c '^dana:' /etc/passwd || true") == 0 ]] || fail "dana is in /etc/passwd: the test would not use LDAP"

step "dana's ssh login: confined with plan gold (pids.max 300, memory.max 320M)"
vm_login_bg dana "exec -a pamcg-s22-dana sleep 300" >/dev/null
pd=$(wait_tagged pamcg-s22-dana)
assert_session_leaf "$pd" dana "dana's ssh session" >/dev/null
vm_root "ls -ld '$(user_cg dana)'; cat '$(user_cg dana)/pids.max' '$(user_cg dana)/memory.max'" >/dev/null
assert_file_eq "$(user_cg dana)/pids.max" 300
assert_file_eq "$(user_cg dana)/memory.max" $((320 * 1024 * 1024))
assert_eq "group of users/dana" "$(vm_root "stat -c '%U %g %a' '$(user_cg dana)'")" "root 3001 750"
out=$(vm_root "cgroupctl check --user dana") || fail "cgroupctl check --user dana failed"
grep -q 'profile: gold$' <<<"$out" || fail "check --user dana does not name plan gold: $out"

# plan LABEL EXPECTED_PIDS_MAX: the plan cgroupctl check names and users/dana's pids.max.
expect_plan() {
    local label=$1 pids=$2 out
    out=$(vm_root "cgroupctl check --user dana") || fail "cgroupctl check --user dana failed"
    if [[ $label == gold ]]; then
        grep -q 'profile: gold$' <<<"$out" || fail "check --user dana does not name gold after the change: $out"
    else
        grep -q 'profile: (none)$' <<<"$out" || fail "check --user dana still names a plan: $out"
    fi
    assert_file_eq "$(user_cg dana)/pids.max" "$pids"
}
remove_plan() {
    ldap_modify "dn: $gold_dn
changetype: modify
delete: memberUid
memberUid: dana"
    ldap_show "(cn=plan-gold)" memberUid >/dev/null
    vm_root "sss_cache -E" >/dev/null || fail "sss_cache -E failed"
}
put_back_plan() {
    ldap_modify "dn: $gold_dn
changetype: modify
add: memberUid
memberUid: dana"
    ldap_show "(cn=plan-gold)" memberUid >/dev/null
    vm_root "sss_cache -E" >/dev/null || fail "sss_cache -E failed"
}

step "plan removed in the directory, then cgroupctl reload: the defaults (pids.max 200)"
remove_plan
vm_root "cgroupctl reload" >/dev/null || fail "cgroupctl reload failed after the plan was removed"
expect_plan none 200
step "plan put back, then dana's next login (no reload): gold again"
put_back_plan
vm_login dana true >/dev/null || fail "dana's login failed after the plan was put back"
expect_plan gold 300
step "removed again, applied by dana's next login"
remove_plan
vm_login dana true >/dev/null || fail "dana's login failed after the plan was removed again"
expect_plan none 200
step "put back again, applied by reload"
put_back_plan
vm_root "cgroupctl reload" >/dev/null || fail "cgroupctl reload failed after the plan was put back"
expect_plan gold 300
vm_root "cat '$(user_cg dana)/pids.max' '$(user_cg dana)/memory.max'" >/dev/null

# ---- login cost with a 5,001-member plan group ----------------------------------------------
step "login cost: frank (plan-bulk, $((LDAP_BULK + 1)) members) against dana (plan-gold, 1 member)"
vm_root "getent group plan-bulk | tr ',' '\n' | wc -l" >/dev/null
# What a login resolves (getpwnam, getgrouplist, getgrgid of each group) is what `cgroupctl
# check --user` resolves; timed in the guest, SSSD's cache emptied first (cold) or not (warm),
# and a whole ssh login (cold) for the same users.
measure() {
    local label=$1
    vm_root "python3 - <<'EOF'
import subprocess, time
def ms(cmd):
    t = time.monotonic(); subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    return (time.monotonic() - t) * 1000
for user in ('dana', 'frank'):
    cold = []
    warm = []
    for _ in range(3):
        subprocess.run('sss_cache -E', shell=True, check=True)
        cold.append(ms('cgroupctl check --user ' + user))
        warm.append(ms('cgroupctl check --user ' + user))
    print('$label %s: NSS work of a login (cgroupctl check --user): cold cache median %.0f ms, warm median %.0f ms' % (user, sorted(cold)[1], sorted(warm)[1]))
EOF"
}
while read -r line; do
    tlog "measured: $line"
    printf '%s\n' "$line" >>"${VM_TIMES:-/dev/null}"
done < <(measure "sssd default")
for user in dana frank; do
    vm_root "sss_cache -E" >/dev/null
    t0=$(date +%s%N)
    vm_login "$user" true >/dev/null || fail "$user's ssh login failed"
    dt=$((($(date +%s%N) - t0) / 1000000))
    line="sssd default $user: whole ssh login (host clock, TCG guest), cold SSSD cache: $dt ms"
    tlog "measured: $line"
    printf '%s\n' "$line" >>"${VM_TIMES:-/dev/null}"
done
assert_file_eq "$(user_cg frank)/pids.max" 250
step "with ignore_group_members = true (SSSD does not fetch the members of groups)"
vm_root "sed -i '/^\[domain\/example\]/a ignore_group_members = true' /etc/sssd/sssd.conf && systemctl restart sssd && sleep 2 && getent passwd frank" >/dev/null ||
    fail "sssd did not restart with ignore_group_members"
while read -r line; do
    tlog "measured: $line"
    printf '%s\n' "$line" >>"${VM_TIMES:-/dev/null}"
done < <(measure "sssd ignore_group_members")
vm_login frank true >/dev/null || fail "frank's login failed with ignore_group_members"
out=$(vm_root "cgroupctl check --user frank") || fail "cgroupctl check --user frank failed"
grep -q 'profile: bulk$' <<<"$out" || fail "with ignore_group_members frank's plan is no longer found: $out"
vm_root "sed -i '/^ignore_group_members/d' /etc/sssd/sssd.conf && systemctl restart sssd" >/dev/null
ldap_teardown
