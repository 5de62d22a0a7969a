#!/bin/bash
# test_loss.sh: 5% packet loss and packet reordering on every link of a ring, in a private
# network namespace (root, nft, tc).
# Loss: netem is not in this kernel (CONFIG_NET_SCH_NETEM unset), so nftables drops 5% of the
# TCP packets at random (numgen random). Every link has an address of its own, 127.1.0.L: both
# agents of link L name each other at 127.1.0.L (they listen on 0.0.0.0), so whichever dials,
# the link's packets carry 127.1.0.L as destination one way and as source the other way, and
# two counting rules per link (to and from 127.1.0.L) prove that both directions of EVERY link
# lost packets.
# Reordering: netem's reorder is not available either; instead an HTB qdisc on the loopback
# sends the TCP segments whose sequence number has bits 8-10 clear (about 1 in 8, by payload
# offset, so pseudo-random) through a 20 Mbit/s class and all others through a 10 Gbit/s one:
# the slow class's segments are overtaken by later ones, the receiver gets them out of order
# (counted by the kernel: TcpExt TCPOFOQueue of the namespace) and TCP puts the bytes back in
# order. Inside a session the daemon reads one ordered byte stream, so this is all the
# reordering a TCP transport can show it; old frames replayed across sessions are the replay
# case of test_adversary.sh.
# Short form: 4 agents, 600 rounds; long form: 8 agents, 1500 rounds. Expected, and measured:
# training completes on every agent (exit 0, "training done"), packets were dropped in both
# directions of every link (nft counters) and segments arrived out of order (TCPOFOQueue), and
# the mean accuracy stays within 2 points of the loss-free run (macc-sim).
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
command -v tc >/dev/null || { echo "SKIP: no tc (deploy/install-deps.sh: iproute2)"; exit 77; }
# Link L (line L of the edge list, from 1) between I and J: each names the other at 127.1.0.L.
for ((i = 0; i < N; i++)); do
	sed -i 's/^listen = 127\.0\.0\.1:/listen = 0.0.0.0:/' "$FLEET/agent$i/agentd.conf"
done
nft add table inet faults
nft add chain inet faults out '{ type filter hook output priority 0; }'
L=0
while read -r a b; do
	L=$((L + 1))
	sed -i "s/^endpoint = 127\.0\.0\.1:$((BASE_PORT + b))\$/endpoint = 127.1.0.$L:$((BASE_PORT + b))/" \
		"$FLEET/agent$a/agentd.conf"
	sed -i "s/^endpoint = 127\.0\.0\.1:$((BASE_PORT + a))\$/endpoint = 127.1.0.$L:$((BASE_PORT + a))/" \
		"$FLEET/agent$b/agentd.conf"
	nft add rule inet faults out ip daddr "127.1.0.$L" meta l4proto tcp numgen random mod 100 '<' 5 \
		counter drop comment "\"to $L\""
	nft add rule inet faults out ip saddr "127.1.0.$L" meta l4proto tcp numgen random mod 100 '<' 5 \
		counter drop comment "\"from $L\""
done <"$WORK/edges"
! grep -q "^endpoint = 127\.0\.0\.1" "$FLEET"/agent*/agentd.conf || fail "a peer endpoint kept 127.0.0.1"
tc qdisc add dev lo root handle 1: htb default 10 2>/dev/null ||
	{ echo "SKIP: no HTB qdisc in this kernel"; exit 77; }
tc class add dev lo parent 1: classid 1:10 htb rate 10gbit 2>/dev/null
tc class add dev lo parent 1: classid 1:20 htb rate 20mbit 2>/dev/null
tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip protocol 6 0xff \
	match u32 0 0x700 at 24 flowid 1:20 || fail "cannot install the reordering filter"
# tcp_ofo: the namespace's count of TCP segments received out of order.
tcp_ofo() {
	awk '$1 == "TcpExt:" { if (!h) { for (i = 2; i <= NF; i++) col[$i] = i; h = 1 }
		else { print $col["TCPOFOQueue"] } }' /proc/net/netstat
}
ofo0=$(tcp_ofo)
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
drops=0
for ((l = 1; l <= L; l++)); do
	for dir in to from; do
		d=$(nft list chain inet faults out |
			sed -n "s/.*packets \([0-9]*\) .*comment \"$dir $l\".*/\1/p")
		[ "${d:-0}" -gt 0 ] || fail "no packet dropped $dir link $l (127.1.0.$l)"
		drops=$((drops + d))
	done
done
ofo=$(($(tcp_ofo) - ofo0))
[ "$ofo" -gt 0 ] || fail "no TCP segment arrived out of order: the reordering did not work"
slowed=$(tc -s class show dev lo classid 1:20 | sed -n 's/.* Sent [0-9]* bytes \([0-9]*\) pkt.*/\1/p')
echo "ok: packets dropped in both directions of all $L links ($drops in all); $ofo segments out of order ($slowed held back)"
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
echo "ok: $N agents completed $R rounds under 5% loss and reordering in $((t1 - t0)) s; $missed neighbour states timed out; mean accuracy $mean (loss-free $simmean)"
echo "RESULT loss agents=$N rounds=$R seconds=$((t1 - t0)) links=$L packets_dropped=$drops segments_out_of_order=$ofo timeouts=$missed mean_acc=$mean lossfree_acc=$simmean"
echo "PASS"
