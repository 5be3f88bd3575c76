# The seed's hosting platform, end to end: nginx on the host proxies alice's site to her app
# server, a lingering user unit on 0.0.0.0:8080 (so on her private address 127.0.7.209), and
# serves PHP through a PHP-FPM pool with `user = alice`, whose workers the daemon's safety net
# moves into her fence; bob cannot reach her address; suspend stops the site (its processes
# frozen), resume brings it back.
# vm-timeout: 600
require_cgroupctl_verb init
# The daemon reaps the manager's leaf, and its safety net fences (16 may have stopped it).
require_daemon
vm_enable_private_ip || fail "cgroupctl init failed (it attaches the private-IP programs at the tree root)"
ucg=$(user_cg alice)
as_alice() { vm_login alice "export XDG_RUNTIME_DIR=/run/user/2001; $*"; }
# get PATH [SECONDS]: the HTTP status and body nginx answers for PATH ("000" when none).
get() {
    vm_root "python3 -c 'import urllib.request, urllib.error
try:
    r = urllib.request.urlopen(\"http://127.0.0.1$1\", timeout=${2:-10})
    print(r.status, r.read().decode(errors=\"replace\").splitlines()[0])
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(\"000\")'"
}

step "alice's app server: a lingering user unit on 0.0.0.0:8080"
vm_root "install -d -o alice -g alice /home/alice/.config /home/alice/.config/systemd /home/alice/.config/systemd/user" >/dev/null
vm_write /home/alice/.config/systemd/user/pamcg-site.service 644 <<'EOT'
[Unit]
Description=alice's site
[Service]
ExecStart=/usr/bin/python3 -m http.server 8080 --bind 0.0.0.0 --directory /home/alice/site
[Install]
WantedBy=default.target
EOT
vm_root "install -d -o alice -g alice /home/alice/site && echo 'alice site' > /home/alice/site/index.html
         chown -R alice: /home/alice/.config /home/alice/site && loginctl enable-linger alice" >/dev/null \
    || fail "cannot set up alice's site"
as_alice "systemctl --user daemon-reload && systemctl --user enable --now pamcg-site.service" >/dev/null \
    || fail "systemctl --user enable --now pamcg-site.service failed"
site=$(as_alice "systemctl --user show -p MainPID --value pamcg-site.service")
[[ $site =~ ^[1-9][0-9]*$ ]] || fail "alice's site did not start (main pid '$site')"
cg=$(cgroup_of "$site")
[[ $cg == "$ucg/"* ]] || fail "alice's site runs in $cg, outside her fence"

step "nginx proxies / to alice's address and /php/ to her PHP-FPM pool"
phpdir=$(vm_root "ls -d /etc/php/*/fpm | head -n 1")
phpsvc=$(vm_root "basename \$(ls /lib/systemd/system/php*-fpm.service | head -n 1) .service")
[[ -n $phpdir && -n $phpsvc ]] || fail "no PHP-FPM in the image"
vm_write "$phpdir/pool.d/alice.conf" 644 <<'EOT'
[alice]
user = alice
group = alice
listen = /run/php/pamcg-alice.sock
listen.owner = www-data
listen.group = www-data
pm = static
pm.max_children = 2
EOT
vm_write /var/www/pamcg-alice.php 644 <<'EOT'
<?php echo trim(file_get_contents("/proc/self/cgroup")), "\n";
EOT
vm_write /etc/nginx/sites-enabled/default 644 <<'EOT'
server {
    listen 80 default_server;
    proxy_read_timeout 3s;
    fastcgi_read_timeout 3s;
    location /php/ {
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME /var/www/pamcg-alice.php;
        fastcgi_pass unix:/run/php/pamcg-alice.sock;
    }
    location / {
        proxy_pass http://127.0.7.209:8080;
    }
}
EOT
vm_root "systemctl restart $phpsvc nginx" >/dev/null || fail "nginx or $phpsvc did not start: $(vm_root "systemctl --no-pager status nginx $phpsvc 2>&1 | tail -n 12" || true)"
r=$(get /)
assert_eq "nginx -> alice's app" "$r" "200 alice site"

step "the pool's workers, switched to alice by the PHP-FPM master, are in her fence"
# workers_in_fence: alice's PHP-FPM workers, once there are some and all are in her fence
# (read without cgroup_of, which fails the scenario when a worker has just exited).
ucg_rel=${ucg#"$(cg_mount)"}
workers_in_fence() {
    local workers w
    workers=$(vm_root "pgrep -u alice -f 'php-fpm: pool alice'") || return 1
    printf '%s\n' "$workers"
    for w in $workers; do
        vm_root "grep -q '^0::$ucg_rel/' /proc/$w/cgroup" >/dev/null || return 1
    done
}
workers=$(wait_until 20 workers_in_fence) || true
[[ -n $workers ]] || fail "no PHP-FPM worker runs as alice"
for w in $workers; do
    cg=$(cgroup_of "$w")
    tlog "PHP-FPM worker $w of alice runs in $cg"
    [[ $cg == "$ucg/"* ]] || fail "PHP-FPM worker $w of alice runs in $cg, outside her fence (the safety net did not move it)"
done
r=$(get /php/x)
[[ $r == "200 0::"* && $r =~ /users/alice\.[0-9a-f]{16}/ ]] || fail "the PHP answer came from outside alice's fence: $r"
vm_root "cgroupctl events --kind fenced --json 2>/dev/null | grep -q alice" \
    || fail "no 'fenced' event records the move of alice's workers"

step "bob cannot reach alice's app"
r=$(vm_login bob "python3 -c 'import socket, errno
s = socket.socket()
try:
    s.connect((\"127.0.7.209\", 8080)); print(\"OK\")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))'")
assert_eq "bob's connect to alice's app" "$r" EACCES

step "suspend: the site stops answering, its processes frozen; resume: it answers again"
vm_root "cgroupctl suspend alice --reason 'unpaid invoice'" >/dev/null || fail "cgroupctl suspend alice failed"
[[ $(cgkey "$ucg/cgroup.events" frozen) == 1 ]] || fail "alice's cgroup is not frozen while suspended"
r=$(get / 8)
[[ $r != 200* ]] || fail "alice's site still answers while she is suspended: $r"
r=$(get /php/x 8)
[[ $r != 200* ]] || fail "alice's PHP still answers while she is suspended: $r"
vm_root "cgroupctl resume alice" >/dev/null || fail "cgroupctl resume alice failed"
r=$(get /)
assert_eq "nginx -> alice's app after resume" "$r" "200 alice site"
r=$(get /php/x)
[[ $r == "200 0::"* && $r =~ /users/alice\.[0-9a-f]{16}/ ]] || fail "PHP after resume: $r"

vm_root "systemctl stop nginx $phpsvc; rm -f $phpdir/pool.d/alice.conf /var/www/pamcg-alice.php
         loginctl disable-linger alice; systemctl stop user@2001.service
         rm -rf /home/alice/.config/systemd /home/alice/site" >/dev/null
kill_user_processes alice
