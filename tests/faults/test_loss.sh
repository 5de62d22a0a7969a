#!/bin/bash
# test_loss.sh: 5% packet loss on every link of a ring, in a private network namespace (root,
# nft). netem is not available here, so an nftables rule drops 5% of all TCP packets at random
# (numgen random) on the namespace's loopback, both directions of every connection.
# Reordering: TCP hands the daemon one ordered byte stream per session, so messages can not be
# reordered inside a session; what loss does produce is out-of-order segment arrival that TCP
# repairs (retransmission after a loss delivers later segments first). Reordering across
# sessions (old frames after a reconnect) is the replay case of test_adversary.sh.
# Short form: 4 agents, 600 rounds; long form: 8 agents, 1500 rounds. Expected, and measured:
# training completes on every agent (exit 0, "training done"), packets really were dropped (nft
# counter), and the mean accuracy stays within 2 points of the loss-free run (macc-sim).
. "$(dirname "$0")/faults_lib.sh"
in_netns "$@"

N=4 R=600
if [ "$LONG" = 1 ]; then
	N=8 R=1500
fi
FLEET="$WORK/fleet"
ring_edges "$N" "$WORK/edges"
gen_fleet "$FLEET" "$N" "$WORK/edges" --set rounds=$R --set checkpoint_every=50 \
	--set round_timeout_ms=1000 --set dead_peer_timeout_ms=5000
nft add table inet faults
nft add chain inet faults out '{ type filter hook output priority 0; }'
nft add rule inet faults out meta l4proto tcp numgen random mod 100 '<' 5 counter drop
t0=$(date +%s)
for ((j = 0; j < N; j++)); do
	start_agent "$j" "$FLEET/agent$j/agentd.conf" --exit-when-done
done
"$SIM" --agents "$N" --topology ring --model mlp:784-32-10 --rounds $R --lr 0.01 \
	--momentum 0.9 --batch 64 --seed 1 --eval-every-agent --quiet >"$WORK/sim.out" 2>&1 ||
	fail "macc-sim failed"
for ((j = 0; j < N; j++)); do
	wait_exit "$(pid_of "$j")" 600 || fail "agent$j did not finish under 5% loss"
	[ "$EXIT_RC" = 0 ] || fail "agent$j exited with $EXIT_RC"
	grep -q "training done: round $R " "$WORK/agent$j.log" || fail "agent$j did not complete $R rounds"
done
t1=$(date +%s)
drops=$(nft list chain inet faults out | sed -n 's/.*packets \([0-9]*\).*/\1/p')
[ "${drops:-0}" -gt 0 ] || fail "the loss rule dropped no packet"
sum=0
for ((j = 0; j < N; j++)); do
	acc=$(final_acc "$WORK/agent$j.log")
	sum=$(awk -v s="$sum" -v a="$acc" 'BEGIN { printf "%.6f", s + a }')
done
mean=$(awk -v s="$sum" -v n="$N" 'BEGIN { printf "%.4f", s / n }')
simmean=$(sed -n 's/.*test_acc_mean=\([0-9.]*\).*/\1/p' "$WORK/sim.out" | tail -n 1)
awk -v m="$mean" -v s="$simmean" 'BEGIN { exit !(m >= s - 0.02) }' ||
	fail "mean accuracy $mean under loss is more than 2 points below the loss-free $simmean"
missed=0
for ((j = 0; j < N; j++)); do
	m=$(grep -c "timed out waiting" "$WORK/agent$j.log" || true)
	missed=$((missed + m))
done
echo "ok: $N agents completed $R rounds under 5% loss in $((t1 - t0)) s; $drops packets dropped; $missed neighbour states timed out; mean accuracy $mean (loss-free $simmean)"
echo "RESULT loss agents=$N rounds=$R seconds=$((t1 - t0)) packets_dropped=$drops timeouts=$missed mean_acc=$mean lossfree_acc=$simmean"
echo "PASS"
