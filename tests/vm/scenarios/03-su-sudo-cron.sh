# `su - alice`, `sudo -u alice` and a cron job of alice are each confined; root's own
# sessions (ssh, cron) are not.
tag=pamcg-s03

step "su - alice (from root)"
vm_root "setsid su - alice -c 'exec -a $tag-su sleep 120' </dev/null >/dev/null 2>&1 &"
assert_session_leaf "$(wait_tagged "$tag-su")" alice "su - alice's shell" >/dev/null

step "sudo -u alice (from root)"
vm_root "setsid sudo -u alice bash -c 'exec -a $tag-sudo sleep 120' </dev/null >/dev/null 2>&1 &"
assert_session_leaf "$(wait_tagged "$tag-sudo")" alice "sudo -u alice's command" >/dev/null

step "root's own ssh login is not confined"
vm_login_bg root "exec -a $tag-rootssh sleep 120" >/dev/null
assert_not_confined "$(wait_tagged "$tag-rootssh")" "root's ssh command" >/dev/null

step "cron jobs of alice and of root (real cron: up to one minute)"
vm_write /etc/cron.d/pamcg-s03 644 <<EOT
SHELL=/bin/bash
* * * * * alice exec -a $tag-cron-alice sleep 100
* * * * * root exec -a $tag-cron-root sleep 100
EOT
vm_root "touch /etc/cron.d" >/dev/null
pc=$(wait_tagged "$tag-cron-alice" 90)
assert_session_leaf "$pc" alice "alice's cron job" >/dev/null
pr=$(wait_tagged "$tag-cron-root" 30)
assert_not_confined "$pr" "root's cron job" >/dev/null
vm_root "rm -f /etc/cron.d/pamcg-s03; pkill -f '^$tag-' || true" >/dev/null
