#!/bin/bash
# test_agentd_sim.sh: four macc-agentd on a loopback ring compute, after R rounds, parameters
# bit-identical to `macc-sim --agents 4 --topology ring` with the same settings: the network
# path does not change the mathematics. Checked for dmsgd (x and v travel), dsgd (y travels
# after the gradient), robust mixing (aggregation = clip:auto with distance screening: the daemon
# calls the simulator's macc_robust_prepare with the same inputs) and dmsgd with
# schedule = matching (each round a random maximal matching of the ring, computed by every daemon
# alone from seed and round: STATE only to the partner).
. "$(dirname "$0")/agentd_lib.sh"
[ -x "$SIM" ] || { echo "SKIP: macc-sim not built"; exit 77; }

R=${R:-25}
GEN_EXTRA=()
SIM_EXTRA=()
run_algo() {
	local algo=$1 agg=${2:-mean} dir="$WORK/$1-${2:-mean}${SIM_EXTRA[*]:+-edge}" j
	gen_ring "$dir" --set model=mlp:784-32-10 --set rounds="$R" --set algorithm="$algo" \
		--set lr=0.05 --set seed=7 --set round_timeout_ms=20000 \
		--set dead_peer_timeout_ms=60000 --set aggregation="$agg" "${GEN_EXTRA[@]}"
	run_four "$algo" "$dir" 120
	if grep -q "never arrived" "$WORK"/agent*.log; then
		fail "$algo $agg: a state was lost in a fault-free run: $(grep -h "never arrived" \
			"$WORK"/agent*.log | head -n 3)"
	fi
	"$SIM" --agents 4 --topology ring --model mlp:784-32-10 --rounds "$R" --algorithm "$algo" \
		--lr 0.05 --momentum 0.9 --batch 64 --seed 7 --aggregation "$agg" --print-digest \
		--quiet "${SIM_EXTRA[@]}" >"$WORK/sim.out" 2>&1 ||
		fail "macc-sim failed: $(cat "$WORK/sim.out")"
	for j in 0 1 2 3; do
		want=$(sed -n "s/^agent=$j digest=\([0-9a-f]*\)$/\1/p" "$WORK/sim.out")
		got=$(digest_of "$WORK/agent$j.log")
		[ -n "$want" ] || fail "no digest for agent $j in macc-sim output"
		[ "$got" = "$want" ] || fail "$algo $agg: agent$j digest $got, macc-sim agent $j $want"
		echo "ok: $algo $agg ${SIM_EXTRA[*]} agent$j digest $got == macc-sim"
	done
	if grep -q "timed out" "$WORK"/agent*.log; then
		fail "$algo: a round timed out in a fault-free run"
	fi
}

run_algo dmsgd
run_algo dsgd
run_algo dmsgd clip:auto
GEN_EXTRA=(--set schedule=matching --set topology=ring)
SIM_EXTRA=(--schedule matching)
run_algo dmsgd
echo "PASS"
