#!/bin/bash
# test_agentd_faults.sh: crash and graceful stop of ring members while the ring trains.
#   1. kill -9 agent2 in the middle of the run: its neighbours declare it dead and keep training
#      (no round waits longer than the round timeout); restart it: it resumes from its checkpoint,
#      rejoins at the neighbours' round, and every agent finishes with exit 0. Accuracy: the
#      agents' mean within 1 point of the fault-free simulator's mean (same settings), and no
#      agent more than 2 points below the simulator's worst agent. The cosine schedule anneals
#      the step to 0 by the last round, so the final models sit near the plateau and agree
#      (the fault-free agents all end at the same accuracy): what the faults cost shows, SGD
#      noise at the last round does not (a constant lr left the last-round accuracy of one
#      agent 1 to 3 points off from one run to the next).
#   2. SIGTERM agent0 mid-run: it finishes the round, writes a checkpoint and exits 0; started
#      again it resumes from that checkpoint.
#   The ring's 600 rounds take a few seconds: with the default reconnect_grace_ms (500 ms) the
#   survivors would stop waiting for agent2 at once and finish before its restart (tested in
#   tests/faults/test_dead_peer.sh); here the grace equals dead_peer_timeout_ms, so the dead-peer
#   path and the rejoin in step are what this test exercises.
. "$(dirname "$0")/agentd_lib.sh"

R=600
dir="$WORK/ring"
LR=0.05
# FAULT_SETS: extra gen.sh options for debugging, split into words on purpose.
# shellcheck disable=SC2086
gen_ring "$dir" --set model=mlp:784-32-10 --set rounds=$R --set lr=$LR \
	--set lr_schedule=cosine --set round_timeout_ms=1000 --set dead_peer_timeout_ms=2500 \
	--set reconnect_grace_ms=2500 --set checkpoint_every=20 ${FAULT_SETS:-}
for j in 0 1 2 3; do
	start_agent "$j" "$dir/agent$j/agentd.conf" --exit-when-done
done

# 1. Crash agent2 after ~2/5 of an epoch.
wait_log "$WORK/agent2.log" "round 92/$R" 90 || fail "agent2 never reached round 92"
kill -9 "$PID_2"
wait_gone "$PID_2" 5 || fail "agent2 survived kill -9"
echo "ok: agent2 killed"
wait_log "$WORK/agent1.log" "\[agent2\] no traffic .*declared dead" 20 ||
	fail "agent1 did not declare agent2 dead"
wait_log "$WORK/agent3.log" "\[agent2\] no traffic .*declared dead" 20 ||
	fail "agent3 did not declare agent2 dead"
n1=$(grep -c "round [0-9]*/$R" "$WORK/agent1.log" || true)
wait_log "$WORK/agent1.log" "round (184|230|276)/$R" 60 || fail "agent1 stopped training"
echo "ok: neighbours declared agent2 dead and kept training ($n1 progress lines before)"

# Round times stay bounded by the round timeout (plus compute) while agent2 is away.
worst=$(sed -n "s/.*round [0-9]*\/$R .* round \([0-9.]*\) ms.*/\1/p" "$WORK/agent1.log" |
	sort -n | tail -n 1)
awk -v w="$worst" 'BEGIN { exit !(w < 1000 + 1500) }' ||
	fail "agent1 had a round of $worst ms, above the 1000 ms timeout + margin"

start_agent 2 "$dir/agent2/agentd.conf" --exit-when-done
wait_log "$WORK/agent2.log" "resumed from .*checkpoint.bin at round [1-9]" 30 ||
	fail "restarted agent2 did not resume from its checkpoint"
wait_log "$WORK/agent2.log" "neighbours are at round|session up" 30 ||
	fail "restarted agent2 did not rejoin"
echo "ok: agent2 resumed from its checkpoint and rejoined"

for j in 0 1 2 3; do
	pid_var="PID_$j"
	wait_exit "${!pid_var}" 240 || fail "agent$j did not finish"
	[ "$EXIT_RC" = 0 ] || fail "agent$j exited with $EXIT_RC"
done
"$SIM" --agents 4 --topology ring --model mlp:784-32-10 --rounds $R --lr $LR \
	--lr-schedule cosine --momentum 0.9 --batch 64 --seed 1 --eval-every-agent --quiet \
	>"$WORK/sim.out" 2>&1 || fail "macc-sim failed"
simmin=$(sed -n 's/.*test_acc_min=\([0-9.]*\).*/\1/p' "$WORK/sim.out" | tail -n 1)
simmean=$(sed -n 's/.*test_acc_mean=\([0-9.]*\).*/\1/p' "$WORK/sim.out" | tail -n 1)
if [ -z "$simmin" ] || [ -z "$simmean" ]; then
	fail "no test_acc_min/mean in the simulator's output"
fi
accs=()
for j in 0 1 2 3; do
	acc=$(sed -n 's/.*training done:.*test accuracy \([0-9.]*\).*/\1/p' "$WORK/agent$j.log" |
		tail -n 1)
	[ -n "$acc" ] || fail "agent$j reported no final accuracy"
	awk -v a="$acc" -v s="$simmin" 'BEGIN { exit !(a >= s - 0.02) }' ||
		fail "agent$j accuracy $acc more than 2 points below the fault-free worst agent $simmin"
	echo "ok: agent$j finished, accuracy $acc (fault-free worst agent $simmin)"
	accs+=("$acc")
done
mean=$(printf '%s\n' "${accs[@]}" | awk '{ s += $1 } END { printf "%.4f", s / NR }')
awk -v a="$mean" -v s="$simmean" 'BEGIN { exit !(a >= s - 0.01) }' ||
	fail "mean accuracy $mean more than 1 point below the fault-free mean $simmean"
echo "ok: mean accuracy $mean (fault-free mean $simmean)"

# 2. SIGTERM: checkpoint and exit 0, then resume.
dir="$WORK/term"
: >"$WORK/agent0.log"
gen_ring "$dir" --set model=mlp:784-32-10 --set rounds=100000 --set checkpoint_every=0 \
	--set round_timeout_ms=1000 --set dead_peer_timeout_ms=2500
for j in 0 1 2 3; do
	start_agent "$j" "$dir/agent$j/agentd.conf"
done
wait_log "$WORK/agent0.log" "round 46/" 60 || fail "agent0 never reached round 46"
[ ! -e "$dir/agent0/state/checkpoint.bin" ] || fail "checkpoint before SIGTERM with checkpoint_every=0"
kill -TERM "$PID_0"
wait_exit "$PID_0" 10 || fail "agent0 did not exit within 10 s of SIGTERM"
[ "$EXIT_RC" = 0 ] || fail "agent0 exited with $EXIT_RC after SIGTERM"
[ -s "$dir/agent0/state/checkpoint.bin" ] || fail "no checkpoint after SIGTERM"
echo "ok: SIGTERM -> checkpoint and exit 0"
start_agent 0 "$dir/agent0/agentd.conf"
wait_log "$WORK/agent0.log" "resumed from .*checkpoint.bin at round [1-9]" 30 ||
	fail "agent0 did not resume from the SIGTERM checkpoint"
echo "ok: resumed after SIGTERM"
for j in 0 1 2 3; do
	pid_var="PID_$j"
	kill -TERM "${!pid_var}" 2>/dev/null || true
done
for j in 0 1 2 3; do
	pid_var="PID_$j"
	wait_exit "${!pid_var}" 15 || fail "agent$j did not exit after SIGTERM"
	[ "$EXIT_RC" = 0 ] || fail "agent$j exited with $EXIT_RC after SIGTERM"
done
echo "PASS"
