#!/bin/bash
# test_agentd_sim.sh: four macc-agentd on a loopback ring compute, after R rounds, parameters
# bit-identical to `macc-sim --agents 4 --topology ring` with the same settings: the network
# path does not change the mathematics. Checked for dmsgd (x and v travel), dsgd (y travels
# after the gradient), robust mixing (aggregation = clip:auto with distance screening: the daemon
# calls the simulator's macc_robust_prepare with the same inputs) and dmsgd with
# schedule = matching (each round a random maximal matching of the ring, computed by every daemon
# alone from seed and round: STATE only to the partner). Then the length of a run: `epochs`
# (not `rounds`) with local_steps = 2 and a step learning-rate schedule, where the daemon must
# count rounds per epoch and rates by the simulator's rule (rounds per epoch = the smallest
# shard's batches / local_steps); and clip:auto with local_steps = 2, a combination both must
# accept.
. "$(dirname "$0")/agentd_lib.sh"
[ -x "$SIM" ] || { echo "SKIP: macc-sim not built"; exit 77; }

R=${R:-25}
GEN_EXTRA=()
SIM_EXTRA=()
# The run's length: R rounds, unless a case sets epochs instead. CASE names the fleet's directory.
GEN_LEN=(--set rounds="$R")
SIM_LEN=(--rounds "$R")
CASE=plain
run_algo() {
	local algo=$1 agg=${2:-mean} dir="$WORK/$1-${2:-mean}-$CASE" j
	gen_ring "$dir" --set model=mlp:784-32-10 "${GEN_LEN[@]}" --set algorithm="$algo" \
		--set lr=0.05 --set seed=7 --set round_timeout_ms=20000 \
		--set dead_peer_timeout_ms=60000 --set aggregation="$agg" "${GEN_EXTRA[@]}"
	run_four "$algo" "$dir" 120
	if grep -q "never arrived" "$WORK"/agent*.log; then
		fail "$algo $agg: a state was lost in a fault-free run: $(grep -h "never arrived" \
			"$WORK"/agent*.log | head -n 3)"
	fi
	"$SIM" --agents 4 --topology ring --model mlp:784-32-10 "${SIM_LEN[@]}" \
		--algorithm "$algo" --lr 0.05 --momentum 0.9 --batch 64 --seed 7 \
		--aggregation "$agg" --print-digest --quiet "${SIM_EXTRA[@]}" >"$WORK/sim.out" 2>&1 ||
		fail "macc-sim failed: $(cat "$WORK/sim.out")"
	for j in 0 1 2 3; do
		want=$(sed -n "s/^agent=$j digest=\([0-9a-f]*\)$/\1/p" "$WORK/sim.out")
		got=$(digest_of "$WORK/agent$j.log")
		[ -n "$want" ] || fail "no digest for agent $j in macc-sim output"
		[ "$got" = "$want" ] ||
			fail "$algo $agg ${SIM_EXTRA[*]}: agent$j digest $got, macc-sim agent $j $want"
		echo "ok: $algo $agg ${SIM_EXTRA[*]} agent$j digest $got == macc-sim"
	done
	if grep -q "timed out" "$WORK"/agent*.log; then
		fail "$algo: a round timed out in a fault-free run"
	fi
}

run_algo dmsgd
run_algo dsgd
run_algo dmsgd clip:auto
CASE=matching
GEN_EXTRA=(--set schedule=matching --set topology=ring)
SIM_EXTRA=(--schedule matching)
run_algo dmsgd

# Epochs with local steps and a step schedule: 15000 samples a shard, batch 256: 58 batches,
# 29 rounds per epoch with two local steps, 87 rounds in 3 epochs, the rate halved at rounds 29
# and 58. A daemon that counted 58 rounds per epoch would run 174 rounds at other rates.
CASE=epochs
GEN_LEN=(--set epochs=3)
SIM_LEN=(--epochs 3)
GEN_EXTRA=(--set batch=256 --set local_steps=2 --set lr_schedule=step:1:0.5)
SIM_EXTRA=(--batch 256 --local-steps 2 --lr-schedule step:1:0.5)
run_algo dmsgd
for j in 0 1 2 3; do
	grep -q "29 rounds per epoch (2 local steps a round), 87 rounds" "$WORK/agent$j.log" ||
		fail "agent$j: not 29 rounds per epoch and 87 rounds: $(grep -h "rounds per epoch" \
			"$WORK/agent$j.log")"
	grep -q "training done: round 87 epoch 3.00 " "$WORK/agent$j.log" ||
		fail "agent$j did not end at round 87, epoch 3"
done
echo "ok: epochs: 29 rounds per epoch, 87 rounds, on every agent as in macc-sim"

# Robust mixing with local steps: one table of combinations, so both accept it.
CASE=local2
GEN_LEN=(--set rounds="$R")
SIM_LEN=(--rounds "$R")
GEN_EXTRA=(--set local_steps=2)
SIM_EXTRA=(--local-steps 2)
run_algo dmsgd clip:auto
echo "PASS"
