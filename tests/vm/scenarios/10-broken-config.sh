# A broken config never changes what customers get: a config validated by `cgroupctl check` is
# kept as the last good one, and after each kind of typo alice's next ssh login lands in her
# fence with the last good plan's limits, enforced by the kernel (a burst of processes stops at
# pids.max); the journal names the error and its place once; list/stats/sessions answer with one
# line on stderr; check and doctor FAIL with file:line:col; reload applies the last good config
# (exit 1); the daemon logs the error once. A broken user file keeps its last good copy. Only on
# a host where no good config was ever kept does on_error decide: with on_error=open logins get
# in unconfined, with on_error=closed alice is refused; root always logs in.
cfg=/etc/pam_cgroup/config.toml
kept_dir=/var/lib/pam_cgroup
kept="$kept_dir/last-good@%2Fetc%2Fpam_cgroup%2Fconfig.toml"
ucg=$(user_cg alice)
# The plan alice is on (pro, through plan-pro), with a pids.max of its own so that the limit
# seen in her cgroup can only come from this config.
good_pids=48

root_gets_in() {
    out=$(vm_login root "echo root-in; cat /proc/self/cgroup") || fail "root cannot log in ($1)"
    grep -q root-in <<<"$out" || fail "root's login ran nothing ($1)"
}
carol_in() {
    out=$(vm_login carol "echo carol-in; grep ^0:: /proc/self/cgroup") || fail "carol (exempt) cannot log in ($1)"
    grep -q carol-in <<<"$out" || fail "carol's login ran nothing ($1)"
    [[ ! $out =~ /users/carol(\.[0-9a-f]{16})?/ ]] || fail "carol (exempt) was confined ($1): $out"
}
# forget_applied: users/alice loses its limits and its applied stamp, so that the next login
# writes the limits of whatever config it uses (the stamp would otherwise skip the write).
forget_applied() {
    vm_root "python3 -c 'import os; os.removexattr(\"$ucg\", \"trusted.pam_cgroup.applied\")' 2>/dev/null; echo max > '$ucg/pids.max'" >/dev/null \
        || fail "cannot reset users/alice"
}
# alice_confined WHAT: alice's next login is in her session leaf, users/alice has the last
# good plan's pids.max, and a burst of processes from her session stops there (forked by sh:
# bash retries a refused fork for half a minute).
alice_confined() {
    forget_applied
    local before after pid cur
    before=$(pids_max_refusals "$ucg")
    vm_login_bg alice "/usr/local/bin/pamcg-s10-burst $((good_pids + 20))" >/dev/null
    pid=$(wait_tagged pamcg-s10-burst 60)
    assert_session_leaf "$pid" alice "alice's login ($1)" >/dev/null
    assert_file_eq "$ucg/pids.max" "$good_pids"
    cur=$(cgread "$ucg/pids.current")
    after=$(pids_max_refusals "$ucg")
    tlog "$1: pids.current $cur, refused forks $before -> $after"
    ((cur <= good_pids)) || fail "$1: pids.current $cur is above the last good pids.max $good_pids"
    ((after > before)) || fail "$1: no fork was refused at pids.max $good_pids"
    kill_user_processes alice
}
# verb_answers VERB...: exit 0 and one line on stderr naming the last good config.
verb_answers() {
    local err
    err=$(vm_root "cgroupctl $* 2>&1 >/dev/null") || fail "cgroupctl $* failed with a broken config: $err"
    [[ $(wc -l <<<"$err") == 1 && $err == *"using the last good config"* ]] \
        || fail "cgroupctl $*: expected one line about the last good config on stderr, got: $err"
}

require_daemon
vm_write /usr/local/bin/pamcg-s10-burst 755 <<'EOT'
#!/bin/bash
# N sleeps in the background from sh (a refused fork ends its loop), then the tagged wait.
sh -c 'i=0; while [ $i -lt "$1" ]; do sleep 60 & i=$((i + 1)); done' sh "$1" 2>/dev/null
exec -a pamcg-s10-burst sleep 60
EOT
step "a good config, validated and kept by cgroupctl check"
vm_root "sed -i 's/^\"pids.max\" = 300/\"pids.max\" = $good_pids/' $cfg && cgroupctl check && cp $cfg /root/s10-good.toml" >/dev/null \
    || fail "the scenario's good config does not validate"
meta=$(vm_root "stat -c '%U %a' '$kept' && stat -c '%U %a' $kept_dir") || fail "cgroupctl check kept no copy in $kept"
assert_eq "owner and mode of the kept copy and its directory" "$(tr '\n' ' ' <<<"$meta")" "root 600 root 700 "
if vm_login alice "cat '$kept'" >/dev/null 2>&1; then
    fail "alice can read the kept config"
fi
vm_root "cmp $cfg '$kept'" >/dev/null || fail "the kept copy is not the validated file"
restore_good() {
    vm_root "cp /root/s10-good.toml $cfg.tmp && mv -f $cfg.tmp $cfg" >/dev/null || fail "cannot restore the good config"
}
alice_confined "the good config"

# Each typo is one change of the good file. pos: the file:line:col the error must name.
typo() {
    local what=$1 sed_expr=$2 cursor pos log
    step "$what: alice confined with the last good limits"
    restore_good
    # The cursor before the typo: the once-per-change line goes to whichever login comes
    # first, a root cron session in the same second as the edit too.
    cursor=$(journal_cursor)
    vm_root "sed -i '$sed_expr' $cfg" >/dev/null
    vm_root "cmp -s $cfg /root/s10-good.toml" && fail "$what: the typo changed nothing"
    vm_root "cgroupctl check >/dev/null 2>&1; test \$? -eq 3" >/dev/null || fail "$what: cgroupctl check does not exit 3"
    pos=$(vm_root "cgroupctl check 2>/dev/null | grep '^FAIL *config ' | grep -o '$cfg:[0-9]*:[0-9]*'" || true)
    [[ $pos =~ ^$cfg:[0-9]+:[0-9]+$ ]] || fail "$what: cgroupctl check names no file:line:col: '$pos'"
    vm_root "cgroupctl doctor 2>/dev/null | grep '^FAIL *config ' | grep -qF '$pos'" >/dev/null \
        || fail "$what: cgroupctl doctor does not FAIL the config at $pos"
    alice_confined "$what"
    # Once for the host: from alice's user manager's session, her ssh session or a cron
    # session, whichever opened first.
    log=$(journal_since "$cursor" | grep 'pam_cgroup(' | grep -F "$pos" || true)
    [[ -n $log ]] || fail "$what: the journal does not name $pos"
    grep -q 'using the last good config' <<<"$log" || fail "$what: the journal does not say the last good config is used: $log"
    # Once per change: the next login says nothing more about it.
    cursor=$(journal_cursor)
    vm_login alice true >/dev/null || fail "$what: alice's second login failed"
    [[ -z $(journal_since "$cursor" | grep 'pam_cgroup(' | grep -F "$pos" || true) ]] \
        || fail "$what: logged again at the next login"
    carol_in "$what"
    root_gets_in "$what"
    verb_answers list
    verb_answers stats
    verb_answers sessions
    vm_root "cmp -s '$kept' /root/s10-good.toml" >/dev/null || fail "$what: the kept copy is no longer the good config"
}
typo "a bad value" "s/^\"pids.max\" = 200/\"pids.max\" = \"512x\"/"
typo "an unknown key" "s/^exempt_groups/exempt_group/"
typo "broken TOML" "s/^\\[limits\\]/[limits/"
typo "a wrong type" "s/^min_uid = 1000/min_uid = \"1000\"/"
typo "an unknown section" "s/^\\[limits\\]/[limitz]/"

step "reload with the last typo: the last good config is applied, exit 1"
forget_applied
vm_root "cgroupctl reload >/dev/null 2>&1; test \$? -eq 1" >/dev/null || fail "cgroupctl reload with a broken config does not exit 1"
assert_file_eq "$ucg/pids.max" "$good_pids"

step "the daemon logs the broken file once"
# The packaged daemon looks at the file at each pass (every 30 s).
POLL_EVERY=5 wait_until 70 vm_root "journalctl -q --no-pager -u pam-cgroup.service -g 'limitz' | grep -q 'last good copy'" >/dev/null 2>&1 ||
    fail "the daemon did not log the broken config within 70 s"
sleep 35
n=$(vm_root "journalctl -q --no-pager -u pam-cgroup.service -g 'limitz' | grep -c 'last good copy'" || true)
assert_eq "the daemon's lines about the [limitz] typo, 35 s (a pass or more) later" "$n" 1

step "a typo in a user file keeps its last good copy"
restore_good
good_pids=31
vm_user_file alice <<EOT
"pids.max" = $good_pids
EOT
vm_root "cgroupctl check" >/dev/null || fail "alice's user file does not validate"
alice_confined "alice's good user file"
cursor=$(journal_cursor)
vm_user_file alice <<EOT
"pids.max" = "${good_pids}x"
EOT
alice_confined "a typo in alice's user file"
journal_since "$cursor" | grep 'pam_cgroup(' | grep -F '/etc/pam_cgroup/users/alice.toml:1:' | grep -q 'using the last good user file' \
    || fail "the journal does not name alice.toml's error and the last good copy"
vm_root "rm -f /etc/pam_cgroup/users/alice.toml /usr/local/bin/pamcg-s10-burst /root/s10-good.toml" >/dev/null

# ---- a host where no good config was ever kept: on_error decides ----------------------------
forget_kept() {
    vm_root "rm -rf $kept_dir/last-good@* $kept_dir/last-good-users@* $kept_dir/last-good-policy@*" >/dev/null
}

step "no good config ever kept, bad limit value, on_error = open"
cursor=$(journal_cursor)
vm_write "$cfg" 644 <<'EOT'
[policy]
on_error = "open"
[limits]
"memory.max" = "lots"
EOT
# Forgotten once the file is broken: nothing (the daemon's pass included) keeps it again.
forget_kept
vm_login_bg alice "exec -a pamcg-s10-open sleep 60" >/dev/null
pa=$(wait_tagged pamcg-s10-open 30)
# The module let her in without a session leaf; the daemon's safety net may then move the
# process into her user cgroup's sshd/pid-* (any process of a confined uid outside its fence).
cg=$(cgroup_of "$pa")
tlog "alice's login with a broken first config (on_error=open) is in $cg"
[[ ! $cg =~ /session-[^/]+/login$ ]] || fail "alice's login was placed in a session leaf with no good config: $cg"
log=$(journal_since "$cursor" | grep 'pam_cgroup' || true)
grep -q 'session allowed unconfined (on_error=open)' <<<"$log" \
    || fail "the journal does not say alice was let in unconfined (on_error=open): $(tail -n 3 <<<"$log")"
[[ -n $log ]] || fail "the journal has no pam_cgroup message about the broken config"
grep -q "$cfg" <<<"$log" || fail "the journal's pam_cgroup message does not name $cfg: $(head -n 1 <<<"$log")"
grep -qi 'memory.max' <<<"$log" || fail "the journal's pam_cgroup message does not name the key memory.max: $(head -n 1 <<<"$log")"
grep -q 'no good config was ever kept' <<<"$log" || fail "the journal does not say no good config was kept: $(head -n 1 <<<"$log")"
root_gets_in "broken first config, on_error=open"
vm_root "cgroupctl list >/dev/null 2>&1; test \$? -eq 3" >/dev/null || fail "cgroupctl list with no good config ever kept does not exit 3"
kill_user_processes alice

step "no good config ever kept, bad limit value, on_error = closed: alice refused, root in"
cursor=$(journal_cursor)
vm_write "$cfg" 644 <<'EOT'
[policy]
on_error = "closed"
[limits]
"memory.max" = "lots"
EOT
if vm_login alice "echo alice-in" >/dev/null 2>&1; then
    fail "alice logged in despite a broken first config with on_error=closed"
fi
# Refused by the module for the broken file, not by something else on the way.
log=$(journal_since "$cursor" | grep 'pam_cgroup' || true)
grep -q 'memory.max' <<<"$log" && grep -q 'on_error=closed' <<<"$log" \
    || fail "the journal does not say alice was refused for the broken memory.max with on_error=closed: $(tail -n 3 <<<"$log")"
root_gets_in "broken config, on_error=closed"

step "not TOML at all"
vm_write "$cfg" 644 <<<'this is [[[ not toml'
root_gets_in "garbage config"
step "config writable by others (refused as insecure)"
vm_write "$cfg" 666 <<'EOT'
[policy]
on_error = "closed"
EOT
root_gets_in "world-writable config"
step "config missing"
vm_root "rm -f $cfg" >/dev/null
root_gets_in "no config file"
step "closed and a tree root that cannot exist"
vm_write "$cfg" 644 <<'EOT'
[tree]
root = "/sys/fs/cgroup/does/not/exist/ever"
[policy]
on_error = "closed"
EOT
root_gets_in "unusable tree root, on_error=closed"
