#!/bin/bash
# test_agentd_edge.sh: beyond a fixed undirected graph, in the daemon. Four macc-agentd on loopback
# run each mode for a
# few rounds (exp-pairs on the 2-cube, local_steps 4, compress int8 and topk:0.1, sgp and
# push-sum dmsgd on a directed ring); each run must finish, end bit-identical to macc-sim with
# the same settings (finite parameters, the same mathematics), and send the STATE bytes that
# macc-sim's bytes_per_agent models (an agent may exceed it only by states re-sent on a session
# that came up twice). Then a compressed run survives a neighbour killed and restarted from its
# checkpoint: the public copies are resynchronised by full states, never silently diverge.
# (schedule = matching is in test_agentd_sim.sh, next to the static case.)
. "$(dirname "$0")/agentd_lib.sh"
[ -x "$SIM" ] || { echo "SKIP: macc-sim not built"; exit 77; }

R=${R:-8}
printf '# directed ring\n0 -> 1\n1 -> 2\n2 -> 3\n3 -> 0\n' >"$WORK/dring.txt"
printf '# the 2-cube, numbered as gen.sh --hypercube wires it\n0 1\n0 2\n1 3\n2 3\n' \
	>"$WORK/cube.txt"

# traffic_of LOG: "SENT RECEIVED RESYNCS" from the agent's traffic line.
traffic_of() {
	sed -n 's/.*traffic: state bytes sent \([0-9]*\) received \([0-9]*\), resync states sent \([0-9]*\).*/\1 \2 \3/p' \
		"$1" | tail -n 1
}

# run_mode NAME TOPOLOGY GEN_OPTS -- SIM_OPTS
run_mode() {
	local name=$1 topo=$2 dir="$WORK/$1" j gen=() sim=()
	shift 2
	while [ "$1" != "--" ]; do
		gen+=("$1")
		shift
	done
	shift
	sim=("$@")
	gen_ring "$dir" --set model=mlp:784-32-10 --set rounds="$R" --set lr=0.05 --set seed=7 \
		--set round_timeout_ms=20000 --set dead_peer_timeout_ms=60000 "${gen[@]}"
	run_four "$name" "$dir" 60
	"$SIM" --agents 4 --topology "$topo" --model mlp:784-32-10 --rounds "$R" --lr 0.05 \
		--momentum 0.9 --batch 64 --seed 7 --print-digest --quiet "${sim[@]}" \
		>"$WORK/sim.out" 2>&1 || fail "$name: macc-sim failed: $(cat "$WORK/sim.out")"
	want_bytes=$(sed -n 's/.* bytes_per_agent=\([0-9]*\) .*/\1/p' "$WORK/sim.out")
	[ -n "$want_bytes" ] || fail "$name: no bytes_per_agent in macc-sim's last line"
	for j in 0 1 2 3; do
		local want got acc sent recv resyncs ups
		want=$(sed -n "s/^agent=$j digest=\([0-9a-f]*\)$/\1/p" "$WORK/sim.out")
		got=$(digest_of "$WORK/agent$j.log")
		[ -n "$want" ] || fail "$name: no digest for agent $j in macc-sim output"
		[ "$got" = "$want" ] || fail "$name: agent$j digest $got, macc-sim agent $j $want"
		acc=$(sed -n 's/.*training done:.*test accuracy \([0-9.]*\) .*/\1/p' \
			"$WORK/agent$j.log")
		[ -n "$acc" ] || fail "$name: agent$j has no finite test accuracy"
		read -r sent recv resyncs <<<"$(traffic_of "$WORK/agent$j.log")"
		[ -n "$sent" ] || fail "$name: agent$j logged no traffic line"
		ups=$(grep -c "session up" "$WORK/agent$j.log" || true)
		if [ "$sent" != "$want_bytes" ] || [ "$resyncs" != 0 ]; then
			# Only a session that came up twice (both sides dialled at once) re-sends a
			# state, as a full resync state with compression.
			if [ "$sent" -lt "$want_bytes" ] || [ "$ups" -le 2 ]; then
				fail "$name: agent$j sent $sent state bytes, macc-sim models $want_bytes"
			fi
		fi
		echo "ok: $name agent$j digest $got == macc-sim, state bytes sent $sent" \
			"(model $want_bytes, $resyncs resyncs, $ups sessions up) received $recv," \
			"test accuracy $acc"
	done
}

run_mode exp-pairs "file:$WORK/cube.txt" --hypercube --set schedule=exp-pairs \
	--set topology="file:$WORK/cube.txt" -- --schedule exp-pairs
run_mode local4 ring --set local_steps=4 -- --local-steps 4
run_mode int8 ring --set compress=int8 -- --compress int8
run_mode topk ring --set compress=topk:0.1 -- --compress topk:0.1
run_mode sgp "file:$WORK/dring.txt" --set algorithm=sgp --set topology="file:$WORK/dring.txt" \
	-- --algorithm sgp
run_mode pushsum-dmsgd "file:$WORK/dring.txt" --set topology="file:$WORK/dring.txt" --

# A compressed run where agent2 is killed (SIGKILL) and restarted from its checkpoint: every
# public copy of or at agent2 is out of sync, so full resync states must flow both ways, and
# the run must end with finite parameters everywhere.
# int8_ring NAME [gen.sh options]: a 200-round int8-compressed ring in $WORK/NAME, started and
# waited for until agent2 logged round 46 (progress is logged every 46 rounds, a fifth of an
# epoch); sets dir.
int8_ring() {
	local name=$1
	shift
	dir="$WORK/$name"
	gen_ring "$dir" --set model=mlp:784-32-10 --set rounds=200 --set lr=0.05 --set seed=7 \
		--set compress=int8 "$@"
	start_four "$dir"
	wait_log "$WORK/agent2.log" "round 46/200" 60 || fail "$name: agent2 did not reach round 46"
}

# reconnect_grace_ms = dead_peer_timeout_ms: with the 500 ms default agents 1 and 3 could finish
# the short run before agent2 is back, and there would be no resync to check.
int8_ring resync --set checkpoint_every=10 --set round_timeout_ms=2000 \
	--set dead_peer_timeout_ms=4000 --set reconnect_grace_ms=4000

kill -9 "$PID_2"
wait_gone "$PID_2" 10 || fail "resync: agent2 did not die"
echo "ok: agent2 killed at $(grep -o 'round [0-9]*/200' "$WORK/agent2.log" | tail -n 1)"
start_agent 2 "$dir/agent2/agentd.conf" --exit-when-done
wait_four resync 90
grep -q "resumed from" "$WORK/agent2.log" || fail "resync: agent2 did not resume from a checkpoint"
for j in 1 3; do
	grep -q "\[agent2\] sent a full resync state" "$WORK/agent$j.log" ||
		fail "resync: agent$j sent no full resync state to the restarted agent2"
done
n=$(grep -c "sent a full resync state" "$WORK/agent2.log" || true)
[ "$n" -ge 2 ] || fail "resync: the restarted agent2 sent $n resync states, expected one per neighbour"
for j in 0 1 2 3; do
	acc=$(sed -n 's/.*training done: round 200 .*test accuracy \([0-9.]*\) .*/\1/p' \
		"$WORK/agent$j.log")
	[ -n "$acc" ] || fail "resync: agent$j did not end round 200 with a finite test accuracy"
	echo "ok: resync agent$j done, test accuracy $acc, $(grep -o 'resync states sent.*' \
		"$WORK/agent$j.log" | tail -n 1)"
done

# A compressed run where agent2 is frozen (SIGSTOP) for longer than the round timeout but shorter
# than the dead-peer timeout: its neighbours finish rounds without its difference, so the next
# one it sends does not follow their public copy. The receiver must notice the gap, leave agent2
# out and ask for a resync (BYE, new session, full state) instead of applying it; the run must end
# with finite parameters everywhere.
int8_ring gap --set checkpoint_every=0 --set round_timeout_ms=1000 --set dead_peer_timeout_ms=8000
kill -STOP "$PID_2"
sleep 3
kill -CONT "$PID_2"
wait_four gap 90
# Either side may find the gap first: a neighbour (agent2's difference does not follow its copy)
# or agent2 itself (the neighbours' differences queued while it was frozen).
gaps=$(cat "$WORK"/agent[0-3].log | grep -c "compressed state for round [0-9]* does not follow" ||
	true)
[ "$gaps" -ge 1 ] || fail "gap: no agent detected the gap in a public copy"
resyncs=$(cat "$WORK"/agent[0-3].log |
	grep -Ec "sent a full resync state for round ([2-9]|[1-9][0-9]+)$" || true)
[ "$resyncs" -ge 1 ] || fail "gap: no full resync state was sent after the gap"
for j in 0 1 2 3; do
	acc=$(sed -n 's/.*training done: round 200 .*test accuracy \([0-9.]*\) .*/\1/p' \
		"$WORK/agent$j.log")
	[ -n "$acc" ] || fail "gap: agent$j did not end round 200 with a finite test accuracy"
done
echo "ok: gap: $gaps out-of-sync differences detected and left out, $resyncs resync states," \
	"all four finished (agent0 test accuracy $(sed -n 's/.*training done: round 200 .*test accuracy \([0-9.]*\) .*/\1/p' "$WORK/agent0.log"))"
echo "PASS"
