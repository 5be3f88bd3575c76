# The customer's life cycle with the packaged daemon running: a suspended customer is seen as
# suspended in `list`, `sessions`, `top` and their JSON (and one without a cgroup in `list`);
# `resume` of a customer who is not suspended writes nothing; `kill --service` succeeds while
# the daemon reaps the emptied service; `reload` with one deleted account applies the others
# (exit 1); `remove` of the deleted customer leaves nothing of it in the tree, the state
# directories, the events or the metrics, and its processes are gone.
[[ $VM_INSTALL_MODE == deb* ]] || fail "feature missing: the unit comes with the .deb ($VM_INSTALL_MODE)"
require_cgroupctl_verb remove
require_cgroupctl_verb plans
tag=pamcg-s27
kill_user_processes alice
kill_user_processes bob
require_daemon
field() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

step "two customers of this scenario: cust27 (to be removed) and keep27, and idle27 (never logged in)"
make_customers cust27:2701 keep27:2702 idle27:2703
# cust27's plan: a low pids.max, so that a burst of forks gives it fault events to remove.
vm_user_file cust27 <<'EOT'
"pids.max" = 24
"sessions.max" = 4
EOT

step "cust27 and keep27 have running sessions"
vm_login_bg cust27 "exec -a $tag-cust sleep 600" >/dev/null
vm_login_bg keep27 "exec -a $tag-keep sleep 600" >/dev/null
pc=$(wait_tagged "$tag-cust")
pk=$(wait_tagged "$tag-keep")
assert_session_leaf "$pc" cust27 "cust27's session" >/dev/null
assert_session_leaf "$pk" keep27 "keep27's session" >/dev/null

step "suspend cust27 and idle27: list, sessions, top and their JSON say so"
vm_root "cgroupctl suspend cust27 --reason 'unpaid s27'" >/dev/null || fail "suspend cust27 failed"
vm_root "cgroupctl suspend idle27 --reason 'fraud s27'" >/dev/null || fail "suspend idle27 (no cgroup) failed"
list=$(vm_root "cgroupctl list --json")
assert_eq "cust27's state in list --json" "$(field '[u["state"] for u in v if u["user"] == "cust27"]' <<<"$list")" "['suspended']"
assert_eq "cust27's reason in list --json" "$(field '[u["suspended_reason"] for u in v if u["user"] == "cust27"]' <<<"$list")" "['unpaid s27']"
assert_eq "idle27 (no cgroup) in list --json" \
    "$(field '[(u["state"], u["path"]) for u in v if u["user"] == "idle27"]' <<<"$list")" "[('suspended', None)]"
since=$(field '[u["suspended_epoch"] for u in v if u["user"] == "cust27"][0]' <<<"$list")
now=$(vm_root "date +%s")
((now - since >= 0 && now - since < 120)) || fail "suspended_epoch $since is not just now ($now)"
text=$(vm_root "cgroupctl list")
tlog "cgroupctl list: $text"
grep -E '^cust27 .* suspended ' <<<"$text" >/dev/null || fail "list does not show cust27 suspended"
grep -E '^idle27 .* suspended ' <<<"$text" >/dev/null || fail "list does not show idle27 suspended"
sessions=$(vm_root "cgroupctl sessions --json")
assert_eq "cust27's sessions' state" "$(field 'sorted({s["state"] for s in v if s["user"] == "cust27"})' <<<"$sessions")" "['suspended']"
assert_eq "keep27's sessions' state" "$(field 'sorted({s["state"] for s in v if s["user"] == "keep27"})' <<<"$sessions")" "['open']"
text=$(vm_root "cgroupctl sessions")
grep -E '^cust27 .* suspended ' <<<"$text" >/dev/null || fail "sessions does not show cust27 suspended: $text"
top=$(vm_root "cgroupctl top --json --interval 0.5 --iterations 1")
assert_eq "cust27 in top --json" "$(field '[u["state"] for u in v if u["user"] == "cust27"]' <<<"$top")" "['suspended']"
show=$(vm_root "cgroupctl show idle27 --json")
assert_eq "show of idle27" "$(field '(v["state"], v["suspended_reason"])' <<<"$show")" "('suspended', 'fraud s27')"

step "resume of a customer who is not suspended: exit 2, no user file written"
status=0
out=$(vm_root "cgroupctl resume bob 2>&1") || status=$?
assert_eq "exit of resume bob" "$status" 2
vm_root "test ! -e /etc/pam_cgroup/users/bob.toml" || fail "resume bob wrote a user file: $out"
status=0
vm_root "cgroupctl resume nosuch27 >/dev/null 2>&1" || status=$?
assert_eq "exit of resume nosuch27" "$status" 2
vm_root "test ! -e /etc/pam_cgroup/users/nosuch27.toml" || fail "resume nosuch27 wrote a user file"
vm_root "cgroupctl resume idle27 && cgroupctl resume cust27" >/dev/null || fail "resume failed"

step "kill --service while the daemon reaps the emptied service: success every time"
for i in 1 2 3; do
    vm_login_bg keep27 "exec -a $tag-web$i sleep 600" >/dev/null
    pw=$(wait_tagged "$tag-web$i")
    vm_root "cgroupctl classify $pw --user keep27 --service web" >/dev/null || fail "classify $pw failed"
    out=$(vm_root "cgroupctl kill keep27 --service web 2>&1") || fail "kill --service web (round $i) failed: $out"
    [[ $out == *"0 remaining"* ]] || fail "kill --service web (round $i): $out"
done

step "cust27 hits its pids.max: fault events recorded by the daemon"
start=$(vm_root "date +%s")
# The sleeps leave the login's output: ssh would wait for them otherwise.
vm_login cust27 "for i in \$(seq 1 40); do (exec -a $tag-burst sleep 300 </dev/null >/dev/null 2>&1) & done 2>/dev/null; sleep 1; true" >/dev/null || true
n=$(wait_until 30 vm_root "cgroupctl events --json --user cust27 --since @$start | wc -l | grep -vx 0") ||
    fail "no fault event of cust27 was recorded"
tlog "events of cust27: $n"

step "userdel of cust27; reload reports it and applies keep27 (exit 1)"
vm_root "userdel -f cust27" >/dev/null || fail "userdel cust27 failed"
vm_write_config '' # the standard config again, then a new default pids.max
vm_root "sed -i 's/^\"pids.max\" = 200/\"pids.max\" = 211/' /etc/pam_cgroup/config.toml" >/dev/null
status=0
out=$(vm_root "cgroupctl reload 2>&1") || status=$?
tlog "cgroupctl reload: $out"
assert_eq "exit of reload with a deleted account" "$status" 1
# The image's nsswitch.conf has `passwd: files sss` with SSSD stopped (it runs only for the
# LDAP scenarios): then NSS cannot say "no such user", only "a source did not answer", and
# the deleted account is NOT RESOLVED rather than UNKNOWN USER; `remove` then wants --force.
force=""
if [[ $out == *"cust27: NOT RESOLVED"* ]]; then
    force=--force
    tlog "NSS cannot answer for cust27 (a source is unavailable): remove needs --force"
else
    [[ $out == *"cust27: UNKNOWN USER"* ]] || fail "reload does not name the deleted cust27: $out"
fi
assert_file_eq "$(user_cg keep27)/pids.max" 211

step "remove cust27: nothing of it is left"
status=0
vm_root "cgroupctl remove cust27 $force </dev/null >/dev/null 2>&1" || status=$?
assert_eq "exit of remove without --yes off a terminal" "$status" 2
vm_root "test -d '$(user_cg cust27)'" || fail "remove without --yes removed something"
if [[ -n $force ]]; then
    status=0
    out=$(vm_root "cgroupctl remove cust27 --yes 2>&1") || status=$?
    ((status != 0)) || fail "remove without --force went ahead while NSS could not answer: $out"
    [[ $out == *"cannot tell whether cust27 still exists"* ]] || fail "remove's refusal: $out"
    vm_root "test -d '$(user_cg cust27)'" || fail "the refused remove removed something"
fi
out=$(vm_root "cgroupctl remove cust27 --yes $force --json") || fail "remove cust27 failed: $out"
tlog "cgroupctl remove cust27 --yes --json: $out"
assert_eq "events erased" "$(field 'v["events_erased"] >= 1' <<<"$out")" True
vm_root "test ! -e '$(user_cg cust27)'" || fail "users/cust27 is still in the tree"
left=$(vm_root "find '$VM_TREE_ROOT' /etc/pam_cgroup /run/pam_cgroup /var/lib/pam_cgroup -name '*cust27*' 2>/dev/null; true")
[[ -z $left ]] || fail "left behind: $left"
procs=$(vm_root "pgrep -u 2701 || true")
[[ -z $procs ]] || fail "processes of the removed customer still run: $procs"
usage=$(vm_root "cgroupctl report --period 1d --user cust27 --json")
assert_eq "usage history of cust27 after remove" "$(field 'len(v["users"])' <<<"$usage")" 0
ev=$(vm_root "cgroupctl events --json --user cust27 | wc -l")
assert_eq "events of cust27 after remove" "$ev" 0
vm_root "cgroupctl events >/dev/null 2>/tmp/s27-events.err; test ! -s /tmp/s27-events.err" ||
    fail "events complains after the erase: $(vm_root 'cat /tmp/s27-events.err')"
prom=$(vm_root "cgroupctl stats --prometheus")
[[ $prom == *'user="keep27"'* ]] || fail "cgroupctl stats --prometheus does not show keep27"
[[ $prom != *cust27* ]] || fail "cgroupctl stats --prometheus still names cust27"
vm_root "systemd-run --unit=pam-cgroup-s27 /usr/sbin/cgroupctl daemon --listen 127.0.0.1:9467" >/dev/null ||
    fail "the transient metrics daemon did not start"
scrape=$(wait_until 30 matching '*pam_cgroup_*' vm_root "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:9467/metrics\", timeout=10).read().decode())'" 2>/dev/null) || true
vm_root "systemctl stop pam-cgroup-s27.service" >/dev/null || true
[[ $scrape == *'user="keep27"'* ]] || fail "the daemon's metrics do not show keep27: $(head -c 400 <<<"$scrape")"
[[ $scrape != *cust27* ]] || fail "the daemon's metrics still name cust27"
gone_tagged "$tag-keep" && fail "keep27's session was touched by the removal"
vm_root "kill -0 $pk" || fail "keep27's process is gone"

step "plans lists keep27 on no plan, alice on pro"
plans=$(vm_root "cgroupctl plans --json")
tlog "cgroupctl plans --json: $plans"
assert_eq "pro's limits" "$(field '[p["limits"]["pids.max"] for p in v["plans"] if p["plan"] == "pro"]' <<<"$plans")" "['300']"

kill_user_processes keep27
vm_root "userdel -f -r keep27; userdel -f -r idle27; groupdel keep27 2>/dev/null; groupdel idle27 2>/dev/null; groupdel cust27 2>/dev/null; rm -rf /home/cust27; true" >/dev/null
vm_root "cgroupctl remove keep27 --yes >/dev/null 2>&1; cgroupctl remove idle27 --yes >/dev/null 2>&1; true" >/dev/null
