# Private IPs: alice's `python3 -m http.server 8080` listens on her private address
# (127.0.0.0 | gid 2001 = 127.0.7.209); bob cannot connect to it (EACCES) nor bind it; root
# (standing in for the reverse proxy) can connect; each customer's localhost on the range is
# its own; other 127/8 binds on the range are refused (Debian 12's 6.1 kernel).
require_cgroupctl_verb init
vm_enable_private_ip || fail "cgroupctl init failed (it attaches the private-IP programs at the tree root)"
vm_root "bpftool cgroup tree '$VM_TREE_ROOT' 2>/dev/null || true" >/dev/null

step "alice's web server on 0.0.0.0:8080"
vm_login_bg alice "exec -a pamcg-s07-http python3 -m http.server 8080 --bind 0.0.0.0 --directory /tmp" >/dev/null
ph=$(wait_tagged pamcg-s07-http)
assert_session_leaf "$ph" alice "alice's http.server" >/dev/null
# listening PORT: the local address of the TCP listener on PORT; fails while there is none.
listening() { vm_root "ss -Hltn 'sport = :$1' | awk '{print \$4}' | grep ."; }
listen=$(wait_until 20 listening 8080) || fail "nothing listens on port 8080"
case $listen in
    127.0.7.209:8080|"[::ffff:127.0.7.209]:8080") tlog "ok: listener on $listen" ;;
    *) fail "alice's server listens on $listen, not on her private address 127.0.7.209:8080" ;;
esac

probe='import socket, sys, errno
op, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
try:
    s.bind((host, port)) if op == "bind" else s.connect((host, port))
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))'
vm_write /tmp/s07-probe.py 644 <<<"$probe"

step "bob connects to alice's address: refused"
r=$(vm_login bob "python3 /tmp/s07-probe.py connect 127.0.7.209 8080")
assert_eq "bob's connect to 127.0.7.209:8080" "$r" EACCES
step "bob binds alice's address: refused"
r=$(vm_login bob "python3 /tmp/s07-probe.py bind 127.0.7.209 8081")
assert_eq "bob's bind of 127.0.7.209:8081" "$r" EACCES
step "root (the reverse proxy) fetches from alice's server"
code=$(vm_root "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.7.209:8080/\", timeout=10).status)'") \
    || fail "root could not fetch http://127.0.7.209:8080/"
assert_eq "HTTP status root got from alice's server" "$code" 200
step "bob's own 0.0.0.0:8081 lands on his address 127.0.7.210"
vm_login_bg bob "exec -a pamcg-s07-bob python3 -m http.server 8081 --bind 0.0.0.0 --directory /tmp" >/dev/null
wait_tagged pamcg-s07-bob >/dev/null
listen=$(wait_until 20 listening 8081) || true
case $listen in
    127.0.7.210:8081|"[::ffff:127.0.7.210]:8081") tlog "ok: bob listens on $listen" ;;
    *) fail "bob's server listens on '$listen', not on his private address 127.0.7.210:8081" ;;
esac
step "localhost on the range is each customer's own: alice never reaches bob's 127.0.0.1:8082"
vm_login_bg bob "exec -a pamcg-s07-bobl python3 -m http.server 8082 --bind 127.0.0.1 --directory /tmp" >/dev/null
wait_tagged pamcg-s07-bobl >/dev/null
listen=$(wait_until 20 listening 8082) || true
[[ $listen == "127.0.7.210:8082" ]] || fail "bob's 127.0.0.1:8082 listens on '$listen', not on his address"
r=$(vm_login alice "python3 /tmp/s07-probe.py connect 127.0.0.1 8082")
assert_eq "alice's connect to 127.0.0.1:8082 (bob's service is not hers)" "$r" ECONNREFUSED
r=$(vm_login bob "python3 /tmp/s07-probe.py connect 127.0.0.1 8082")
assert_eq "bob's connect to his own localhost:8082" "$r" OK
step "other 127/8 binds on the range refused"
r=$(vm_login alice "python3 /tmp/s07-probe.py bind 127.0.0.5 8083")
assert_eq "alice's bind of 127.0.0.5:8083" "$r" EACCES
kill_user_processes alice
kill_user_processes bob
vm_root "cgroupctl deinit || true" >/dev/null
