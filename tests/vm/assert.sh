# shellcheck shell=bash
# Assertions and probes for the scenarios. Every probe reads the guest's kernel state as root
# over the ControlMaster (/proc/PID/cgroup, cgroup files, ss): scenarios assert what the
# system did, never what a command under test printed about itself.

# fail WHY: the scenario fails with this reason.
fail() {
    printf '%s\n' "$*" >"$SCENARIO_RESULT"
    tlog "FAIL: $*"
    exit 1
}

# step TEXT: a marker in the transcript.
step() {
    tlog "---- $*"
}

# cg_mount: the guest's cgroup2 mount point.
cg_mount() {
    vm_root "findmnt -n -t cgroup2 -o TARGET | head -n 1"
}

# wait_until SECONDS COMMAND [ARGS...]: the one polling loop of the scenarios. Runs COMMAND
# (a probe: vm_root "...", or a function of the scenario) until it succeeds, every
# $POLL_EVERY seconds (default 1; `POLL_EVERY=2 wait_until ...` for slower things), and
# prints what its last run printed. Status 1 once SECONDS have passed without success, with
# the last output printed all the same, so the caller says what did not happen:
#   listen=$(wait_until 20 vm_root "ss -Hltn 'sport = :8080' | grep .") || fail "..."
# COMMAND must not call fail (a failed probe is only "not yet").
wait_until() {
    local timeout=$1 out="" status
    shift
    local deadline=$((SECONDS + timeout))
    while :; do
        status=0
        out=$("$@") || status=$?
        if ((status == 0)); then
            printf '%s\n' "$out"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            printf '%s\n' "$out"
            return 1
        fi
        sleep "${POLL_EVERY:-1}"
    done
}

# matching PATTERN COMMAND [ARGS...]: runs COMMAND, prints its output and succeeds when the
# output matches the glob PATTERN; the probe for waiting on what a command shows:
#   series=$(wait_until 60 matching '*alice=*' vm_root "python3 /tmp/query.py ...") || fail "..."
matching() {
    local pattern=$1 out
    shift
    out=$("$@") || true
    printf '%s\n' "$out"
    # shellcheck disable=SC2053 # PATTERN is a glob on purpose
    [[ $out == $pattern ]]
}

# wait_tagged TAG [SECONDS]: pid of the guest process whose command line starts with TAG
# (processes under test are started as `exec -a TAG ...`); fails after SECONDS (default 30).
wait_tagged() {
    local tag=$1 timeout=${2:-30}
    wait_until "$timeout" vm_root "pgrep -o -f '^$tag( |\$)'" ||
        fail "no process tagged $tag appeared within $timeout s"
}

# gone_tagged TAG: true if no process tagged TAG exists.
gone_tagged() {
    [[ -z $(vm_root "pgrep -f '^$1( |\$)' || true") ]]
}

# cgroup_of PID: absolute path of the cgroup v2 directory of PID (from /proc/PID/cgroup).
cgroup_of() {
    local pid=$1 line mnt
    line=$(vm_root "cat /proc/$pid/cgroup") || fail "process $pid is gone (no /proc/$pid/cgroup)"
    line=$(grep '^0::' <<<"$line" || true)
    [[ -n $line ]] || fail "process $pid has no cgroup v2 line in /proc/$pid/cgroup"
    mnt=$(cg_mount)
    echo "$mnt${line#0::}"
}

# assert_session_leaf PID USER [WHAT]: PID is where a session's processes start, the
# login/ of a session leaf: <tree root>/users/USER.<tag>/session-*/login (the tag: 16 hex
# digits keyed by the guest's tree key). Prints that cgroup.
assert_session_leaf() {
    local pid=$1 user=$2 what=${3:-process $1} cg
    cg=$(cgroup_of "$pid")
    tlog "$what of $user is in $cg"
    if [[ ! $cg =~ ^${VM_TREE_ROOT}/users/${user}\.[0-9a-f]{16}/session-[^/]+/login$ ]]; then
        fail "$what is in $cg, not in $VM_TREE_ROOT/users/$user.<tag>/session-*/login"
    fi
    echo "$cg"
}

# assert_not_confined PID [WHAT]: PID is outside <tree root>/users/.
assert_not_confined() {
    local pid=$1 what=${2:-process $1} cg
    cg=$(cgroup_of "$pid")
    tlog "$what is in $cg"
    if [[ $cg == "$VM_TREE_ROOT/users/"* ]]; then
        fail "$what is confined in $cg, but must not be"
    fi
    echo "$cg"
}

# cgread PATH: a guest file's content (fails the scenario if unreadable).
cgread() {
    vm_root "cat '$1'" || fail "cannot read $1"
}

# cgkey PATH KEY: value of KEY in a flat-keyed cgroup file (memory.events, cpu.stat, ...).
cgkey() {
    local content
    content=$(cgread "$1")
    awk -v k="$2" '$1 == k { print $2; found = 1 } END { if (!found) print "" }' <<<"$content"
}

# assert_eq WHAT ACTUAL EXPECTED
assert_eq() {
    [[ $2 == "$3" ]] || fail "$1: expected '$3', got '$2'"
    tlog "ok: $1 = '$2'"
}

# assert_file_eq PATH EXPECTED
assert_file_eq() {
    local v
    v=$(cgread "$1")
    assert_eq "$1" "$v" "$2"
}

# user_cg USER: the user's cgroup, <tree root>/users/USER.<tag>: the tag is keyed by a secret
# only root reads, so the guest's cgroupctl names it.
user_cg() {
    local cg
    cg=$(vm_root "cgroupctl path '$1'") || fail "cgroupctl path $1 failed"
    [[ $cg =~ ^${VM_TREE_ROOT}/users/$1\.[0-9a-f]{16}$ ]] || fail "cgroupctl path $1 names $cg"
    echo "$cg"
}

# legacy_user_cg USER: <tree root>/users/USER, where versions before the keyed names (0.1.0
# among them) put the user.
legacy_user_cg() {
    echo "$VM_TREE_ROOT/users/$1"
}

# pids_max_refusals USER_CGROUP: forks refused at pids.max in the user cgroup and its leaves.
# The kernel counts a refusal in the cgroup whose limit refused it (6.9+) or in the forking
# task's own cgroup, the session leaf (Debian 12's 6.1): the subtree's sum covers both.
pids_max_refusals() {
    vm_root "cat '$1/pids.events' '$1'/*/pids.events 2>/dev/null | awk '\$1 == \"max\" {n += \$2} END {print n + 0}'"
}

# require_cgroupctl_verb VERB: fail clearly when the installed cgroupctl lacks VERB.
require_cgroupctl_verb() {
    local verb=$1
    if ! vm_root "cgroupctl help $verb >/dev/null 2>&1 || cgroupctl $verb --help >/dev/null 2>&1"; then
        fail "feature missing: the installed cgroupctl has no '$verb' command ($(vm_root 'cgroupctl --version 2>&1' || echo 'no cgroupctl'))"
    fi
}

# kill_user_processes USER: all of USER's processes, through the kernel (cgroup.kill on the
# user's cgroup and on a legacy users/USER when they exist, then pkill for anything outside).
# Named by the tree root, not by cgroupctl: the installed one may be 0.1.0's (98).
kill_user_processes() {
    local u=$1
    vm_root "for d in '$VM_TREE_ROOT/users/$u' '$VM_TREE_ROOT/users/$u'.????????????????; do
                 if [ -e \"\$d/cgroup.kill\" ]; then echo 1 > \"\$d/cgroup.kill\"; fi
             done
             pkill -KILL -u $u 2>/dev/null; sleep 0.5; true" >/dev/null
}

# journal_since CURSOR-FILE: the guest journal since a cursor captured with journal_cursor.
journal_cursor() {
    vm_root "journalctl -n 1 --show-cursor -q | sed -n 's/^-- cursor: //p'"
}
journal_since() {
    vm_root "journalctl -q --no-pager --after-cursor='$1'"
}

# require_daemon: pam-cgroup.service runs (an earlier scenario, 16-unit-lifecycle, may have
# stopped it). systemd 252 starts it again only while no session populates tree/
# (pam_cgroup(8)): call it before the scenario's first login, with the customers' processes
# gone (vm_reset_fixture; the kernel may take a moment to empty the cgroups).
require_daemon() {
    wait_until 5 vm_root "systemctl is-active pam-cgroup.service || systemctl start pam-cgroup.service" >/dev/null ||
        fail "pam-cgroup.service is not running and does not start: $(vm_root 'systemctl --no-pager status pam-cgroup.service 2>&1 | tail -n 5' || true)"
}

# make_customers NAME:ID...: local customers a scenario makes for itself (uid = gid = ID, a
# home, the image's key to log in with). One left by an earlier run is removed first, its
# processes with it.
make_customers() {
    vm_root "set -e
for spec in $*; do
    u=\${spec%:*}; id=\${spec#*:}
    if id \"\$u\" >/dev/null 2>&1; then pkill -KILL -u \"\$u\" || true; sleep 0.3; userdel -f -r \"\$u\" 2>/dev/null || true; fi
    groupdel \"\$u\" 2>/dev/null || true
    groupadd -g \"\$id\" \"\$u\"
    useradd -m -u \"\$id\" -g \"\$id\" -s /bin/bash \"\$u\"
    usermod -p '*' \"\$u\"
    install -d -m 700 -o \"\$u\" -g \"\$u\" \"/home/\$u/.ssh\"
    install -m 600 -o \"\$u\" -g \"\$u\" /root/.ssh/authorized_keys \"/home/\$u/.ssh/authorized_keys\"
done" >/dev/null || fail "cannot create the scenario's customers $*"
}
