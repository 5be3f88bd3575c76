# Last: `apt purge` restores the PAM stack byte for byte and leaves no unit, no config, no
# BPF pin and no tree (once no confined session is left).
[[ $VM_INSTALL_MODE == deb* ]] || fail "feature missing: purge needs the .deb ($VM_INSTALL_MODE)"
for u in alice bob carol sftponly; do kill_user_processes "$u"; done
# Any other customer's session an earlier scenario left behind when it failed (its cleanup
# never ran) would keep the tree populated: that scenario already failed, and the purge is
# tested here on its own.
left=$(vm_root "for d in '$VM_TREE_ROOT'/users/*/; do
                    grep -qx 'populated 1' \"\$d/cgroup.events\" || continue
                    basename \"\$d\"; echo 1 > \"\$d/cgroup.kill\"
                done 2>/dev/null; true")
[[ -z $left ]] || { tlog "sessions left by earlier scenarios, killed: $(tr '\n' ' ' <<<"$left")"; sleep 1; }
step "private IPs on, so that the purge has programs and pins to remove"
# The scenarios that attach them detach them again, and the fixture has [private_ip] off:
# without this the bpffs checks below would pass with a prerm that never ran deinit.
vm_enable_private_ip || fail "cgroupctl init failed before the purge"
attached=$(vm_root "bpftool cgroup tree 2>/dev/null | grep -c pcg_ || true")
((${attached:-0} >= 6)) || fail "only ${attached:-0} policy programs attached before the purge"
vm_root "test -d /sys/fs/bpf/pam_cgroup" || fail "no pins in /sys/fs/bpf/pam_cgroup before the purge"
step "apt purge pam-cgroup"
module=$(vm_root "dpkg -L pam-cgroup | grep '/security/pam_cgroup\.so\$'") || fail "dpkg -L pam-cgroup names no module"
purge_log=$(vm_root "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q pam-cgroup 2>&1") \
    || fail "apt-get purge pam-cgroup failed: $purge_log"
not_empty=$(grep "not empty so not removed" <<<"$purge_log" || true)
# The one expected case: the package built on Debian 12 (module in /lib/<triplet>/security and
# unit in /lib/systemd/system, beside bookworm's own packages) purged on Debian 13, where /lib
# is a symlink to /usr/lib and those directories belong to other packages under their /usr
# names only, so dpkg tries to remove them (merged-/usr aliasing; docs/admin-guide.md, "Debian package").
# Any other directory, any other suite or a /usr-built package: a failure.
while IFS= read -r line; do
    [[ -n $line ]] || continue
    dir=$(sed -n "s/.*directory '\(.*\)' not empty.*/\1/p" <<<"$line")
    if [[ $PAM_CGROUP_VM_SUITE == trixie && $module == /lib/* && $dir == /lib/* ]] \
        && [[ $(vm_root "readlink -f '$dir'") == "/usr$dir" ]]; then
        tlog "note: the Debian 12 build purged on Debian 13 (merged-/usr aliasing): $line"
    else
        fail "dpkg warned at purge: $line"
    fi
done <<<"$not_empty"
vm_root "test -e '$module' || test -e '/usr$module'" && fail "$module is still there after purge"
for f in common-session common-session-noninteractive common-account; do
    vm_root "cmp /root/pre-install/$f /etc/pam.d/$f" >/dev/null \
        || fail "/etc/pam.d/$f differs from before the install: $(vm_root "diff /root/pre-install/$f /etc/pam.d/$f" || true)"
done
vm_root "grep -rl pam_cgroup /etc/pam.d/" >/dev/null && fail "pam_cgroup is still named in /etc/pam.d"
vm_root "test -e /lib/systemd/system/pam-cgroup.service || test -e /etc/systemd/system/multi-user.target.wants/pam-cgroup.service" \
    && fail "the unit or its enablement link is still there"
[[ $(vm_root "systemctl is-active pam-cgroup.service" || true) != active ]] || fail "the unit still runs"
vm_root "test -e /etc/pam_cgroup" && fail "/etc/pam_cgroup is still there"
left=$(vm_root "ls -A /sys/fs/bpf/ | grep -i pam || true")
[[ -z $left ]] || fail "left in bpffs after purge: $left ($(vm_root 'find /sys/fs/bpf/pam_cgroup 2>&1 | head' || true))"
vm_root "test -e /var/lib/pam_cgroup" && fail "/var/lib/pam_cgroup (kept policy) is still there"
attached=$(vm_root "bpftool cgroup tree 2>/dev/null | grep -c pcg_ || true")
[[ ${attached:-0} == 0 ]] || fail "$attached policy programs are still attached"
vm_root "test -d '$VM_TREE_ROOT'" && fail "the tree $VM_TREE_ROOT is still there: $(vm_root "find '$VM_TREE_ROOT' -maxdepth 3 -type d | head" || true)"
step "a login after purge is plain"
out=$(vm_login bob "grep ^0:: /proc/self/cgroup") || fail "bob cannot log in after the purge"
[[ ! $out =~ /users/bob(\.[0-9a-f]{16})?/ ]] || fail "bob is still placed in the tree after purge: $out"
