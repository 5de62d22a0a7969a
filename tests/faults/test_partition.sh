#!/bin/bash
# test_partition.sh: a ring split in two halves for 30 rounds, then healed.
# Runs in a private network namespace (root, nft): agents listen on 0.0.0.0, and the two ring
# edges that cross between the halves are configured with the address 127.0.0.99, so one
# nftables rule (drop everything from or to 127.0.0.99) cuts exactly those links, silently, as a
# real partition would (no RST: TCP retransmits into the void until the dead-peer timeout).
# Short form: 6 agents; long form: 8 agents. Expected, and measured:
#   - both halves keep training during the partition (rounds advance on both sides);
#   - consensus distance across the cut (||x_a - x_b||^2 between the middle agents of the two
#     halves, from checkpoints written while all agents are paused) rises during the partition
#     to more than 10 times its value before (seen: ~150x), and falls back after healing: to
#     less than a tenth of the partitioned value, and to less than 5 times the value before the
#     partition (seen: ~1.2x).
. "$(dirname "$0")/faults_lib.sh"
in_netns "$@"

N=6
[ "$LONG" = 1 ] && N=8
H=$((N / 2))
PART=30
FLEET="$WORK/fleet"
ring_edges "$N" "$WORK/edges"
gen_fleet "$FLEET" "$N" "$WORK/edges" --set rounds=1000000 --set checkpoint_every=0 \
	--set round_timeout_ms=1000 --set dead_peer_timeout_ms=2500
# Cross edges (H-1, H) and (N-1, 0) go through 127.0.0.99.
cross() { # cross I J: is I-J a cut edge?
	{ [ "$1" -lt "$H" ] && [ "$2" -ge "$H" ]; } || { [ "$1" -ge "$H" ] && [ "$2" -lt "$H" ]; }
}
for ((i = 0; i < N; i++)); do
	conf="$FLEET/agent$i/agentd.conf"
	sed -i 's/^listen = 127\.0\.0\.1:/listen = 0.0.0.0:/' "$conf"
	for j in $(((i + 1) % N)) $(((i + N - 1) % N)); do
		if cross "$i" "$j"; then
			sed -i "s/^endpoint = 127\.0\.0\.1:$((BASE_PORT + j))\$/endpoint = 127.0.0.99:$((BASE_PORT + j))/" "$conf"
		fi
	done
done
grep -q "127.0.0.99" "$FLEET/agent0/agentd.conf" || fail "no cut edge configured"
nft add table inet faults
nft add chain inet faults out '{ type filter hook output priority 0; }'

for ((j = 0; j < N; j++)); do
	start_agent "$j" "$FLEET/agent$j/agentd.conf"
done
for ((j = 0; j < N; j++)); do
	wait_round "$j" 60 120 || fail "agent$j did not train"
done

A=1 B=$((H + 1)) # middle agents of the halves
# snapshot: pause every agent, checkpoint it, print the cross distance d(A, B), resume.
snapshot() {
	local j t
	for ((j = 0; j < N; j++)); do
		"$CTL" -s "$FLEET/agent$j/ctl.sock" pause >/dev/null || fail "pause agent$j"
	done
	for ((j = 0; j < N; j++)); do
		t=100
		until [ "$(status_of "$j" state)" = paused ]; do
			t=$((t - 1))
			[ "$t" -gt 0 ] || fail "agent$j did not pause"
			sleep 0.1
		done
		rm -f "$FLEET/agent$j/state/checkpoint.bin"
		"$CTL" -s "$FLEET/agent$j/ctl.sock" checkpoint >/dev/null || fail "checkpoint agent$j"
	done
	for ((j = 0; j < N; j++)); do
		t=100
		until "$CKPT_CHECK" "$FLEET/agent$j/state/checkpoint.bin" >/dev/null 2>&1; do
			t=$((t - 1))
			[ "$t" -gt 0 ] || fail "agent$j wrote no checkpoint"
			sleep 0.1
		done
	done
	"$CKPT_CHECK" --dist "$FLEET/agent$A/state/checkpoint.bin" "$FLEET/agent$B/state/checkpoint.bin"
	for ((j = 0; j < N; j++)); do
		"$CTL" -s "$FLEET/agent$j/ctl.sock" resume >/dev/null || fail "resume agent$j"
	done
}

d0=$(snapshot)
echo "cross distance before the partition: $d0"
nft add rule inet faults out ip daddr 127.0.0.99 counter drop
nft add rule inet faults out ip saddr 127.0.0.99 counter drop
ra=$(status_of $A round)
rb=$(status_of $B round)
wait_round $A $((ra + PART)) 120 || fail "half A stopped training during the partition"
wait_round $B $((rb + PART)) 120 || fail "half B stopped training during the partition"
grep -q "no traffic .*declared dead" "$WORK/agent$((H - 1)).log" ||
	wait_log "$WORK/agent$((H - 1)).log" "no traffic .*declared dead" 10 ||
	fail "agent$((H - 1)) did not notice the partition"
d1=$(snapshot)
echo "ok: both halves trained $PART+ rounds apart; cross distance $d1"
awk -v a="$d1" -v b="$d0" 'BEGIN { exit !(a > 10 * b) }' ||
	fail "cross distance did not rise during the partition: $d0 -> $d1"
drops=$(nft list chain inet faults out | sed -n 's/.*packets \([0-9]*\).*/\1/p' | paste -sd+ | bc 2>/dev/null || echo "?")

nft flush chain inet faults out
t=300
until [ "$(status_of $((H - 1)) peers_up)" = 2 ] && [ "$(status_of $((N - 1)) peers_up)" = 2 ]; do
	t=$((t - 1))
	[ "$t" -gt 0 ] || fail "the cut links did not come back after healing"
	sleep 0.1
done
ra=$(status_of $A round)
wait_round $A $((ra + 150)) 120 || fail "training stopped after healing"
d2=$(snapshot)
echo "ok: healed, sessions back; cross distance $d2 after 150 rounds"
awk -v a="$d2" -v b="$d1" 'BEGIN { exit !(a < b / 10) }' ||
	fail "cross distance did not fall after healing: $d1 -> $d2"
awk -v a="$d2" -v b="$d0" 'BEGIN { exit !(a < 5 * b) }' ||
	fail "cross distance did not fall back to its level before the partition: $d0 -> $d1 -> $d2"
echo "RESULT partition agents=$N rounds_apart=$PART dist_before=$d0 dist_partitioned=$d1 dist_healed=$d2 packets_dropped=$drops"
echo "PASS"
