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
# The module sits where Debian 12's own PAM modules are (libpam-modules' directory name), so
# dpkg never tries to remove that directory (it warned "not empty" with /usr/lib on bookworm).
pam_dir=$(vm_root "dpkg -L libpam-modules | grep '/security/pam_unix\.so\$'")
pam_dir=${pam_dir%/pam_unix.so}
tlog "libpam-modules' module directory: $pam_dir"
if ! grep -qx "$pam_dir/pam_cgroup.so" <<<"$files"; then
    # The package built on Debian 12 (debian/build-deb; CI installs it on Debian 13 too, as an
    # administrator may) names /lib/<triplet>/security: on a merged-/usr Debian 13 that is the
    # same directory as libpam-modules' /usr/lib/<triplet>/security, so libpam finds the
    # module there. tests/deb/build-native builds the package with trixie's own name.
    ours=$(grep '/security/pam_cgroup\.so$' <<<"$files")
    ours_dir=${ours%/pam_cgroup.so}
    same=$(vm_root "[ \"\$(readlink -f '$ours_dir')\" = \"\$(readlink -f '$pam_dir')\" ] && echo same || true")
    [[ $same == same ]] ||
        fail "pam_cgroup.so is not in libpam-modules' directory $pam_dir: $ours"
    tlog "the package names $ours_dir: the same directory as libpam-modules' $pam_dir here (merged /usr)"
fi
for stack in common-session common-session-noninteractive; do
    vm_root "grep -Eq '^session[[:space:]].*pam_cgroup\.so' /etc/pam.d/$stack" \
        || fail "pam_cgroup.so is not in /etc/pam.d/$stack after install (pam-auth-update profile?)"
done
conffiles=$(vm_root "dpkg-query -W -f='\${Conffiles}' pam-cgroup")
grep -q ' /etc/pam_cgroup/config.toml ' <<<"$conffiles" \
    || fail "/etc/pam_cgroup/config.toml is not a conffile of the package"
step "the unit holding the tree is running"
state=$(wait_until 15 vm_root "systemctl is-active pam-cgroup.service") || true
assert_eq "pam-cgroup.service state" "$state" active
restarts=$(vm_root "systemctl show -p NRestarts --value pam-cgroup.service")
assert_eq "restarts of pam-cgroup.service since boot" "$restarts" 0

step "cgroupctl doctor exits 0 on the package's default install (shipped config, pam-auth-update enabled)"
# The fixture rewrote config.toml: put back the package's own for this check (the next
# scenario's fixture rewrites it again).
vm_root "dpkg-deb --fsys-tarfile /root/pam-cgroup.deb | tar -xO ./etc/pam_cgroup/config.toml > /etc/pam_cgroup/config.toml" \
    || fail "cannot extract the shipped config.toml from the .deb"
doctor=$(vm_root "cgroupctl doctor; echo rc=\$?")
tlog "$doctor"
grep -q '^rc=0$' <<<"$doctor" || fail "cgroupctl doctor does not exit 0 on a default install: $(grep -A2 '^FAIL' <<<"$doctor" | tr '\n' ' ')"
grep -q '^INFO hidepid' <<<"$doctor" || fail "hidepid off (the shipped default) is not INFO: $(grep hidepid <<<"$doctor")"
for s in sshd su sudo cron login; do
    grep -Eq "^OK +pam:$s " <<<"$doctor" || fail "doctor does not find the module in $s's stack: $(grep "pam:$s" <<<"$doctor")"
done
