#!/bin/bash
# test_crash.sh: kill -9 a random agent of a ring every few rounds and restart it after a pause.
# Short form: 4 agents, 800 rounds, 3 crashes; long form (FAULTS_LONG=1): 8 agents, 2000 rounds,
# 8 crashes. Expected, and measured:
#   - every agent finishes (exit 0) with finite parameters (its final checkpoint holds only
#     finite values) and every checkpoint file on disk loads (tests/faults/ckpt_check);
#   - the mean final test accuracy is within 1 point (either way) of the fault-free run of the
#     same ring (macc-sim, same rounds and seeds: a fault-free daemon ring equals it bit for bit).
# This ring's whole run takes a few seconds, about what a restart takes, so the neighbours wait
# for a killed agent's return (reconnect_grace_ms = dead_peer_timeout_ms, the round timeout per
# round meanwhile); with the default grace they would finish before it is back, and it would
# train the rest alone (test_dead_peer.sh measures the default).
. "$(dirname "$0")/faults_lib.sh"

N=4 R=800 KILLS=3 EVERY=150
if [ "$LONG" = 1 ]; then
	N=8 R=2000 KILLS=8 EVERY=200
fi
RANDOM=8 # reproducible victims
FLEET="$WORK/fleet"
ring_edges "$N" "$WORK/edges"
gen_fleet "$FLEET" "$N" "$WORK/edges" --set rounds=$R --set checkpoint_every=20 \
	--set round_timeout_ms=1000 --set dead_peer_timeout_ms=2500 --set reconnect_grace_ms=2500
for ((j = 0; j < N; j++)); do
	start_agent "$j" "$FLEET/agent$j/agentd.conf" --exit-when-done
done

# The fault-free reference, computed while the ring trains.
"$SIM" --agents "$N" --topology ring --model mlp:784-32-10 --rounds $R --lr 0.01 \
	--momentum 0.9 --batch 64 --seed 1 --eval-every-agent --quiet >"$WORK/sim.out" 2>&1 &
SIMPID=$!
PIDS+=("$SIMPID")

target=$EVERY
done_kills=0
for ((k = 1; k <= KILLS; k++)); do
	victim=$((RANDOM % N))
	watcher=$(((victim + 1) % N))
	wait_log "$WORK/agent$watcher.log" "round ([0-9]+)/$R" 120 || fail "agent$watcher never trained"
	# Wait until the watcher passed the target round (bounded), then kill the victim.
	wait_round "$watcher" "$target" 120 || fail "agent$watcher did not reach round $target"
	# The survivors do not wait for a killed agent (only reconnect_grace_ms once), so a fast
	# ring may be near its end by now: then no more crashes (the victim may be done).
	pid=$(pid_of "$victim")
	for ((try = 0; try < 25; try++)); do
		cur=$(status_of "$watcher" round)
		[ -z "$cur" ] || break
		sleep 0.2
	done
	if [ -z "$cur" ] || [ "$cur" -ge $((R - 50)) ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "crash $k: not injected, the ring is at round ${cur:-?} of $R"
		break
	fi
	kill -9 "$pid" 2>/dev/null || fail "agent$victim was not running before crash $k"
	wait_gone "$pid" 5 || fail "agent$victim survived kill -9"
	echo "crash $k: agent$victim killed at about round $(status_of "$watcher" round)"
	sleep 0.5
	start_agent "$victim" "$FLEET/agent$victim/agentd.conf" --exit-when-done
	wait_log "$WORK/agent$victim.log" "training from round" 60 ||
		fail "agent$victim did not restart after crash $k"
	done_kills=$k
	target=$((target + EVERY))
	[ "$target" -lt $((R - 50)) ] || break
done
grep -q "resumed from .*checkpoint" "$WORK"/agent*.log || fail "no restarted agent resumed from a checkpoint"
echo "ok: $done_kills crashes injected, restarted agents resumed from their checkpoints"

for ((j = 0; j < N; j++)); do
	wait_exit "$(pid_of "$j")" 400 || fail "agent$j did not finish"
	[ "$EXIT_RC" = 0 ] || fail "agent$j exited with $EXIT_RC"
done
nck=$(check_all_ckpts "$FLEET")
[ "$nck" -ge "$N" ] || fail "only $nck checkpoint files for $N agents"
echo "ok: all $N agents finished; $nck checkpoint files load and hold finite values"

wait_exit "$SIMPID" 300 || fail "macc-sim did not finish"
simmean=$(sed -n 's/.*test_acc_mean=\([0-9.]*\).*/\1/p' "$WORK/sim.out" | tail -n 1)
[ -n "$simmean" ] || fail "no test_acc_mean from macc-sim: $(tail -3 "$WORK/sim.out")"
sum=0
for ((j = 0; j < N; j++)); do
	acc=$(final_acc "$WORK/agent$j.log")
	awk -v a="$acc" 'BEGIN { exit !(a + 0 == a && a > 0 && a <= 1) }' ||
		fail "agent$j final accuracy '$acc' is not a number in (0, 1]"
	sum=$(awk -v s="$sum" -v a="$acc" 'BEGIN { printf "%.6f", s + a }')
done
mean=$(awk -v s="$sum" -v n="$N" 'BEGIN { printf "%.4f", s / n }')
awk -v m="$mean" -v s="$simmean" 'BEGIN { exit !(m >= s - 0.01 && m <= s + 0.01) }' ||
	fail "mean accuracy $mean is not within 1 point of the fault-free $simmean"
echo "ok: mean final accuracy $mean with crashes, fault-free $simmean"
echo "RESULT crash agents=$N rounds=$R crashes=$done_kills mean_acc=$mean faultfree_acc=$simmean ckpts=$nck"
echo "PASS"
