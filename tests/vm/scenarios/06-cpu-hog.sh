# A CPU hog under cpu.max = "50%": cpu.stat shows throttling and the usage stays within
# +-15% of the quota (measured over 10 s of guest time by root).
vm_user_file alice <<'EOT'
"cpu.max" = "50%"
EOT
vm_login alice true >/dev/null || fail "alice cannot log in"
ucg=$(user_cg alice)
assert_file_eq "$ucg/cpu.max" "50000 100000"
step "two busy loops (demand 200%) in alice's session"
vm_login alice "for i in 1 2; do setsid bash -c 'exec -a pamcg-s06-hog bash -c \"while :; do :; done\"' </dev/null >/dev/null 2>&1 & done; true" >/dev/null
wait_tagged pamcg-s06-hog >/dev/null
sleep 3
m=$(vm_root "
a=\$(awk '\$1==\"usage_usec\"{print \$2}' '$ucg/cpu.stat'); t0=\$(awk '\$1==\"nr_throttled\"{print \$2}' '$ucg/cpu.stat'); s=\$(date +%s%N)
sleep 10
b=\$(awk '\$1==\"usage_usec\"{print \$2}' '$ucg/cpu.stat'); t1=\$(awk '\$1==\"nr_throttled\"{print \$2}' '$ucg/cpu.stat'); e=\$(date +%s%N)
echo \$a \$b \$s \$e \$t0 \$t1")
read -r a b s e t0 t1 <<<"$m"
usage_pct=$(( (b - a) * 1000 / ((e - s) / 1000) ))   # thousandths of a CPU
tlog "alice used $((usage_pct / 10)).$((usage_pct % 10))% of a CPU over $(((e - s) / 1000000)) ms; nr_throttled $t0 -> $t1"
kill_user_processes alice
((t1 > t0)) || fail "cpu.stat nr_throttled did not increase ($t0 -> $t1)"
# quota 50% = 500 thousandths; +-15% of the quota: 425..575
((usage_pct >= 425 && usage_pct <= 575)) \
    || fail "usage $((usage_pct / 10)).$((usage_pct % 10))% of a CPU is not within 15% of the 50% quota"
