# Metrics: the daemon serves them on 127.0.0.1:9464 to root and the prometheus user only (a
# unit drop-in, as docs/monitoring.md shows); a customer gets nothing and cannot stall a scrape; Debian's
# Prometheus scrapes them and shows per-user series. Before that, with the unit as packaged:
# `cgroupctl stats --prometheus` has the daemon's own counters (from its root-only socket) and
# passes promtool; the textfile timer is off, and its service writes a promtool-clean 0644
# file that a customer cannot read.
[[ $VM_INSTALL_MODE == deb* ]] || fail "feature missing: the unit comes with the .deb ($VM_INSTALL_MODE)"
vm_root "command -v prometheus" >/dev/null || fail "Debian's prometheus package is not in the image"

step "the packaged daemon's own counters reach stats --prometheus; the textfile service"
require_daemon
r=$(wait_until 20 matching '*1' vm_root "cgroupctl stats --prometheus 2>&1 >/tmp/s28-stats.prom; grep -c '^pam_cgroup_daemon_reloads_total ' /tmp/s28-stats.prom") ||
    fail "stats --prometheus has no daemon counters: $r"
r=$(vm_root "promtool check metrics </tmp/s28-stats.prom 2>&1; echo rc=\$?")
[[ $r == "rc=0" ]] || fail "promtool check metrics on stats --prometheus: $r"
r=$(vm_root "systemctl is-enabled pam-cgroup-textfile.timer 2>&1 || true")
[[ $r == disabled ]] || fail "pam-cgroup-textfile.timer is '$r' after install (must be disabled)"
textdir=/var/lib/prometheus/node-exporter
mode_before=$(vm_root "stat -c %a $textdir 2>/dev/null || echo none")
vm_root "mkdir -p $textdir && chgrp prometheus $textdir && chmod 0750 $textdir && systemctl start pam-cgroup-textfile.service" >/dev/null \
    || fail "pam-cgroup-textfile.service failed: $(vm_root 'journalctl -u pam-cgroup-textfile.service --no-pager | tail -n 5' || true)"
r=$(vm_root "stat -c '%a %U' $textdir/pam_cgroup.prom; promtool check metrics <$textdir/pam_cgroup.prom 2>&1; grep -c '^pam_cgroup_daemon_reloads_total ' $textdir/pam_cgroup.prom")
[[ $r == $'644 root\n1' ]] || fail "the textfile: '$r'"
r=$(vm_login alice "cat $textdir/pam_cgroup.prom >/dev/null 2>&1 && echo read || echo refused")
[[ $r == refused ]] || fail "alice read the textfile: $r"
if [[ $mode_before == none ]]; then
    vm_root "rm -f $textdir/pam_cgroup.prom && rmdir $textdir" >/dev/null
else
    vm_root "rm -f $textdir/pam_cgroup.prom && chgrp root $textdir && chmod $mode_before $textdir" >/dev/null
fi

step "the daemon serves metrics on 127.0.0.1:9464 to root and prometheus"
kill_user_processes alice
kill_user_processes bob
vm_root "mkdir -p /etc/systemd/system/pam-cgroup.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/sbin/cgroupctl daemon --listen 127.0.0.1:9464 --allow-user prometheus\n' \
    >/etc/systemd/system/pam-cgroup.service.d/metrics.conf
systemctl daemon-reload" >/dev/null || fail "cannot install the metrics drop-in"
systemd_version=$(vm_root "systemctl --version | awk 'NR == 1 { print \$2 }'")
if ((systemd_version >= 254)) || [[ -z $(vm_root "ls '$VM_TREE_ROOT/users' 2>/dev/null || true") ]]; then
    vm_root "systemctl restart pam-cgroup.service" >/dev/null \
        || fail "restart with the metrics drop-in failed: $(vm_root 'systemctl --no-pager status pam-cgroup.service 2>&1 | tail -n 5' || true)"
else
    # systemd < 254 cannot restart the unit once logins made its tree (pam_cgroup(8)): the
    # drop-in applies from the next boot, and docs/monitoring.md's way to serve metrics at once is a
    # second daemon in a transient unit of its own.
    vm_root "systemd-run --unit=pam-cgroup-metrics /usr/sbin/cgroupctl daemon --listen 127.0.0.1:9464 --allow-user prometheus" >/dev/null \
        || fail "the transient metrics daemon did not start"
fi
scrape='import socket, sys, time
start = time.monotonic()
s = socket.create_connection(("127.0.0.1", 9464), timeout=10)
data = b""
try:
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
except ConnectionResetError:
    data = b"reset"
print(data.split(b"\r\n")[0].decode(), "leak" if b"pam_cgroup_" in data else "noleak",
      "%.3f" % (time.monotonic() - start))'
vm_write /tmp/s28-scrape.py 644 <<<"$scrape"
r=$(wait_until 30 matching 'HTTP/1.1 200 OK leak*' vm_root "python3 /tmp/s28-scrape.py" 2>/dev/null) ||
    fail "root cannot scrape http://127.0.0.1:9464/metrics: '$r'"

step "alice (confined, in her fence) cannot read them"
vm_login_bg alice "exec -a pamcg-s28 sleep 300" >/dev/null
wait_tagged pamcg-s28 >/dev/null
r=$(vm_login alice "python3 /tmp/s28-scrape.py")
case $r in
    "HTTP/1.1 403 Forbidden noleak"* | "reset noleak"*) tlog "ok: alice got '$r'" ;;
    *) fail "alice's scrape answered '$r'" ;;
esac

step "alice holds twenty slow connections open: root's scrape still completes within 1 s"
loris='import socket, time
held = []
for _ in range(20):
    try:
        c = socket.create_connection(("127.0.0.1", 9464), timeout=5)
        c.sendall(b"G")
        held.append(c)
    except OSError:
        pass
time.sleep(20)'
vm_write /tmp/s28-loris.py 644 <<<"$loris"
vm_login_bg alice "exec -a pamcg-s28-loris python3 /tmp/s28-loris.py" >/dev/null
wait_tagged pamcg-s28-loris >/dev/null
sleep 2
r=$(vm_root "python3 /tmp/s28-scrape.py")
secs=${r##* }
tlog "root's scrape during the attack: $r"
[[ $r == "HTTP/1.1 200 OK leak"* ]] || fail "root's scrape during the attack answered '$r'"
awk -v s="$secs" 'BEGIN { exit !(s < 1.0) }' || fail "root's scrape took ${secs}s (>= 1 s)"

step "Debian's Prometheus scrapes them: per-user series"
vm_write /etc/prometheus/prometheus.yml 644 <<'YML'
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: pam_cgroup
    static_configs:
      - targets: ['127.0.0.1:9464']
YML
vm_root "systemctl restart prometheus" >/dev/null || fail "prometheus did not start"
query='import json, sys, urllib.parse, urllib.request
q = urllib.parse.quote(sys.argv[1])
with urllib.request.urlopen("http://127.0.0.1:9090/api/v1/query?query=" + q, timeout=10) as r:
    res = json.load(r)["data"]["result"]
print(" ".join(sorted(m["metric"].get("user", "-") + "=" + m["value"][1] for m in res)))'
vm_write /tmp/s28-query.py 644 <<<"$query"
series=$(POLL_EVERY=2 wait_until 120 matching '*alice=*' vm_root "python3 /tmp/s28-query.py 'pam_cgroup_sessions{job=\"pam_cgroup\"}'" 2>/dev/null) || true
tlog "Prometheus: pam_cgroup_sessions = $series"
[[ $series == *"alice="* ]] || fail "Prometheus shows no per-user series for alice: '$series' (up: $(vm_root "python3 /tmp/s28-query.py 'up'" || true))"
up=$(vm_root "python3 /tmp/s28-query.py 'up{job=\"pam_cgroup\"}'")
[[ $up == "-=1" ]] || fail "the pam_cgroup target is not up in Prometheus: '$up'"

kill_user_processes alice
vm_root "systemctl stop prometheus
systemctl stop pam-cgroup-metrics.service 2>/dev/null || true
rm -f /etc/systemd/system/pam-cgroup.service.d/metrics.conf
rmdir /etc/systemd/system/pam-cgroup.service.d 2>/dev/null
systemctl daemon-reload" >/dev/null || fail "restoring the unit failed"
if ((systemd_version >= 254)); then
    vm_root "systemctl restart pam-cgroup.service" >/dev/null || fail "restoring the unit failed"
fi
