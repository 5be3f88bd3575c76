# A memory hog by alice is OOM-killed inside alice's cgroup; bob's process survives;
# memory.events oom_kill increments.
vm_user_file alice <<'EOT'
"memory.max" = "128M"
EOT
vm_login bob "exec -a pamcg-s05-bob sleep 300 </dev/null >/dev/null 2>&1 &" >/dev/null
pb=$(wait_tagged pamcg-s05-bob)
assert_session_leaf "$pb" bob "bob's process" >/dev/null
vm_login alice true >/dev/null || fail "alice cannot log in"
ucg=$(user_cg alice)
assert_file_eq "$ucg/memory.max" $((128 * 1024 * 1024))
before=$(cgkey "$ucg/memory.events" oom_kill)
before=${before:-0}

step "the hog: touches 600 MB in 8 MB steps (the guest has 1 GB, no swap)"
vm_root "mkdir -p /tmp/s05 && chmod 777 /tmp/s05" >/dev/null
vm_login alice "python3 -c '
import sys, time
chunks = []
for i in range(75):
    chunks.append(bytearray(8 << 20))
    with open(\"/tmp/s05/hog-progress\", \"w\") as f:
        f.write(str(i + 1))
print(\"hog survived\")
'; echo \"hog exit status \$?\" > /tmp/s05/hog-status" >/dev/null 2>&1 || true

step "what the kernel did"
status=$(vm_root "cat /tmp/s05/hog-status 2>/dev/null || true")
tlog "hog status file: $status"
after=$(cgkey "$ucg/memory.events" oom_kill)
((after > before)) || fail "memory.events oom_kill of alice did not increase ($before -> $after)"
[[ $status == "hog exit status 137" ]] \
    || fail "the hog was not SIGKILLed (status file: '${status:-missing}': the ssh session itself may have been killed)"
progress=$(vm_root "cat /tmp/s05/hog-progress")
((progress < 75)) || fail "the hog allocated all 600 MB despite memory.max 128M"
peak=$(vm_root "cat '$ucg/memory.peak' 2>/dev/null || echo n/a")
tlog "alice memory.peak: $peak"
vm_root "kill -0 $pb" || fail "bob's process $pb died during alice's OOM"
assert_session_leaf "$pb" bob "bob's process after the OOM" >/dev/null
bob_ooms=$(cgkey "$(user_cg bob)/memory.events" oom_kill)
assert_eq "bob's memory.events oom_kill" "${bob_ooms:-0}" 0
kill_user_processes bob
