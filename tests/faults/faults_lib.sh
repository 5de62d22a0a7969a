#!/bin/bash
# faults_lib.sh: helpers for the fault-injection tests (sourced, not run).
#
# Builds on tests/integration/agentd_lib.sh (daemon start, bounded waits, the EXIT trap that ends
# every daemon this test started, by pid) and adds: a fleet generator for N agents on any edge
# list (ring, random 4-regular), `macc-ctl --json` readers, per-process RSS and fd counts, the
# checkpoint checker, and re-execution inside a private network namespace for the tests that
# install nftables rules (they never touch the host's loopback).
#
# Every test honours FAULTS_LONG=1 (set by the 'faults-long' suite) to run its long form.
# shellcheck source=../integration/agentd_lib.sh
. "$MACC_SRC/tests/integration/agentd_lib.sh"

CTL="$MACC_BUILD/src/ctl/macc-ctl"
CKPT_CHECK="$MACC_BUILD/tests/faults/ckpt_check"
# shellcheck disable=SC2034 # ADVERSARY and LONG are read by the tests that source this file
ADVERSARY="$MACC_BUILD/tests/faults/adversary"
SIM="$MACC_BUILD/src/sim/macc-sim"
# shellcheck disable=SC2034
LONG=${FAULTS_LONG:-0}
# Up to 40 ports per test: agentd_lib.sh's BASE_PORT (pick_base_port).
command -v python3 >/dev/null || { echo "SKIP: python3 is needed to read JSON"; exit 77; }
[ -x "$CTL" ] || { echo "SKIP: $CTL not built"; exit 77; }

# encrypt_modes "$@": with no argument, run this script twice, with the argument "no" and then
# "yes" (plain and sealed sessions), and exit with the first failure; with one, set ENCRYPT to it.
encrypt_modes() {
	if [ -n "${1:-}" ]; then
		# shellcheck disable=SC2034 # read by the test that calls this
		ENCRYPT=$1
		return 0
	fi
	local mode rc
	for mode in no yes; do
		echo "== encrypt = $mode"
		rc=0
		bash "$0" "$mode" || rc=$?
		[ "$rc" = 0 ] || exit "$rc"
	done
	exit 0
}

# in_netns "$@": re-run this script inside a private network namespace (root only) with its
# loopback up, so nftables rules and port numbers are the test's own. Skips (77) when that is
# impossible (not root, no unshare, no nft).
in_netns() {
	if [ -z "${FAULTS_IN_NETNS:-}" ]; then
		[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for a private network namespace"; exit 77; }
		command -v unshare >/dev/null || { echo "SKIP: no unshare"; exit 77; }
		command -v nft >/dev/null || { echo "SKIP: no nft (deploy/install-deps.sh)"; exit 77; }
		trap - EXIT
		rm -rf "$WORK"
		FAULTS_IN_NETNS=1 exec unshare --net bash "$0" "$@"
	fi
	ip link set lo up
}

# gen_fleet DIR N EDGES [--set K=V]...: keys and configs for agents 0..N-1 on loopback; EDGES is
# a file of "I J" lines (undirected). Agent I listens on 127.0.0.1:BASE_PORT+I and takes shard
# I/N. Defaults below may be overridden with --set (train keys) or --agent-set (agent keys).
gen_fleet() {
	local dir=$1 n=$2 edges=$3 i j k
	shift 3
	local -A train=([model]="mlp:784-32-10" [data]="fashion-mnist" [partition]="iid"
		[algorithm]="dmsgd" [lr]="0.01" [momentum]="0.9" [batch]="64" [seed]="1"
		[rounds]="200" [round_timeout_ms]="1000" [dead_peer_timeout_ms]="2500"
		[checkpoint_every]="20" [eval_every]="0")
	local -A agentkv=([log_level]="info")
	while [ $# -gt 0 ]; do
		case $1 in
		--set) train[${2%%=*}]=${2#*=} ;;
		--agent-set) agentkv[${2%%=*}]=${2#*=} ;;
		*) fail "gen_fleet: unknown option $1" ;;
		esac
		shift 2
	done
	for ((i = 0; i < n; i++)); do
		mkdir -p "$dir/agent$i/state"
		if [ ! -s "$dir/agent$i/agent.key" ]; then
			(umask 077 && "$CTL" genkey >"$dir/agent$i/agent.key")
		fi
		"$CTL" pubkey <"$dir/agent$i/agent.key" >"$dir/agent$i/agent.pub"
	done
	for ((i = 0; i < n; i++)); do
		{
			echo "[agent]"
			echo "name = agent$i"
			echo "listen = 127.0.0.1:$((BASE_PORT + i))"
			echo "key_file = $dir/agent$i/agent.key"
			echo "state_dir = $dir/agent$i/state"
			echo "control_socket = $dir/agent$i/ctl.sock"
			for k in "${!agentkv[@]}"; do
				echo "$k = ${agentkv[$k]}"
			done
			echo
			echo "[train]"
			echo "shard = $i/$n"
			for k in $(printf '%s\n' "${!train[@]}" | sort); do
				echo "$k = ${train[$k]}"
			done
			while read -r a b; do
				if [ "$a" = "$i" ]; then j=$b; elif [ "$b" = "$i" ]; then j=$a; else continue; fi
				echo
				echo "[peer]"
				echo "name = agent$j"
				echo "endpoint = 127.0.0.1:$((BASE_PORT + j))"
				echo "public_key = $(cat "$dir/agent$j/agent.pub")"
			done <"$edges"
		} >"$dir/agent$i/agentd.conf"
	done
}

# ring_edges N FILE: the ring 0-1-...-(N-1)-0.
ring_edges() {
	local n=$1 i
	for ((i = 0; i < n; i++)); do
		echo "$i $(((i + 1) % n))"
	done >"$2"
}

# regular4_edges N SEED FILE: a random connected 4-regular graph, the union of two random
# Hamiltonian cycles with no edge in common (retried, at most 200 times).
regular4_edges() {
	local n=$1 seed=$2 out=$3
	python3 - "$n" "$seed" "$out" <<'PY' || fail "no 4-regular graph for n=$n"
import random, sys
n, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(seed)
for _ in range(200):
    edges = set()
    ok = True
    for _c in range(2):
        p = list(range(n))
        rng.shuffle(p)
        for i in range(n):
            e = tuple(sorted((p[i], p[(i + 1) % n])))
            if e in edges:
                ok = False
            edges.add(e)
    if ok and len(edges) == 2 * n:
        with open(out, "w") as f:
            for a, b in sorted(edges):
                f.write(f"{a} {b}\n")
        sys.exit(0)
sys.exit(1)
PY
}

# ctl_json J ARGS...: `macc-ctl --json ARGS` on agent J's socket (of $FLEET), printed.
ctl_json() {
	local j=$1
	shift
	"$CTL" -s "$FLEET/agent$j/ctl.sock" --json "$@"
}

# json_field KEY: read one JSON document on stdin, print d[KEY] (empty if absent or null).
json_field() {
	python3 -c 'import json,sys
d = json.load(sys.stdin)
v = d.get(sys.argv[1]) if isinstance(d, dict) else None
print("" if v is None else v)' "$1"
}

# status_of J KEY: one field of agent J's status (empty when the daemon does not answer).
status_of() {
	local out
	out=$(ctl_json "$1" status 2>/dev/null) || { echo ""; return 0; }
	printf '%s' "$out" | json_field "$2"
}

# rss_kb PID / fd_count PID: resident memory (kB) and open file descriptors of a process.
rss_kb() {
	sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null || echo 0
}
fd_count() {
	find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

# check_all_ckpts DIR: every checkpoint file under DIR loads (CRC, header, finite values).
check_all_ckpts() {
	local f n=0
	while IFS= read -r f; do
		"$CKPT_CHECK" "$f" >/dev/null || fail "checkpoint $f does not load: $("$CKPT_CHECK" "$f" 2>&1)"
		n=$((n + 1))
	done < <(find "$1" \( -name checkpoint.bin -o -name checkpoint.prev \) -type f)
	echo "$n"
}

# final_acc LOG: the test accuracy of the "training done" line.
final_acc() {
	sed -n 's/.*training done:.*test accuracy \([0-9.na]*\).*/\1/p' "$1" | tail -n 1
}

# pid_of J: the pid of agent J (PID_J).
pid_of() {
	local v="PID_$1"
	echo "${!v:-}"
}

# wait_round J R SECONDS: wait until agent J's status reports round >= R.
wait_round() {
	local j=$1 r=$2 t=$(($3 * 5)) cur
	while [ "$t" -gt 0 ]; do
		cur=$(status_of "$j" round)
		if [ -n "$cur" ] && [ "$cur" -ge "$r" ]; then
			return 0
		fi
		t=$((t - 1))
		sleep 0.2
	done
	return 1
}

# round_times LOG: the per-round "round N ms" figures of an agent's progress lines.
round_times() {
	sed -n 's/.*round [0-9]*\/[0-9]* .* round \([0-9.]*\) ms.*/\1/p' "$1"
}

# ---- hostile neighbours ----------------------------------------------------------

# hostile_fleet [gen_fleet options]: agent0 with two configured neighbours, agent1 (an honest
# daemon, whose only neighbour is agent0) and agent2 (whose key the adversary holds), all with
# encrypt = $ENCRYPT; starts agent0 and agent1 and waits until they train together. Sets FLEET.
hostile_fleet() {
	hostile_conf "$@"
	start_agent 0 "$FLEET/agent0/agentd.conf"
	start_agent 1 "$FLEET/agent1/agentd.conf"
	wait_log "$WORK/agent0.log" "\[agent1\] session up" 60 || fail "agent0 and agent1 did not connect"
	wait_round 0 10 60 || fail "agent0 did not reach round 10"
}

# hostile_conf [gen_fleet options]: (re)write hostile_fleet's configs (keys are kept).
hostile_conf() {
	FLEET="$WORK/fleet"
	printf '0 1\n0 2\n' >"$WORK/edges"
	gen_fleet "$FLEET" 3 "$WORK/edges" --set rounds=1000000 --set round_timeout_ms=300 \
		--set dead_peer_timeout_ms=1500 --set checkpoint_every=0 \
		--agent-set "encrypt=${ENCRYPT:-yes}" "$@"
}

# adv OUT ARGS...: run the adversary against agent0 in the foreground, output in $WORK/OUT;
# sets ADV_RC to its exit status.
# shellcheck disable=SC2034 # ADV_RC is read by the tests that source this file
adv() {
	local out=$1
	shift
	ADV_RC=0
	timeout 180 "$ADVERSARY" --connect "127.0.0.1:$BASE_PORT" "$@" >"$WORK/$out" 2>&1 || ADV_RC=$?
}

# connrej J REASON: agent J's count of connections refused before identification for REASON.
connrej() {
	ctl_json "$1" status | python3 -c 'import json,sys
print(json.load(sys.stdin).get("connections_rejected_total", {}).get(sys.argv[1], 0))' "$2"
}

# peer_rej J PEER REASON: agent J's count of PEER's messages rejected for REASON (0 if none).
peer_rej() {
	ctl_json "$1" peers | python3 -c 'import json,sys
p = [q for q in json.load(sys.stdin)["peers"] if q["name"] == sys.argv[1]][0]
print(p["messages_rejected_total"].get(sys.argv[2], 0))' "$2" "$3"
}

# metric J NAME: the value of the sample NAME (with its labels, as printed) in agent J's metrics.
metric() {
	"$CTL" -s "$FLEET/agent$1/ctl.sock" metrics | awk -v n="$2" '$1 == n { print $2; f = 1 }
		END { if (!f) print "" }'
}

# alive J: fail unless agent J's process is still there.
alive() {
	kill -0 "$(pid_of "$1")" 2>/dev/null || fail "agent$1 is gone: $(tail -n 5 "$WORK/agent$1.log")"
}

# finite_status J: fail unless agent J's train loss is a finite number.
finite_status() {
	ctl_json "$1" status | python3 -c 'import json,math,sys
d = json.load(sys.stdin)
v = d.get("train_loss")
sys.exit(0 if v is not None and math.isfinite(v) else "train_loss %r" % (v,))' ||
		fail "agent$1's train loss is not finite"
}
