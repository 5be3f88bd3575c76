# `cgroupctl stats` shows the OOM fault of a memory hog (the number must match the kernel's
# memory.events).
require_cgroupctl_verb stats
vm_user_file alice <<'EOT'
"memory.max" = "96M"
EOT
# alice's cgroup exists once she has logged in (this scenario may be the first to run).
vm_login alice true >/dev/null || fail "alice cannot log in"
# memory.events counts for the user cgroup's life, and an earlier scenario may have OOM-killed
# alice already: this hog must add a kill of its own.
before=$(cgkey "$(user_cg alice)/memory.events" oom_kill)
vm_login alice "python3 -c 'x = [bytearray(8 << 20) for _ in range(60)]'" >/dev/null 2>&1 || true
ooms=$(cgkey "$(user_cg alice)/memory.events" oom_kill)
((${ooms:-0} > ${before:-0})) || fail "the hog was not OOM-killed (memory.events oom_kill ${before:-0} -> ${ooms:-0})"
vm_root "cgroupctl stats --user alice --json > /tmp/s13-stats.json" >/dev/null || fail "cgroupctl stats --user alice --json failed"
shown=$(vm_root "python3 -c '
import json, sys
def find(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == \"oom_kill\":
                return x
            r = find(x)
            if r is not None:
                return r
    if isinstance(v, list):
        for x in v:
            r = find(x)
            if r is not None:
                return r
print(find(json.load(open(\"/tmp/s13-stats.json\"))))
'") || fail "cgroupctl stats --json printed no JSON"
assert_eq "oom_kill of alice in cgroupctl stats (the kernel's memory.events says $ooms)" "$shown" "$ooms"
step "the text table shows it too"
table=$(vm_root "cgroupctl stats --user alice")
col=$(awk 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "OOM_KILL") c = i } $1 == "alice" && c { print $c }' <<<"$table")
assert_eq "OOM_KILL column of alice in cgroupctl stats" "$col" "$ooms"
