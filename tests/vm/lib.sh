# shellcheck shell=bash
# Library of the end-to-end VM tests: boot the cached guest image under qemu (TCG), talk to
# it over ssh, install the product, and clean everything up. Sourced by tests/vm/run and by
# every scenario (which run in subshells of run and share its VM).
#
# Globals set by vm_init / vm_boot (exported so scenarios see them):
#   VM_IMAGE_DIR   cache directory of the image (build-image's output)
#   VM_TMP         this run's temp dir (ssh key copy, control socket, qemu overlay, pidfile)
#   VM_PORT        host port forwarded to the guest's sshd
#   VM_TRANSCRIPT  the transcript file every command and its output is appended to
#   VM_CONSOLE     the guest's serial console log

VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_REPO=$(cd "$VM_LIB_DIR/../.." && pwd)
: "${VM_MEM:=1024}"
: "${VM_CPUS:=2}"
: "${VM_BOOT_TIMEOUT:=300}"
VM_QEMU_PID=${VM_QEMU_PID:-}

# ---- transcript ------------------------------------------------------------------------

# tlog TEXT...: one line into the transcript (with a time stamp).
tlog() {
    printf '[%s] %s\n' "$(date +%T)" "$*" >>"$VM_TRANSCRIPT"
}

# tlog_block LABEL FILE: a captured output into the transcript, indented.
tlog_block() {
    local label=$1 file=$2
    [[ -s $file ]] || return 0
    printf '    %s:\n' "$label" >>"$VM_TRANSCRIPT"
    sed 's/^/    | /' "$file" >>"$VM_TRANSCRIPT"
}

# ---- setup and teardown ----------------------------------------------------------------

# vm_init IMAGE_DIR: prepare this run's temp dir and key.
vm_init() {
    VM_IMAGE_DIR=$1
    VM_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pam-cgroup-vm.XXXXXX")
    install -m 600 "$VM_IMAGE_DIR/id_ed25519" "$VM_TMP/id"
    VM_CONSOLE=${VM_CONSOLE:-$VM_TMP/console.log}
    export VM_IMAGE_DIR VM_TMP VM_CONSOLE
}

# vm_cleanup: kill qemu (if started), close the ssh master, remove the temp dir. Idempotent;
# installed as the EXIT trap by run.
vm_cleanup() {
    if [[ -n ${VM_TMP:-} && -S $VM_TMP/cm ]]; then
        ssh -F /dev/null -S "$VM_TMP/cm" -O exit root@127.0.0.1 >/dev/null 2>&1 || true
    fi
    if [[ -n ${VM_QEMU_PID:-} ]] && kill -0 "$VM_QEMU_PID" 2>/dev/null; then
        kill -TERM "$VM_QEMU_PID" 2>/dev/null || true
        local i
        for i in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$VM_QEMU_PID" 2>/dev/null || break
            sleep 0.2
            [[ $i -eq 10 ]] && kill -KILL "$VM_QEMU_PID" 2>/dev/null
        done
        wait "$VM_QEMU_PID" 2>/dev/null || true
    fi
    VM_QEMU_PID=
    if [[ -n ${VM_TMP:-} && -d $VM_TMP ]]; then
        if [[ -n ${VM_KEEP_CONSOLE:-} && -f $VM_TMP/console.log ]]; then
            cp "$VM_TMP/console.log" "$VM_KEEP_CONSOLE" 2>/dev/null || true
        fi
        rm -rf "$VM_TMP"
    fi
    VM_TMP=
}

# A TCP port on 127.0.0.1 nobody listens on (qemu fails to start if it is taken meanwhile;
# vm_boot then tries another).
vm_free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 20000))
        if ! ss -Htln "sport = :$port" | grep -q .; then
            echo "$port"
            return 0
        fi
    done
}

# vm_boot: start qemu and wait until sshd answers; opens the ssh ControlMaster.
# A guest kernel that dies while booting is tried again (up to three times in all): the
# emulator's doing, not the product's. Seen on trixie's 6.12 under TCG with 2 vCPUs, each a
# crash on an instruction being patched while another vCPU ran it (multi-threaded TCG does
# not make the kernel's live patching of static branches safe across vCPUs): "Oops: int3" in
# sched_clock_cpu 1.7 s into a boot of the pristine image, and in dequeue_entity ("Code: ...
# e9 <a1> ...", half a patched jump) 24 s into the boot after scenario 24's reboot, where the
# first cpu.max a lingering customer's manager gets switches the scheduler's bandwidth branch
# on; both "Kernel panic - not syncing: Fatal exception in interrupt", and the next boot was
# fine. panic=-1 with -no-reboot makes qemu exit at a panic, so such a boot is seen at once
# instead of after VM_BOOT_TIMEOUT (and a guest that panics later, in a scenario, is down at
# once too: run reboots it for the next scenario, as for any guest that stops). A reboot's
# boot is tried again on the same disk and port: the installed product and the scenario's
# state are what the reboot is about (a fresh overlay there left the package uninstalled for
# every later scenario of the suite).
vm_boot() {
    local kver attempt new_port=0
    kver=$(cat "$VM_IMAGE_DIR/kernel-version")
    for attempt in 1 2 3; do
        # The guest writes to a copy-on-write overlay in VM_TMP (removed with it): the cached
        # image stays pristine, and the overlay outlives a guest's own reboot (vm_reboot),
        # which -snapshot's did not. A fresh boot starts from a fresh overlay, each attempt.
        if [[ ${VM_KEEP_DISK:-0} != 1 || ! -f $VM_TMP/overlay.qcow2 ]]; then
            rm -f "$VM_TMP/overlay.qcow2"
            qemu-img create -q -f qcow2 -F raw -b "$VM_IMAGE_DIR/rootfs.ext4" "$VM_TMP/overlay.qcow2" \
                || return 1
        fi
        # A reboot keeps the port (a scenario's ssh calls go on with it) unless qemu could
        # not forward it.
        if [[ ${VM_KEEP_DISK:-0} != 1 || -z ${VM_PORT:-} || $new_port == 1 ]]; then
            VM_PORT=$(vm_free_port)
        fi
        export VM_PORT
        tlog "boot: qemu (TCG, ${VM_CPUS} vCPUs, ${VM_MEM} MB) kernel $kver, ssh on 127.0.0.1:$VM_PORT"
        # restrict=on: the guest reaches neither the host
        # nor the outside; only the ssh forward works. --pdeathsig: qemu dies with run
        # even on SIGKILL.
        TMPDIR=$VM_TMP setpriv --pdeathsig KILL -- \
            qemu-system-x86_64 \
            -name pam-cgroup-vm \
            -accel tcg,tb-size=128 -cpu max -smp "$VM_CPUS" -m "$VM_MEM" \
            -kernel "$VM_IMAGE_DIR/vmlinuz" -initrd "$VM_IMAGE_DIR/initrd.img" \
            -append "root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 systemd.unified_cgroup_hierarchy=1 quiet mitigations=off panic=-1" \
            -drive "file=$VM_TMP/overlay.qcow2,format=qcow2,if=virtio,cache=unsafe" \
            -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$VM_PORT-:22" \
            -device virtio-net-pci,netdev=n0 \
            -device virtio-rng-pci \
            -display none -vga none -monitor none -no-reboot \
            -serial "file:$VM_CONSOLE" \
            -pidfile "$VM_TMP/qemu.pid" \
            </dev/null >"$VM_TMP/qemu.out" 2>&1 &
        VM_QEMU_PID=$!
        export VM_QEMU_PID
        if vm_wait_ssh; then
            return 0
        fi
        tlog_block "qemu output" "$VM_TMP/qemu.out"
        if grep -q 'Could not set up host forwarding' "$VM_TMP/qemu.out" 2>/dev/null; then
            vm_stop_qemu
            new_port=1
            continue
        fi
        tlog "boot failed; console tail:"
        tail -n 30 "$VM_CONSOLE" >"$VM_TMP/console.tail" 2>/dev/null || true
        tlog_block "console" "$VM_TMP/console.tail"
        vm_stop_qemu
        if ((attempt < 3)) && grep -q 'Kernel panic' "$VM_CONSOLE" 2>/dev/null; then
            vm_note "the guest kernel panicked while booting (attempt $attempt of 3, console above in the transcript); booting again$([[ ${VM_KEEP_DISK:-0} == 1 ]] && echo ' from the same disk')"
            continue
        fi
        return 1
    done
    return 1
}

# vm_request_reboot (in a scenario): `run`, which owns qemu, reboots the guest (vm_reboot)
# and the scenario goes on afterwards with the same port and ControlMaster path.
vm_request_reboot() {
    tlog "reboot requested"
    rm -f "$VM_TMP/reboot-done"
    touch "$VM_TMP/reboot-request"
    local deadline=$((SECONDS + 600))
    while [[ ! -e $VM_TMP/reboot-done ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
    [[ $(cat "$VM_TMP/reboot-done") == ok ]]
}

# vm_reboot: the guest powers off cleanly (-no-reboot: qemu then exits) and boots again from
# the same disk, with everything installed and changed so far: what a reboot of a host does to
# lingering users, the unit and the tree.
vm_reboot() {
    tlog "reboot"
    vm_root "systemctl poweroff" >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 180))
    while kill -0 "$VM_QEMU_PID" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 1
    done
    if [[ -S $VM_TMP/cm ]]; then
        ssh -F /dev/null -S "$VM_TMP/cm" -O exit root@127.0.0.1 >/dev/null 2>&1 || true
    fi
    vm_stop_qemu
    VM_KEEP_DISK=1 vm_boot
}

vm_stop_qemu() {
    if [[ -n ${VM_QEMU_PID:-} ]]; then
        kill -KILL "$VM_QEMU_PID" 2>/dev/null || true
        wait "$VM_QEMU_PID" 2>/dev/null || true
    fi
    VM_QEMU_PID=
}

# Read with a command substitution, not `< <(...)`: a whole-suite run once hung between two
# scenarios in the main shell's wait4() (at `vm_root true`) with no child left but qemu, until
# qemu was killed; a process substitution is the only asynchronous child on that path.
vm_ssh_opts() {
    printf '%s\n' -F /dev/null -i "$VM_TMP/id" -p "$VM_PORT" \
        -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=20 \
        -o ServerAliveInterval=10 -o ServerAliveCountMax=6
}

# vm_wait_ssh: wait for sshd (a real login as root), then open the ControlMaster.
vm_wait_ssh() {
    local deadline=$((SECONDS + VM_BOOT_TIMEOUT))
    local -a opts
    mapfile -t opts <<<"$(vm_ssh_opts)"
    while ((SECONDS < deadline)); do
        if ! kill -0 "$VM_QEMU_PID" 2>/dev/null; then
            tlog "qemu exited during boot"
            return 1
        fi
        if ssh "${opts[@]}" -o ConnectTimeout=5 \
            -o ControlMaster=yes -o ControlPath="$VM_TMP/cm" -o ControlPersist=yes \
            root@127.0.0.1 true >/dev/null 2>&1; then
            tlog "boot: ssh ready after $((SECONDS - deadline + VM_BOOT_TIMEOUT)) s"
            return 0
        fi
        sleep 1
    done
    tlog "boot: ssh not ready after ${VM_BOOT_TIMEOUT} s"
    return 1
}

# ---- running commands ------------------------------------------------------------------

# _vm_run LABEL SSH-ARGS... -- COMMAND: run, log command and output, pass output through.
_vm_run() {
    local label=$1
    shift
    local -a args=()
    while [[ $1 != -- ]]; do
        args+=("$1")
        shift
    done
    shift
    local cmd=$*
    local out err status=0
    out=$(mktemp "$VM_TMP/out.XXXXXX")
    err=$(mktemp "$VM_TMP/err.XXXXXX")
    tlog "$label\$ $cmd"
    ssh "${args[@]}" "$cmd" >"$out" 2>"$err" <"${VM_STDIN:-/dev/null}" || status=$?
    tlog_block stdout "$out"
    tlog_block stderr "$err"
    [[ $status -eq 0 ]] || tlog "    (exit status $status)"
    cat "$out"
    cat "$err" >&2
    rm -f "$out" "$err"
    return "$status"
}

# vm_root CMD...: run a shell command as root over the ControlMaster (setup, inspection).
# No PAM session is opened for it: the master's one session was opened at boot, before
# the module was installed.
vm_root() {
    local -a opts
    mapfile -t opts <<<"$(vm_ssh_opts)"
    _vm_run "root@vm" "${opts[@]}" -o ControlMaster=no -o ControlPath="$VM_TMP/cm" \
        root@127.0.0.1 -- "$@"
}

# vm_root_stdin FILE CMD...: like vm_root with FILE on standard input.
vm_root_stdin() {
    local file=$1
    shift
    VM_STDIN=$file vm_root "$@"
}

# vm_login USER CMD...: a FRESH ssh connection as USER (a new PAM session), run CMD.
vm_login() {
    local user=$1
    shift
    local -a opts
    mapfile -t opts <<<"$(vm_ssh_opts)"
    _vm_run "login $user" "${opts[@]}" -o ControlMaster=no -o ControlPath=none \
        "$user@127.0.0.1" -- "$@"
}

# vm_login_bg USER CMD...: a fresh login in the background (the session stays open while CMD
# runs); prints the host pid of the ssh client. Its output goes to the transcript at the end.
vm_login_bg() {
    local user=$1
    shift
    local -a opts
    mapfile -t opts <<<"$(vm_ssh_opts)"
    tlog "login $user (background)\$ $*"
    ssh "${opts[@]}" -o ControlMaster=no -o ControlPath=none "$user@127.0.0.1" "$*" \
        </dev/null >>"$VM_TRANSCRIPT" 2>&1 &
    echo $!
}

# vm_client_ssh USER CMD...: a fresh login as USER by a client at its default log level,
# printing what the person logging in sees (stdout and stderr: banners and PAM messages,
# which the harness's LogLevel=ERROR hides; ssh takes the first value of an option, so that
# one is left out rather than overridden). Not logged through _vm_run: its output is the
# subject of the test.
vm_client_ssh() {
    local user=$1
    shift
    local -a opts all
    mapfile -t all <<<"$(vm_ssh_opts)"
    local i
    for ((i = 0; i < ${#all[@]}; i++)); do
        if [[ ${all[$i]} == -o && ${all[$((i + 1))]:-} == LogLevel=* ]]; then
            i=$((i + 1))
            continue
        fi
        opts+=("${all[$i]}")
    done
    tlog "client ssh $user\$ $*"
    ssh "${opts[@]}" -o LogLevel=INFO -o ControlMaster=no -o ControlPath=none \
        "$user@127.0.0.1" "$@" </dev/null 2>&1
}

# vm_sftp USER BATCHFILE: a fresh sftp session as USER running the batch; output logged.
vm_sftp() {
    local user=$1 batch=$2
    local -a opts
    mapfile -t opts <<<"$(vm_ssh_opts)"
    # sftp takes -P for the port; the other options are the same.
    local -a sopts=()
    local i
    for ((i = 0; i < ${#opts[@]}; i++)); do
        if [[ ${opts[$i]} == -p ]]; then
            sopts+=(-P)
        else
            sopts+=("${opts[$i]}")
        fi
    done
    local out status=0
    out=$(mktemp "$VM_TMP/out.XXXXXX")
    tlog "sftp $user (batch:)"
    tlog_block batch "$batch"
    sftp "${sopts[@]}" -o ControlMaster=no -o ControlPath=none -b "$batch" \
        "$user@127.0.0.1" >"$out" 2>&1 || status=$?
    tlog_block output "$out"
    [[ $status -eq 0 ]] || tlog "    (exit status $status)"
    cat "$out"
    rm -f "$out"
    return "$status"
}

# vm_copy_in LOCAL REMOTE [MODE]: copy a file into the guest (as root).
vm_copy_in() {
    local src=$1 dst=$2 mode=${3:-644}
    tlog "copy in: $src -> $dst (mode $mode)"
    VM_STDIN=$src vm_root "cat > '$dst.tmp' && chmod $mode '$dst.tmp' && mv -f '$dst.tmp' '$dst'" >/dev/null
}

# vm_write FILE [MODE] <<EOF: write standard input to a guest file (as root).
vm_write() {
    local dst=$1 mode=${2:-644}
    local tmp
    tmp=$(mktemp "$VM_TMP/write.XXXXXX")
    cat >"$tmp"
    tlog "write $dst (mode $mode):"
    tlog_block content "$tmp"
    VM_STDIN=$tmp vm_root "cat > '$dst.tmp' && chmod $mode '$dst.tmp' && mv -f '$dst.tmp' '$dst'" >/dev/null
    rm -f "$tmp"
}

# vm_save_journal FILE: the guest's whole journal of this boot (not in the transcript: long).
vm_save_journal() {
    local -a opts
    mapfile -t opts <<<"$(vm_ssh_opts)"
    ssh "${opts[@]}" -o ControlMaster=no -o ControlPath="$VM_TMP/cm" root@127.0.0.1 \
        "journalctl -b --no-pager -o short-monotonic" >"$1" 2>&1 </dev/null || true
    tlog "guest journal saved to $1"
}

# vm_shutdown: power the guest off (nothing to save: -snapshot) and clean up.
vm_shutdown() {
    tlog "shutdown"
    vm_cleanup
}

# ---- installing the product ------------------------------------------------------------

# vm_find_deb: prints the .deb to install, or nothing. PAM_CGROUP_DEB wins; then
# target/deb/*.deb; then ../pam-cgroup_*_amd64.deb (dpkg-buildpackage's output); newest first.
vm_find_deb() {
    if [[ -n ${PAM_CGROUP_DEB:-} ]]; then
        echo "$PAM_CGROUP_DEB"
        return 0
    fi
    local f
    f=$(ls -t "$VM_REPO"/target/deb/pam-cgroup_*_amd64.deb "$VM_REPO"/../pam-cgroup_*_amd64.deb \
        2>/dev/null | head -n 1 || true)
    [[ -n $f ]] && echo "$f"
    return 0
}

# vm_install_deb DEB: install the package into the guest with apt (offline: its dependencies
# must already be in the image, see packages.txt), then enable its PAM profile the way an
# administrator does (`pam-auth-update --enable pam-cgroup`: the profile ships Default: no).
vm_install_deb() {
    local deb=$1
    vm_copy_in "$deb" /root/pam-cgroup.deb || return 1
    # The PAM files as they were before the package, for the purge scenario's byte-for-byte check.
    vm_root "mkdir -p /root/pre-install && cp -a /etc/pam.d/common-session /etc/pam.d/common-session-noninteractive /etc/pam.d/common-account /root/pre-install/" >/dev/null || return 1
    vm_root "DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/pam-cgroup.deb" >/dev/null 2>&1 || {
        echo "apt-get install of $(basename "$deb") failed in the guest" >&2
        return 1
    }
    vm_root "pam-auth-update --enable pam-cgroup" >/dev/null 2>&1 || {
        echo "pam-auth-update --enable pam-cgroup failed in the guest" >&2
        return 1
    }
    vm_root "grep -H pam_cgroup /etc/pam.d/common-session /etc/pam.d/common-session-noninteractive; systemctl --no-pager status pam-cgroup.service 2>&1 | head -n 5 || true" >/dev/null || true
    VM_INSTALL_MODE="deb $(basename "$deb")"
    export VM_INSTALL_MODE
}

# vm_install_raw: the fallback while no .deb exists: the release binaries copied into place,
# a config written, and the module added at the end of both common-session stacks.
vm_install_raw() {
    local so=$VM_REPO/target/release/libpam_cgroup.so
    local ctl=$VM_REPO/target/release/cgroupctl
    [[ -f $so && -f $ctl ]] || { echo "no $so or $ctl: build them first" >&2; return 1; }
    vm_copy_in "$so" /lib/x86_64-linux-gnu/security/pam_cgroup.so 644 || return 1
    vm_copy_in "$ctl" /usr/sbin/cgroupctl 755 || return 1
    vm_root "install -d -m 755 /etc/pam_cgroup /etc/pam_cgroup/users" >/dev/null || return 1
    vm_write_config || return 1
    vm_root 'for f in /etc/pam.d/common-session /etc/pam.d/common-session-noninteractive; do
                 grep -q pam_cgroup.so "$f" || echo "session required pam_cgroup.so" >> "$f"; done
             grep -q pam_cgroup.so /etc/pam.d/common-account ||
                 echo "account [success=ok new_authtok_reqd=ok ignore=ignore module_unknown=ignore default=bad] pam_cgroup.so" >> /etc/pam.d/common-account' >/dev/null || return 1
    VM_INSTALL_MODE="raw binaries (FALLBACK: no .deb found)"
    export VM_INSTALL_MODE
}

# ---- the test fixture ------------------------------------------------------------------

# The tree root the tests expect: [tree] root of the installed config (the package may point
# it at its unit's delegated cgroup), else <cgroup2 mount>/pam_cgroup. Set by vm_read_tree_root.
vm_read_tree_root() {
    local root
    root=$(vm_root "python3 - <<'EOF'
import tomllib
try:
    with open('/etc/pam_cgroup/config.toml', 'rb') as f:
        print(tomllib.load(f).get('tree', {}).get('root', ''))
except FileNotFoundError:
    print('')
EOF") || return 1
    if [[ -z $root ]]; then
        local mnt
        mnt=$(vm_root "findmnt -n -t cgroup2 -o TARGET | head -n 1") || return 1
        root="$mnt/pam_cgroup"
    fi
    VM_TREE_ROOT=$root
    export VM_TREE_ROOT
}

# vm_write_config [EXTRA-TOML]: the tests' config: a plan for group plan-pro, defaults for
# everyone else, root and group admins exempt. EXTRA-TOML is appended (e.g. [private_ip]).
vm_write_config() {
    local tree=""
    [[ -n ${VM_TREE_ROOT:-} ]] && tree="root = \"$VM_TREE_ROOT\""
    vm_write /etc/pam_cgroup/config.toml 644 <<EOF
# written by tests/vm (the end-to-end tests' fixture)
[tree]
$tree

[policy]
on_error = "open"
exempt_users = ["root"]
exempt_groups = ["admins"]
min_uid = 1000

[limits]
"memory.max" = "256M"
"pids.max" = 200
"cpu.max" = "100%"

[profiles.pro]
"memory.max" = "384M"
"pids.max" = 300
"cpu.max" = "150%"

[groups]
plan-pro = "pro"
${1:-}
EOF
}

# vm_enable_private_ip: the fixture config with [private_ip] on (gids from 2000, ports
# 8000-8299), then `cgroupctl init` attaches the programs; returns init's status.
vm_enable_private_ip() {
    vm_write_config '
[private_ip]
enabled = true
min_gid = 2000
ports = "8000-8299"'
    vm_root "cgroupctl init" >/dev/null
}

# vm_reset_fixture: between scenarios: the standard config, no user files, no processes of
# the test users, no test cron jobs.
vm_reset_fixture() {
    vm_write_config
    # A scenario that froze a user (issue 13: suspend) and failed half way must not leave it
    # frozen for the next one.
    vm_root "for f in '${VM_TREE_ROOT:-/nonexistent}'/users/*/cgroup.freeze; do [ -e \"\$f\" ] && echo 0 > \"\$f\"; done; true" >/dev/null
    # A scenario's user units and lingering (24, 25) must not start in the next one.
    vm_root 'for u in alice bob carol; do loginctl disable-linger "$u" 2>/dev/null || true; rm -rf "/home/$u/.config/systemd"; done
             systemctl stop nginx.service "php*-fpm.service" 2>/dev/null; true' >/dev/null || true
    vm_root 'rm -f /etc/pam_cgroup/users/*.toml /etc/cron.d/pamcg-*
             for u in alice bob carol sftponly; do pkill -KILL -u "$u" 2>/dev/null || true; done
             sleep 0.5; true' >/dev/null
}

# vm_user_file USER <<EOF: a per-user override file.
vm_user_file() {
    vm_write "/etc/pam_cgroup/users/$1.toml" 644
}

# ---- bringing a guest up ---------------------------------------------------------------

# vm_note TEXT: progress on stderr and in the transcript.
vm_note() {
    printf 'vm: %s\n' "$*" >&2
    tlog "$*"
}

# vm_timed LABEL SECONDS: a line in $VM_TIMES (if set).
vm_timed() {
    [[ -n ${VM_TIMES:-} ]] || return 0
    printf '%-34s %5d s\n' "$1" "$2" >>"$VM_TIMES"
}

# vm_bring_up IMAGE_DIR [DEB]: boot, install the product (the .deb, or the raw release
# binaries when DEB is empty), create the test users. Also used after a guest crash.
vm_bring_up() {
    local image_dir=$1 deb=${2:-} t0=$SECONDS
    vm_init "$image_dir" || return 1
    vm_boot || return 1
    vm_timed "boot to ssh" $((SECONDS - t0))
    vm_note "guest up: ssh ready after $((SECONDS - t0)) s"
    t0=$SECONDS
    if [[ -n $deb ]]; then
        vm_install_deb "$deb" || return 1
    else
        vm_install_raw || return 1
    fi
    vm_note "installed: $VM_INSTALL_MODE"
    vm_read_tree_root || return 1
    vm_note "tree root: $VM_TREE_ROOT"
    vm_prepare_fixture || return 1
    vm_timed "install + fixture" $((SECONDS - t0))
}

# vm_prepare_fixture: the test accounts. alice (plan-pro), bob, carol (admins), sftponly
# (ForceCommand internal-sftp); all log in with the image's key. uids/gids >= 2000 so that
# they are confined and get private IPs (127.0.0.0 | gid).
vm_prepare_fixture() {
    vm_root "$(cat <<'EOS'
set -e
groupadd -g 1500 admins
groupadd -g 1600 plan-pro
for spec in alice:2001 bob:2002 carol:2003 sftponly:2004; do
    u=${spec%:*}; id=${spec#*:}
    groupadd -g "$id" "$u"
    shell=/bin/bash; [ "$u" = sftponly ] && shell=/usr/sbin/nologin
    useradd -m -u "$id" -g "$id" -s "$shell" "$u"
    usermod -p '*' "$u"
    install -d -m 700 -o "$u" -g "$u" "/home/$u/.ssh"
    install -m 600 -o "$u" -g "$u" /root/.ssh/authorized_keys "/home/$u/.ssh/authorized_keys"
done
usermod -aG plan-pro alice
usermod -aG admins carol
cat >> /etc/ssh/sshd_config <<'EOT'

# tests/vm: an SFTP-only account
Match User sftponly
    ForceCommand internal-sftp
EOT
sshd -t
systemctl reload ssh
EOS
)" >/dev/null || return 1
    vm_write_config
}
