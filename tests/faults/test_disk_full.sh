#!/bin/bash
# test_disk_full.sh: checkpoints fail while agent0 trains, then succeed again.
# agent0's state directory is a 1 MiB tmpfs of the test's own (in a private mount namespace,
# root only): room for checkpoint.bin, checkpoint.prev and the temporary file of the next
# checkpoint of mlp:784-32-10 (~200 KB each). checkpoint_every = 10.
#   1. disk full: the tmpfs is filled up with a file;
#   2. unwritable: the filler is removed and the tmpfs remounted read-only;
#   3. the tmpfs is writable again.
# Expected, and measured, in 1 and 2 (the policy, src/agentd/agent.c after_work): the previous
# checkpoint stays intact (it loads, and its round does not change), the failure is logged
# ("checkpoint failed") and shown as last_error in `macc-ctl status` with the system's reason,
# no temporary file is left behind, and training goes on. In 3 checkpoints advance again.
. "$(dirname "$0")/faults_lib.sh"

if [ -z "${FAULTS_IN_MNTNS:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for a private tmpfs"; exit 77; }
	# A private mount namespace needs / to be a mount point: not so inside a plain chroot.
	unshare --mount --propagation private true 2>/dev/null ||
		{ echo "SKIP: cannot make a private mount namespace here (chroot?)"; exit 77; }
	trap - EXIT
	rm -rf "$WORK"
	FAULTS_IN_MNTNS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
HOLD=40
[ "$LONG" = 1 ] && HOLD=300
FLEET="$WORK/fleet"
printf '0 1\n' >"$WORK/edges"
gen_fleet "$FLEET" 2 "$WORK/edges" --set rounds=1000000 --set checkpoint_every=10 \
	--set round_timeout_ms=1000 --set dead_peer_timeout_ms=2500
st="$FLEET/agent0/state"
mount -t tmpfs -o size=1m,mode=0700 faults-state "$st" || { echo "SKIP: cannot mount tmpfs"; exit 77; }
trap 'umount -l "$st" 2>/dev/null || true; cleanup' EXIT
start_agent 0 "$FLEET/agent0/agentd.conf"
start_agent 1 "$FLEET/agent1/agentd.conf"
wait_round 0 30 90 || fail "agent0 did not train"
"$CKPT_CHECK" "$st/checkpoint.bin" >/dev/null || fail "no good checkpoint before the fault"

ckpt_round() {
	"$CKPT_CHECK" "$1" | sed -n 's/.*: round \([0-9]*\),.*/\1/p'
}

# expect_failing WHAT REASON: checkpoints fail with REASON while training goes on.
expect_failing() {
	local what=$1 reason=$2 r0 c0 r1 c1 err
	: >"$WORK/mark"
	wait_log "$WORK/agent0.log" "checkpoint failed:.*$reason" 30 ||
		fail "$what: no 'checkpoint failed: ... $reason' in agent0's log"
	r0=$(status_of 0 round)
	c0=$(ckpt_round "$st/checkpoint.bin") || fail "$what: checkpoint.bin no longer loads"
	wait_round 0 $((r0 + HOLD)) 120 || fail "$what: training stopped"
	c1=$(ckpt_round "$st/checkpoint.bin") || fail "$what: checkpoint.bin no longer loads"
	[ "$c1" = "$c0" ] || fail "$what: checkpoint.bin changed from round $c0 to $c1"
	[ ! -e "$st/checkpoint.tmp" ] || fail "$what: a temporary checkpoint file was left behind"
	err=$(status_of 0 last_error)
	case $err in
	*checkpoint*"$reason"*) ;;
	*) fail "$what: status last_error is '$err'" ;;
	esac
	r1=$(status_of 0 round)
	echo "ok: $what: checkpoints fail ($reason), checkpoint.bin intact at round $c0, training went on from round $r0 to $r1, status last_error: $err"
	echo "RESULT disk_full $what reason='$reason' intact_round=$c0 rounds_trained=$((r1 - r0))"
}

dd if=/dev/zero of="$st/filler" bs=4k 2>/dev/null || true
expect_failing "disk full" "No space left on device"
rm -f "$st/filler"
mount -o remount,ro "$st" || fail "cannot remount the state tmpfs read-only"
expect_failing "read-only state directory" "Read-only file system"

mount -o remount,rw "$st" || fail "cannot remount the state tmpfs read-write"
c0=$(ckpt_round "$st/checkpoint.bin")
r0=$(status_of 0 round)
wait_round 0 $((r0 + 30)) 60 || fail "training stopped after the state directory recovered"
c1=$(ckpt_round "$st/checkpoint.bin") || fail "checkpoint.bin does not load after recovery"
[ "$c1" -gt "$c0" ] || fail "checkpoints did not resume after recovery (still round $c1)"
echo "ok: writable again: checkpoint.bin advanced from round $c0 to $c1"
"$CKPT_CHECK" "$st/checkpoint.prev" >/dev/null || fail "checkpoint.prev does not load"
echo "PASS"
