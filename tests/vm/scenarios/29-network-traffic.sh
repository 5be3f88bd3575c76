# Traffic per customer (issue 16): with private IPs enabled, `cgroupctl init` also attaches the
# traffic counters. alice, in her ssh session, copies a file of known size with scp to
# 127.0.0.1:22; her scp/ssh client's socket is born in her fence, so its bytes count as her
# loopback transmit, and bob's counters do not move. The daemon's metrics endpoint and
# Debian's Prometheus then show the series
# pam_cgroup_network_transmit_bytes_total{user="alice",scope="loopback"}.
# (The server side of an ssh login is not the customer's: sshd accepted that connection on its
# own listening socket, outside the tree, and the kernel attributes an accepted socket to the
# listener's cgroup; docs/private-ip.md, "Traffic per customer".)
[[ $VM_INSTALL_MODE == deb* ]] || fail "feature missing: the daemon's unit comes with the .deb ($VM_INSTALL_MODE)"
require_cgroupctl_verb init
vm_enable_private_ip || fail "cgroupctl init failed"
vm_root "bpftool cgroup show '$VM_TREE_ROOT' 2>/dev/null || true" >/dev/null
SIZE=$((4 * 1024 * 1024))

net_json() { # USER FIELD: network.loopback.FIELD of USER, from cgroupctl stats --json
    vm_root "cgroupctl stats --user $1 --json" | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]["network"]
print(s["loopback"][sys.argv[1]] if s else "null")' "$2"
}

step "alice and bob have cgroups (a login each); their counters before"
vm_login alice "head -c $SIZE /dev/urandom > ~/s29.bin
mkdir -p ~/.ssh && chmod 700 ~/.ssh
rm -f ~/.ssh/s29 ~/.ssh/s29.pub
ssh-keygen -q -t ed25519 -N '' -f ~/.ssh/s29
cp -a ~/.ssh/authorized_keys ~/.ssh/authorized_keys.s29-saved 2>/dev/null || true
cat ~/.ssh/s29.pub >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys" >/dev/null \
    || fail "preparing alice's file and key failed"
vm_login bob "true" >/dev/null || fail "bob's login failed"
a0=$(net_json alice transmit_bytes)
b0=$(net_json bob transmit_bytes)
b0r=$(net_json bob receive_bytes)
tlog "before: alice loopback transmit $a0, bob transmit $b0 receive $b0r"
[[ $a0 =~ ^[0-9]+$ && $b0 =~ ^[0-9]+$ ]] || fail "no network counters in cgroupctl stats --json (alice '$a0', bob '$b0')"

step "alice copies $SIZE bytes with scp to 127.0.0.1"
vm_login alice "scp -q -i ~/.ssh/s29 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o BatchMode=yes ~/s29.bin alice@127.0.0.1:/tmp/s29-copy.bin && cmp ~/s29.bin /tmp/s29-copy.bin" >/dev/null \
    || fail "alice's scp failed"
a1=$(net_json alice transmit_bytes)
b1=$(net_json bob transmit_bytes)
b1r=$(net_json bob receive_bytes)
delta=$((a1 - a0))
tlog "after: alice loopback transmit $a1 (+$delta for a $SIZE-byte file), bob transmit $b1 receive $b1r"
# Expected: the file, encrypted (a few bytes of MAC and padding per 32 KiB channel packet),
# plus the key exchange and authentication (a few KiB), plus TCP/IP headers (52 bytes per
# segment of up to 64 KiB on loopback): at least SIZE, within SIZE + 5% + 64 KiB.
((delta >= SIZE)) || fail "alice's loopback transmit grew by $delta, less than the $SIZE-byte file"
((delta <= SIZE + SIZE / 20 + 65536)) || fail "alice's loopback transmit grew by $delta, far more than the $SIZE-byte file"
[[ $b1 == "$b0" && $b1r == "$b0r" ]] || fail "bob's counters moved ($b0/$b0r -> $b1/$b1r)"

step "the Prometheus text has the series, from cgroupctl and from the daemon"
line=$(vm_root "cgroupctl stats --prometheus --user alice | grep '^pam_cgroup_network_transmit_bytes_total{user=\"alice\",scope=\"loopback\"}'") \
    || fail "cgroupctl stats --prometheus has no network series for alice"
tlog "cgroupctl stats --prometheus: $line"
vm_root "systemd-run --unit=pam-cgroup-s29-metrics /usr/sbin/cgroupctl daemon --listen 127.0.0.1:9465 --allow-user prometheus" >/dev/null \
    || fail "the metrics-only daemon did not start"
scrape='import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:9465/metrics", timeout=10).read().decode())'
vm_write /tmp/s29-scrape.py 644 <<<"$scrape"
text=$(wait_until 30 matching '*pam_cgroup_network_transmit_bytes_total*' vm_root "python3 /tmp/s29-scrape.py" 2>/dev/null) || true
served=$(grep '^pam_cgroup_network_transmit_bytes_total{user="alice",scope="loopback"}' <<<"$text" || true)
tlog "daemon /metrics: $served"
[[ -n $served ]] || fail "the daemon's /metrics has no network series for alice"
((${served##* } >= a1)) || fail "the daemon serves ${served##* } < $a1"

step "Debian's Prometheus scrapes it"
if vm_root "command -v prometheus" >/dev/null; then
    vm_write /etc/prometheus/prometheus.yml 644 <<'YML'
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: pam_cgroup_s29
    static_configs:
      - targets: ['127.0.0.1:9465']
YML
    vm_root "systemctl restart prometheus" >/dev/null || fail "prometheus did not start"
    query='import json, sys, urllib.parse, urllib.request
q = urllib.parse.quote(sys.argv[1])
with urllib.request.urlopen("http://127.0.0.1:9090/api/v1/query?query=" + q, timeout=10) as r:
    res = json.load(r)["data"]["result"]
print(" ".join(sorted(m["metric"].get("user", "-") + "/" + m["metric"].get("scope", "-") + "=" + m["value"][1] for m in res)))'
    vm_write /tmp/s29-query.py 644 <<<"$query"
    series=$(POLL_EVERY=2 wait_until 120 matching '*alice/loopback=*' vm_root "python3 /tmp/s29-query.py 'pam_cgroup_network_transmit_bytes_total{job=\"pam_cgroup_s29\"}'" 2>/dev/null) || true
    tlog "Prometheus: pam_cgroup_network_transmit_bytes_total = $series"
    [[ $series == *"alice/loopback="* ]] || fail "Prometheus shows no network series for alice: '$series'"
    v=${series#*alice/loopback=}
    v=${v%% *}
    awk -v v="$v" -v s="$SIZE" 'BEGIN { exit !(v + 0 >= s) }' || fail "Prometheus has alice/loopback=$v < $SIZE"
    vm_root "systemctl stop prometheus" >/dev/null
else
    tlog "Debian's prometheus is not in the image: checked the daemon's text only"
fi

vm_root "systemctl stop pam-cgroup-s29-metrics.service 2>/dev/null || true" >/dev/null
vm_login alice "rm -f ~/s29.bin /tmp/s29-copy.bin ~/.ssh/s29 ~/.ssh/s29.pub
if [ -e ~/.ssh/authorized_keys.s29-saved ]; then mv -f ~/.ssh/authorized_keys.s29-saved ~/.ssh/authorized_keys; else rm -f ~/.ssh/authorized_keys; fi" >/dev/null \
    || fail "cleaning alice's files failed"
vm_root "cgroupctl deinit" >/dev/null || true
