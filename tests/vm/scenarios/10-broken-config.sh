# A broken config: with on_error=open logins still work and the journal says why; with
# on_error=closed alice is refused; root always logs in, whatever the config.
cfg=/etc/pam_cgroup/config.toml

root_gets_in() {
    out=$(vm_login root "echo root-in; cat /proc/self/cgroup") || fail "root cannot log in ($1)"
    grep -q root-in <<<"$out" || fail "root's login ran nothing ($1)"
}

step "bad limit value, on_error = open"
cursor=$(journal_cursor)
vm_write "$cfg" 644 <<'EOT'
[policy]
on_error = "open"
[limits]
"memory.max" = "lots"
EOT
vm_login_bg alice "exec -a pamcg-s10-open sleep 60" >/dev/null
pa=$(wait_tagged pamcg-s10-open 30)
tlog "alice got in with a broken config (on_error=open): process $pa in $(cgroup_of "$pa")"
log=$(journal_since "$cursor" | grep 'pam_cgroup' || true)
[[ -n $log ]] || fail "the journal has no pam_cgroup message about the broken config"
grep -q "$cfg" <<<"$log" || fail "the journal's pam_cgroup message does not name $cfg: $(head -n 1 <<<"$log")"
grep -qi 'memory.max' <<<"$log" || fail "the journal's pam_cgroup message does not name the key memory.max: $(head -n 1 <<<"$log")"
root_gets_in "broken config, on_error=open"
kill_user_processes alice

step "bad limit value, on_error = closed: alice refused, root in"
cursor=$(journal_cursor)
vm_write "$cfg" 644 <<'EOT'
[policy]
on_error = "closed"
[limits]
"memory.max" = "lots"
EOT
if vm_login alice "echo alice-in" >/dev/null 2>&1; then
    fail "alice logged in despite a broken config with on_error=closed"
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

# Issue 18: `[policy] on_error = "closed"` validated by `cgroupctl check`, then a typo: the
# host stays closed, the exempt admin (carol, group admins) and root get in.
step "a typo appended after a valid closed [policy]: alice refused, carol and root in"
vm_write_config
vm_root "sed -i 's/^on_error = \"open\"/on_error = \"closed\"/' $cfg && cgroupctl check" >/dev/null \
    || fail "the closed fixture config does not validate"
vm_root "echo '[[broken' >> $cfg" >/dev/null
if vm_login alice "echo alice-in" >/dev/null 2>&1; then
    fail "alice logged in after a typo turned a closed config broken"
fi
carol_in() {
    out=$(vm_login carol "echo carol-in; grep ^0:: /proc/self/cgroup") || fail "carol (exempt) cannot log in ($1)"
    grep -q carol-in <<<"$out" || fail "carol's login ran nothing ($1)"
    [[ ! $out =~ /users/carol(\.[0-9a-f]{16})?/ ]] || fail "carol (exempt) was confined ($1): $out"
}
carol_in "typo after a valid [policy]"
root_gets_in "typo after a valid closed [policy]"
log=$(vm_root "journalctl -q --no-pager -n 50 -g pam_cgroup" || true)
grep -q 'following the fallback policy (on_error=closed' <<<"$log" \
    || fail "the journal does not say the fallback policy is closed: $(tail -n 3 <<<"$log")"
step "the [policy] header itself broken: the policy kept by cgroupctl check decides"
vm_root "sed -i 's/^\\[policy\\]/[policy/' $cfg" >/dev/null
if vm_login alice "echo alice-in" >/dev/null 2>&1; then
    fail "alice logged in with a broken [policy] header (the kept policy says closed)"
fi
carol_in "broken [policy] header"
root_gets_in "broken [policy] header"
