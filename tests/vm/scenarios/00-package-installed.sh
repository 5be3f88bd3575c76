# The product is installed from its Debian package: the module, cgroupctl and the PAM
# profile come from `pam-cgroup`, and pam-auth-update put the module in both session stacks.
step "install mode: $VM_INSTALL_MODE"
if [[ $VM_INSTALL_MODE != deb* ]]; then
    fail "installed without a .deb ($VM_INSTALL_MODE): build pam-cgroup_*_amd64.deb (dpkg-buildpackage -b -us -uc) or set PAM_CGROUP_DEB"
fi
status=$(vm_root "dpkg-query -W -f='\${Status}' pam-cgroup 2>/dev/null || true")
assert_eq "dpkg status of pam-cgroup" "$status" "install ok installed"
files=$(vm_root "dpkg -L pam-cgroup")
grep -qx /usr/sbin/cgroupctl <<<"$files" || fail "the package does not ship /usr/sbin/cgroupctl"
grep -Eq '^/(usr/)?lib/x86_64-linux-gnu/security/pam_cgroup\.so$' <<<"$files" \
    || fail "the package does not ship lib/x86_64-linux-gnu/security/pam_cgroup.so"
for stack in common-session common-session-noninteractive; do
    vm_root "grep -Eq '^session[[:space:]].*pam_cgroup\.so' /etc/pam.d/$stack" \
        || fail "pam_cgroup.so is not in /etc/pam.d/$stack after install (pam-auth-update profile?)"
done
conffiles=$(vm_root "dpkg-query -W -f='\${Conffiles}' pam-cgroup")
grep -q ' /etc/pam_cgroup/config.toml ' <<<"$conffiles" \
    || fail "/etc/pam_cgroup/config.toml is not a conffile of the package"
step "the unit holding the tree is running"
state=""
for _ in $(seq 1 15); do
    state=$(vm_root "systemctl is-active pam-cgroup.service || true")
    [[ $state == active ]] && break
    sleep 1
done
assert_eq "pam-cgroup.service state" "$state" active
restarts=$(vm_root "systemctl show -p NRestarts --value pam-cgroup.service")
assert_eq "restarts of pam-cgroup.service since boot" "$restarts" 0
