# Cleanup: after 30 cron jobs and 30 short ssh sessions of alice, no empty session leaf is
# left in alice's cgroup. The cron jobs are real cron (30 entries that all fire in the same
# minute), each recording the cgroup it ran in. Close moves nobody: sshd's monitor and cron's
# child exit inside their leaves, and the daemon removes each leaf as it empties.
require_daemon
vm_root "rm -rf /tmp/s11 && mkdir -m 777 /tmp/s11" >/dev/null
{
    echo "SHELL=/bin/bash"
    for i in $(seq 1 30); do
        echo "* * * * * alice cat /proc/self/cgroup > /tmp/s11/job-$i"
    done
} | vm_write /etc/cron.d/pamcg-s11 644
vm_root "touch /etc/cron.d" >/dev/null

step "30 short ssh sessions"
for i in $(seq 1 30); do
    vm_login alice true >/dev/null || fail "short ssh session $i of alice failed"
done

step "wait for the 30 cron jobs (real cron fires once a minute)"
# jobs_ran: how many cron jobs wrote their file; true once all 30 have. A file counts once it
# holds the line: the shell creates it before cat writes (an empty one was read as "outside").
jobs_ran() {
    local n
    n=$(vm_root "find /tmp/s11 -type f -size +0 | wc -l")
    echo "$n"
    ((n >= 30))
}
n=$(POLL_EVERY=2 wait_until 180 jobs_ran) || true
vm_root "rm -f /etc/cron.d/pamcg-s11" >/dev/null
((n >= 30)) || fail "only $n of 30 cron jobs ran within 3 minutes"
rel=${VM_TREE_ROOT#"$(cg_mount)"}
bad=$(vm_root "grep -LE '^0::$rel/users/alice\.[0-9a-f]{16}/session-' /tmp/s11/job-* || true")
[[ -z $bad ]] || fail "cron jobs ran outside alice's session leaves: $(vm_root "cat $(head -n 1 <<<"$bad")")"

step "no leaf is left behind"
sleep 5
leaves=$(vm_root "for d in '$(user_cg alice)'/session-*; do [ -d \"\$d\" ] || continue; printf '%s %s\n' \"\$d\" \"\$(wc -l < \"\$d/cgroup.procs\")\"; done")
tlog "alice's leaves now: ${leaves:-none}"
empty=$(awk '$2 == 0 {print $1}' <<<"$leaves")
if [[ -n $empty ]]; then
    # Which PAM services failed to close (the module logs every failure), and what the
    # daemon said.
    why=$(vm_root "journalctl -q --no-pager -b | grep -o 'pam_cgroup([a-z-]*:session): user alice: close[^(]*' | sed 's/[0-9][0-9]*/N/g' | sort | uniq -c | sort -rn | head -n 3" || true)
    daemon=$(vm_root "journalctl -q --no-pager -b -u pam-cgroup.service | tail -n 3" || true)
    fail "$(wc -l <<<"$empty") empty session leaves left (of 60 sessions), e.g. $(head -n 1 <<<"$empty")${why:+; close errors in the journal: $(tr -s ' \n' ' ' <<<"$why")}; daemon: $(tr -s ' \n' ' ' <<<"$daemon")"
fi
[[ -z $leaves ]] || fail "session leaves still hold processes after every session ended: $(tr '\n' ' ' <<<"$leaves")"
