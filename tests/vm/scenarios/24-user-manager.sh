# The customer's user manager runs in its fence (policy.user_manager = "fence", the default,
# with the package installed beside pam_systemd as Debian puts it): `systemd-run --user`
# (--pipe, and --scope from a user service), a unit enabled for the next login and a lingering
# unit after a reboot all run under users/alice/, and a --scope from the login shell is refused
# (nothing runs outside); a fork bomb started through `systemd-run --user` is held by her
# pids.max; a user unit on 0.0.0.0:8080 gets her private address and root (the platform's
# proxy) reaches it while bob cannot; suspend, freeze and kill reach the manager's processes;
# `systemctl --user status/stop/restart` work; the last logout (no linger) leaves no leaf, no
# process and no error of PID 1 or logind in the journal.
# vm-timeout: 900
require_cgroupctl_verb init
# The daemon reaps the manager's leaf, and its safety net fences (16 may have stopped it).
require_daemon
vm_user_file alice <<'EOT'
"pids.max" = 64
EOT
vm_enable_private_ip || fail "cgroupctl init failed (it attaches the private-IP programs at the tree root)"
ucg=$(user_cg alice)

manager_pid() { vm_root "systemctl show -p MainPID --value user@2001.service"; }
# wait_manager: until alice's user@2001.service is active; prints its main pid.
wait_manager() {
    if wait_until 120 vm_root "systemctl is-active user@2001.service" >/dev/null; then
        manager_pid
        return 0
    fi
    fail "user@2001.service (alice's manager) did not become active: $(vm_root 'systemctl --no-pager status user@2001.service 2>&1 | tail -n 6; journalctl -q --no-pager -b -u user@2001.service | tail -n 6' || true)"
}
# in_fence PID WHAT: PID runs below users/alice/manager-*/.
in_fence() {
    local cg
    cg=$(cgroup_of "$1")
    tlog "$2 runs in $cg"
    [[ $cg =~ ^${ucg}/manager-[^/]+/ ]] || fail "$2 runs in $cg, outside alice's fence ($ucg/manager-*/)"
}
as_alice() { vm_login alice "export XDG_RUNTIME_DIR=/run/user/2001; $*"; }
# wait_app SECONDS: the pid of alice's app server once it runs (started by her manager).
wait_app() {
    wait_until "$1" vm_root "pgrep -o -u alice -f 'http.server 8080'"
}
# unit_pid UNIT: the main pid of one of alice's user units (0 when not running).
unit_pid() { as_alice "systemctl --user show -p MainPID --value $1"; }
# fetch [SECONDS]: the HTTP status root (the platform's proxy) gets from alice's app, 000 when
# none within SECONDS (default 10).
fetch() {
    vm_root "python3 -c 'import urllib.request
try:
    print(urllib.request.urlopen(\"http://127.0.7.209:8080/\", timeout=${1:-10}).status)
except Exception:
    print(\"000\")'"
}

step "alice logs in: her user manager starts in her fence, in a leaf delegated to her"
vm_login_bg alice "exec -a pamcg-s24-hold sleep 1200" >/dev/null
wait_tagged pamcg-s24-hold >/dev/null
um=$(wait_manager)
in_fence "$um" "alice's systemd --user"
leaf=$(cgroup_of "$um")
leaf=${leaf%/*}
assert_eq "owner of the manager's leaf" "$(vm_root "stat -c %U '$leaf'")" alice
assert_eq "owner of users/alice" "$(vm_root "stat -c %U '$ucg'")" root

step "systemd-run --user --pipe, and --scope from the manager's tree, run in the fence"
out=$(as_alice "systemd-run --user --pipe --wait -q sh -c 'grep ^0:: /proc/self/cgroup'") \
    || fail "systemd-run --user --pipe failed: $out"
[[ $out =~ /users/alice\.[0-9a-f]{16}/manager- ]] || fail "systemd-run --user --pipe ran in ${out#0::}, outside the fence"
out=$(as_alice "systemd-run --user --pipe --wait -q systemd-run --user --scope -q sh -c 'grep ^0:: /proc/self/cgroup'") \
    || fail "systemd-run --user --scope (from a user service) failed: $out"
[[ $out =~ /users/alice\.[0-9a-f]{16}/manager-.*/run-.*\.scope$ ]] || fail "systemd-run --user --scope ran in ${out#0::}, not in a scope of the fenced manager"
step "systemd-run --user --scope from the login shell: refused by the kernel, nothing runs outside"
# The login's leaf and the manager's are siblings under users/alice, which is root's: the
# manager may not move the shell's child across (and PID 1's fallback knows no such cgroup).
out=$(as_alice "systemd-run --user --scope -q sh -c 'echo ran; grep ^0:: /proc/self/cgroup'" 2>&1) \
    && fail "systemd-run --user --scope from the login shell ran: $out"
[[ $out != *ran* ]] || fail "the command of a refused scope ran anyway: $out"

step "a fork bomb through systemd-run --user is held by alice's pids.max"
before=$(pids_max_refusals "$ucg")
# The unit's main process stays (exec sleep): were it to exit, systemd would stop the unit and
# kill the bomb with it before it filled pids.max (seen once in a whole run).
as_alice "systemd-run --user --unit=pamcg-s24-bomb -q bash -c ':(){ :|:& }; :; exec sleep 600'" >/dev/null || true
sleep 10
cur=$(cgread "$ucg/pids.current")
tlog "pids.current of alice during the bomb: $cur"
((cur <= 64)) || fail "pids.current $cur is above pids.max 64"
after=$(vm_root "cat '$ucg/pids.events' \$(find '$ucg' -mindepth 1 -name pids.events) 2>/dev/null | awk '\$1 == \"max\" {n += \$2} END {print n + 0}'")
((after > before)) || fail "pids.events max did not increase ($before -> $after): the bomb was not held by alice's pids.max"
bomb=$(vm_root "find '$ucg' -type d -name 'pamcg-s24-bomb.service' | head -n 1")
[[ -n $bomb ]] || fail "the bomb's unit cgroup is not below $ucg"
vm_root "echo 1 > '$bomb/cgroup.kill'" >/dev/null
wait_until 30 vm_root "test \$(cat '$ucg/pids.current') -lt 20" >/dev/null || true

step "a user unit on 0.0.0.0:8080, enabled for the next login: on alice's private address"
vm_root "install -d -o alice -g alice /home/alice/.config /home/alice/.config/systemd /home/alice/.config/systemd/user" >/dev/null
vm_write /home/alice/.config/systemd/user/pamcg-web.service 644 <<'EOT'
[Unit]
Description=alice's app server
[Service]
ExecStart=/usr/bin/python3 -m http.server 8080 --bind 0.0.0.0 --directory /tmp
Restart=on-failure
[Install]
WantedBy=default.target
EOT
vm_root "chown alice: /home/alice/.config/systemd/user/pamcg-web.service" >/dev/null
as_alice "systemctl --user daemon-reload && systemctl --user enable --now pamcg-web.service" >/dev/null \
    || fail "systemctl --user enable --now failed"
web=$(unit_pid pamcg-web.service)
[[ $web =~ ^[1-9][0-9]*$ ]] || fail "pamcg-web.service has no main pid ($web)"
in_fence "$web" "alice's app server"
listen=$(wait_until 30 vm_root "ss -Hltn 'sport = :8080' | awk '{print \$4}' | grep .") || true
case $listen in
    127.0.7.209:8080 | "[::ffff:127.0.7.209]:8080") tlog "ok: the app listens on $listen" ;;
    *) fail "alice's app server listens on '$listen', not on her private address 127.0.7.209:8080" ;;
esac
assert_eq "HTTP status root (the proxy) gets from alice's app" "$(fetch)" 200
r=$(vm_login bob "python3 -c 'import socket
s = socket.socket()
try:
    s.connect((\"127.0.7.209\", 8080)); print(\"OK\")
except OSError as e:
    import errno; print(errno.errorcode.get(e.errno, e.errno))'")
assert_eq "bob's connect to alice's app" "$r" EACCES

step "systemctl --user status, restart and stop work"
as_alice "systemctl --user status pamcg-web.service" >/dev/null || fail "systemctl --user status failed"
as_alice "systemctl --user restart pamcg-web.service" >/dev/null || fail "systemctl --user restart failed"
web2=$(unit_pid pamcg-web.service)
[[ $web2 =~ ^[1-9][0-9]*$ && $web2 != "$web" ]] || fail "restart: main pid $web -> $web2"
in_fence "$web2" "alice's restarted app server"

step "freeze, suspend and kill reach the manager's processes"
vm_root "cgroupctl freeze alice" >/dev/null || fail "cgroupctl freeze alice failed"
assert_eq "HTTP status of a frozen app" "$(fetch 3)" 000
vm_root "cgroupctl thaw alice" >/dev/null || fail "cgroupctl thaw alice failed"
assert_eq "HTTP status after thaw" "$(fetch)" 200
vm_root "cgroupctl suspend alice --reason 'unpaid invoice'" >/dev/null || fail "cgroupctl suspend alice failed"
assert_eq "HTTP status of a suspended customer's app" "$(fetch 3)" 000
vm_root "cgroupctl resume alice" >/dev/null || fail "cgroupctl resume alice failed"
assert_eq "HTTP status after resume" "$(fetch)" 200
as_alice "systemctl --user stop pamcg-web.service" >/dev/null || fail "systemctl --user stop failed"
[[ $(unit_pid pamcg-web.service) == 0 ]] || fail "pamcg-web.service still runs after stop"
vm_root "cgroupctl kill alice" >/dev/null || fail "cgroupctl kill alice failed"
wait_until 30 vm_root "! pgrep -u alice" >/dev/null ||
    fail "alice's processes survived cgroupctl kill: $(vm_root 'ps -o pid,cgroup,cmd -u alice' || true)"

step "the last logout without linger: no leaf, no process, no error of PID 1 or logind"
# (cgroupctl kill above killed the manager on purpose: PID 1 said so; from here on, nothing.)
cursor=$(journal_cursor)
vm_login_bg alice "exec -a pamcg-s24-hold2 sleep 1200" >/dev/null
hold=$(wait_tagged pamcg-s24-hold2)
um=$(wait_manager)
in_fence "$um" "alice's systemd --user at her next login"
web=$(wait_app 30) || fail "the unit alice enabled did not start at her next login"
in_fence "$web" "alice's enabled app at her next login"
vm_root "kill $hold" >/dev/null
wait_until 60 vm_root "! systemctl -q is-active user@2001.service" >/dev/null || true
left=$(wait_until 60 matching '' vm_root "pgrep -u alice || true; ls -d '$ucg'/manager-* '$ucg'/session-* 2>/dev/null || true") ||
    fail "after alice's last logout: $left"
errors=$(vm_root "journalctl -q --no-pager --after-cursor='$cursor' -p warning _PID=1 + _COMM=systemd-logind" \
    | grep -Ei 'user@2001|user-2001|alice|session' || true)
[[ -z $errors ]] || fail "PID 1 or logind complained: $(head -n 3 <<<"$errors")"

step "lingering: after a reboot alice's enabled app runs again, in her fence"
vm_root "loginctl enable-linger alice" >/dev/null || fail "loginctl enable-linger alice failed"
vm_request_reboot || fail "the guest did not come back after the reboot"
um=$(wait_manager)
in_fence "$um" "alice's lingering systemd --user after the reboot"
web=$(wait_app 90) || fail "alice's lingering app did not start after the reboot"
in_fence "$web" "alice's lingering app after the reboot"
vm_root "loginctl disable-linger alice; systemctl stop user@2001.service; rm -rf /home/alice/.config/systemd" >/dev/null
kill_user_processes alice
