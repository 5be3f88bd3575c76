# The shipped alert rules in a real Prometheus: it scrapes the daemon and PamCgroupOomKill is
# pending or firing for alice after her memory hog is OOM-killed (Prometheus' HTTP API). And
# `cgroupctl top` on a terminal (tmux on the host driving `ssh -tt`) shows the CPU hog's user
# first.
[[ $VM_INSTALL_MODE == deb* ]] || fail "feature missing: the rules come with the .deb ($VM_INSTALL_MODE)"
vm_root "command -v prometheus" >/dev/null || fail "Debian's prometheus package is not in the image"
vm_root "test -f /usr/share/pam-cgroup/prometheus/pam-cgroup.rules.yml" \
    || fail "the package does not ship /usr/share/pam-cgroup/prometheus/pam-cgroup.rules.yml"
vm_root "test -f /usr/share/pam-cgroup/grafana/pam-cgroup-dashboard.json" \
    || fail "the package does not ship the Grafana dashboard"
command -v tmux >/dev/null || fail "tmux is missing on the host (apt-get install tmux)"
kill_user_processes alice
kill_user_processes bob
vm_user_file alice <<'EOT'
"memory.max" = "96M"
"cpu.max" = "50%"
EOT
vm_login alice true >/dev/null || fail "alice cannot log in"

step "a metrics daemon and Prometheus with the shipped rules"
# systemd 252 cannot restart the unit with a drop-in while logins hold its tree (see 28):
# docs/monitoring.md's transient metrics-only daemon.
vm_root "systemctl stop pam-cgroup-metrics.service 2>/dev/null; systemd-run --unit=pam-cgroup-metrics /usr/sbin/cgroupctl daemon --listen 127.0.0.1:9464 --allow-user prometheus" >/dev/null \
    || fail "the metrics daemon did not start"
vm_write /etc/prometheus/prometheus.yml 644 <<'YML'
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - /usr/share/pam-cgroup/prometheus/pam-cgroup.rules.yml
scrape_configs:
  - job_name: pam_cgroup
    static_configs:
      - targets: ['127.0.0.1:9464']
YML
vm_root "systemctl restart prometheus" >/dev/null || fail "prometheus did not start with the shipped rules"
vm_write /tmp/s21-api.py 644 <<'PY'
import json, sys, urllib.parse, urllib.request
def get(path):
    with urllib.request.urlopen("http://127.0.0.1:9090" + path, timeout=10) as r:
        return json.load(r)["data"]
if sys.argv[1] == "query":
    res = get("/api/v1/query?query=" + urllib.parse.quote(sys.argv[2]))["result"]
    print(" ".join(sorted(m["metric"].get("user", "-") + "=" + m["value"][1] for m in res)))
elif sys.argv[1] == "alerts":
    for a in get("/api/v1/alerts")["alerts"]:
        print(a["labels"].get("alertname"), a["labels"].get("user", "-"), a["state"])
elif sys.argv[1] == "rules":
    print(sum(len(g["rules"]) for g in get("/api/v1/rules")["groups"]))
PY
series=$(POLL_EVERY=2 wait_until 120 matching '*alice=*' vm_root "python3 /tmp/s21-api.py query 'pam_cgroup_memory_events_total{event=\"oom_kill\"}'" 2>/dev/null) ||
    fail "Prometheus has no oom_kill series of alice: '$series'"
# Every rule the package ships (counted in the guest's copy, so new rules need no edit here).
shipped=$(vm_root "grep -cE '^ *- (alert|record):' /usr/share/pam-cgroup/prometheus/pam-cgroup.rules.yml")
((shipped > 0)) || fail "no alert rule found in the shipped rules file"
assert_eq "rules Prometheus loaded" "$(vm_root "python3 /tmp/s21-api.py rules")" "$shipped"
sleep 5
before=$(vm_root "python3 /tmp/s21-api.py alerts" 2>/dev/null || true)
! grep -q '^PamCgroupOomKill alice' <<<"$before" || fail "PamCgroupOomKill for alice before her hog ran: $before"

step "alice's memory hog is OOM-killed: PamCgroupOomKill for alice"
vm_login alice "python3 -c 'x = [bytearray(8 << 20) for _ in range(60)]'" >/dev/null 2>&1 || true
# oom_alert: Prometheus's alerts, once alice's OOM alert is among them.
oom_alert() {
    local state
    state=$(vm_root "python3 /tmp/s21-api.py alerts" 2>/dev/null) || true
    printf '%s\n' "$state"
    grep -Eq '^PamCgroupOomKill alice (pending|firing)$' <<<"$state"
}
state=$(POLL_EVERY=2 wait_until 120 oom_alert) || true
tlog "alerts: $state"
grep -Eq '^PamCgroupOomKill alice (pending|firing)$' <<<"$state" \
    || fail "PamCgroupOomKill is not pending or firing for alice: '$state'"
! grep -q '^PamCgroupOomKill bob' <<<"$state" || fail "an OOM alert for bob, who did nothing: $state"

step "cgroupctl top in a terminal: bob's CPU hog first, above idle alice"
# The hog is bob's: top breaks ties by name, so with alice as the hog an unsorted or CPU-less
# table would put her first as well.
vm_login_bg alice "exec -a pamcg-s21-idle sleep 120" >/dev/null
wait_tagged pamcg-s21-idle >/dev/null
vm_login bob "setsid bash -c 'exec -a pamcg-s21-cpu bash -c \"while :; do :; done\"' </dev/null >/dev/null 2>&1 & true" >/dev/null
wait_tagged pamcg-s21-cpu >/dev/null
mapfile -t opts < <(vm_ssh_opts)
session="pamcg-s21-$$"
ssh_cmd=$(printf '%q ' ssh "${opts[@]}" -o ControlMaster=no -o ControlPath=none -tt root@127.0.0.1 cgroupctl top --interval 1)
tmux new-session -d -s "$session" -x 100 -y 30 "$ssh_cmd"
# top_shows_both: the terminal's screen, once bob is first and alice listed.
top_shows_both() {
    local screen
    screen=$(tmux capture-pane -p -t "$session" 2>/dev/null) || true
    printf '%s\n' "$screen"
    [[ $(awk '/^USER/ { getline; print $1; exit }' <<<"$screen") == bob ]] && grep -q '^alice' <<<"$screen"
}
screen=$(POLL_EVERY=2 wait_until 60 top_shows_both) || true
first=$(awk '/^USER/ { getline; print $1; exit }' <<<"$screen")
tmux kill-session -t "$session" 2>/dev/null || true
kill_user_processes alice
kill_user_processes bob
printf '%s\n' "$screen" >"$VM_TMP/s21-top.txt"
tlog_block "tmux capture-pane of cgroupctl top" "$VM_TMP/s21-top.txt"
assert_eq "first user of cgroupctl top (sorted by CPU)" "$first" bob
grep -q '^alice' <<<"$screen" || fail "idle alice is not listed by cgroupctl top: $screen"
grep -q 'cgroupctl top:' <<<"$screen" || fail "top did not draw its terminal header: $screen"

vm_root "systemctl stop prometheus; systemctl stop pam-cgroup-metrics.service 2>/dev/null || true" >/dev/null
