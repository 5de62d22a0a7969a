#!/bin/bash
# agentd_lib.sh: helpers for the macc-agentd integration tests (sourced, not run).
#
# Every daemon a test starts is recorded in PIDS and ended by the EXIT trap, by pid. Every wait
# is bounded. Ports come from pick_base_port: a per-test block of 40 below the kernel's
# ephemeral range, chosen from the test's pid so parallel runs of different tests do not collide.
# Loopback only.
set -euo pipefail

: "${MACC_BUILD:?MACC_BUILD must point to the build directory}"
: "${MACC_SRC:?MACC_SRC must point to the source tree}"
AGENTD="$MACC_BUILD/src/agentd/macc-agentd"
SIM="$MACC_BUILD/src/sim/macc-sim"
export SIM
GEN="$MACC_SRC/examples/ring-4/gen.sh"
[ -x "$AGENTD" ] || { echo "SKIP: $AGENTD not built"; exit 77; }

WORK=$(mktemp -d /tmp/macc-agentd-test.XXXXXX)
PIDS=()

# pick_base_port: print the first of 40 ports for this test's daemons. The blocks lie between
# 10000 and the start of the kernel's ephemeral range (ip_local_port_range, 32768 by default):
# a port inside that range can be the local port of any outgoing connection on the machine, and
# a daemon's listen then fails with "address already in use" (seen in CI: a faults test's second
# fleet lost its agent0 that way). The block is the pid's, or the next that has no TCP socket
# of any state on it (ss), so two tests running at once do not share one either.
pick_base_port() {
	local lo=10000 hi=32768 eph slots slot try base
	read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || eph=$hi
	if [ "$eph" -gt $((lo + 40 * 64)) ] && [ "$eph" -lt "$hi" ]; then
		hi=$eph
	fi
	slots=$(((hi - lo) / 40))
	slot=$(($$ % slots))
	for ((try = 0; try < 64; try++)); do
		base=$((lo + ((slot + try * 97) % slots) * 40))
		if ! command -v ss >/dev/null ||
			[ -z "$(ss -Htan "sport >= :$base and sport < :$((base + 40))" 2>/dev/null)" ]; then
			echo "$base"
			return 0
		fi
	done
	echo $((lo + slot * 40)) # nothing looked free: the pid's block all the same
}
BASE_PORT=$(pick_base_port)

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait_gone "$p" 5 || kill -9 "$p" 2>/dev/null || true
	done
	if [ "${KEEP_WORK:-0}" = 1 ]; then
		echo "work dir kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	local f
	for f in "$WORK"/*.log; do
		[ -e "$f" ] || continue
		echo "---- $f (last 25 lines)" >&2
		tail -n 25 "$f" >&2
	done
	exit 1
}

# wait_gone PID SECONDS: true once the process is gone.
wait_gone() {
	local pid=$1 t=$(($2 * 10))
	while kill -0 "$pid" 2>/dev/null; do
		t=$((t - 1))
		[ "$t" -gt 0 ] || return 1
		sleep 0.1
	done
	return 0
}

# gen_ring DIR [gen.sh options]: keys and configs for 4 agents.
gen_ring() {
	local dir=$1
	shift
	"$GEN" -o "$dir" -p "$BASE_PORT" "$@" >/dev/null
}

# start_agent J CONF [extra args]: start agent J in the background, log to $WORK/agentJ.log.
start_agent() {
	local j=$1 conf=$2
	shift 2
	"$AGENTD" -c "$conf" "$@" >>"$WORK/agent$j.log" 2>&1 &
	PIDS+=("$!")
	eval "PID_$j=$!"
}

# wait_log FILE REGEX SECONDS: wait until FILE has a line matching REGEX.
wait_log() {
	local f=$1 re=$2 t=$(($3 * 10))
	until grep -Eq -- "$re" "$f" 2>/dev/null; do
		t=$((t - 1))
		[ "$t" -gt 0 ] || return 1
		sleep 0.1
	done
	return 0
}

# wait_exit PID SECONDS: wait for a child to exit and set EXIT_RC to its status; returns 1 on
# timeout (the process is left running for the EXIT trap).
# shellcheck disable=SC2034 # read by the tests that source this file
EXIT_RC=
wait_exit() {
	local pid=$1 t=$(($2 * 10))
	EXIT_RC=
	while kill -0 "$pid" 2>/dev/null; do
		t=$((t - 1))
		[ "$t" -gt 0 ] || return 1
		sleep 0.1
	done
	EXIT_RC=0
	# shellcheck disable=SC2034
	wait "$pid" || EXIT_RC=$?
	return 0
}

# start_four DIR: start agents 0..3 of fleet DIR, each to its last round (--exit-when-done),
# with fresh logs.
start_four() {
	local j
	for j in 0 1 2 3; do
		: >"$WORK/agent$j.log"
		# shellcheck disable=SC2086 # MACC_AGENTD_ARGS: extra options, e.g. "-l debug"
		start_agent "$j" "$1/agent$j/agentd.conf" --exit-when-done ${MACC_AGENTD_ARGS:-}
	done
}

# wait_four NAME SECONDS: fails unless agents 0..3 each exit 0 within SECONDS.
wait_four() {
	local name=$1 secs=$2 j pid_var
	for j in 0 1 2 3; do
		pid_var="PID_$j"
		wait_exit "${!pid_var}" "$secs" || fail "$name: agent$j did not finish in $secs s"
		[ "$EXIT_RC" = 0 ] || fail "$name: agent$j exited with $EXIT_RC"
	done
}

# run_four NAME DIR SECONDS: a fault-free run of fleet DIR's four agents to their last round.
run_four() {
	start_four "$2"
	wait_four "$1" "$3"
}

# digest_of LOGFILE: the digest of the "training done" line.
digest_of() {
	sed -n 's/.*training done:.*digest=\([0-9a-f]*\).*/\1/p' "$1" | tail -n 1
}
