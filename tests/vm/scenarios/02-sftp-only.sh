# An SFTP-only account (ForceCommand internal-sftp) is confined, and a transfer works.
payload=$VM_TMP/s02-payload
head -c 300000 /dev/urandom >"$payload"
want=$(sha256sum "$payload" | cut -d' ' -f1)
batch=$VM_TMP/s02-batch
back=$VM_TMP/s02-back
printf 'put %s upload.bin\nget upload.bin %s\n' "$payload" "$back" >"$batch"

# While the transfer runs, the internal-sftp server (sshd's session process) must be in the
# user's leaf: hold the session open with a slow second batch and look at it from root.
vm_sftp sftponly "$batch" >/dev/null || fail "sftp transfer as sftponly failed"
got=$(vm_root "sha256sum /home/sftponly/upload.bin | cut -d' ' -f1")
assert_eq "sha256 of the uploaded file in the guest" "$got" "$want"
assert_eq "sha256 of the downloaded file" "$(sha256sum "$back" | cut -d' ' -f1)" "$want"
owner=$(vm_root "stat -c %U /home/sftponly/upload.bin")
assert_eq "owner of the uploaded file" "$owner" sftponly

step "the sftp session's processes are confined"
# A long-lived sftp session: sftp reads its batch from a fifo we keep open.
fifo=$VM_TMP/s02-fifo
mkfifo "$fifo"
local_opts=()
mapfile -t local_opts < <(vm_ssh_opts | sed 's/^-p$/-P/')
sftp "${local_opts[@]}" -o ControlMaster=no -o ControlPath=none -b - sftponly@127.0.0.1 \
    <"$fifo" >>"$VM_TRANSCRIPT" 2>&1 &
sftp_pid=$!
exec 7>"$fifo"
echo "ls" >&7
pid=$(wait_until 30 vm_root "pgrep -u sftponly -f '^sshd(-session)?: sftponly' | head -n 1 | grep .") ||
    fail "no sshd session process of sftponly found while its sftp session is open"
# sshd's processes of the session: the privileged monitor (root) and the internal-sftp
# server (sftponly). Not user@2004.service's manager: it is no part of the session.
procs=$(vm_root "pgrep -f '^sshd(-session)?: sftponly' | tr '\n' ' '")
n=0
for p in $procs; do
    assert_session_leaf "$p" sftponly "sshd process $p of sftponly's session ($(vm_root "cat /proc/$p/cmdline | tr '\\0' ' '" || true))" >/dev/null
    n=$((n + 1))
done
((n >= 2)) || fail "expected sshd's monitor and internal-sftp processes of the session, found $n"
echo "bye" >&7
exec 7>&-
wait "$sftp_pid" || true
