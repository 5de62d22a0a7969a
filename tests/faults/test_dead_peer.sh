#!/bin/bash
# test_dead_peer.sh: what one killed agent costs its ring while it is away.
#
# A 4-agent ring with a round timeout long enough to tell waiting from not waiting (2 s) and the
# default dead-peer timeout (30 s). Measured on the killed agent's two neighbours: the mean time
# per round over a few seconds, fault-free and then with agent0 killed (kill -9). A killed
# agent's sessions close at once, and its neighbours wait for it only reconnect_grace_ms
# (default 500 ms) after that, not the round timeout every round until the dead-peer timeout.
# Expected, and measured:
#   - with agent0 killed, each neighbour's time per round stays under 3x its fault-free time
#     (waiting the round timeout every round would make it hundreds of times longer);
#   - agent0 restarted resumes from its checkpoint, its neighbours show its session up again
#     and it trains on with them (rounds advance on all four).
. "$(dirname "$0")/faults_lib.sh"

RTO=2000 WIN=5
if [ "$LONG" = 1 ]; then
	WIN=15
fi
FLEET="$WORK/fleet"
ring_edges 4 "$WORK/edges"
gen_fleet "$FLEET" 4 "$WORK/edges" --set rounds=1000000 --set checkpoint_every=50 \
	--set round_timeout_ms=$RTO --set dead_peer_timeout_ms=30000
for ((j = 0; j < 4; j++)); do
	start_agent "$j" "$FLEET/agent$j/agentd.conf"
done
for ((j = 0; j < 4; j++)); do
	wait_round "$j" 60 120 || fail "agent$j did not reach round 60"
done

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# ms_per_round J SECONDS: agent J's mean time per round over the next SECONDS (printed as an
# integer; the whole window when no round ended in it).
ms_per_round() {
	local j=$1 w=$2 r0 r1 t0 t1
	t0=$(now_ms)
	r0=$(status_of "$j" round)
	sleep "$w"
	t1=$(now_ms)
	r1=$(status_of "$j" round)
	if [ -z "$r0" ] || [ -z "$r1" ]; then
		fail "agent$j did not answer status"
	fi
	if [ "$r1" -le "$r0" ]; then
		echo $((t1 - t0))
	else
		echo $(((t1 - t0) / (r1 - r0)))
	fi
}

# session_of J PEER: agent J's session state with PEER.
session_of() {
	ctl_json "$1" peers | python3 -c 'import json,sys
p = [q for q in json.load(sys.stdin)["peers"] if q["name"] == sys.argv[1]][0]
print(p["session"])' "$2"
}

free1=$(ms_per_round 1 "$WIN")
free3=$(ms_per_round 3 "$WIN")
echo "fault-free: agent1 $free1 ms per round, agent3 $free3 ms per round"

pid=$(pid_of 0)
kill -9 "$pid" 2>/dev/null || fail "agent0 was not running"
wait_gone "$pid" 5 || fail "agent0 survived kill -9"
sleep 1
s=$(session_of 1 agent0)
[ "$s" != up ] || fail "agent1 still shows agent0's session up after kill -9"
dead1=$(ms_per_round 1 "$WIN")
dead3=$(ms_per_round 3 "$WIN")
echo "agent0 killed (agent1 shows its session $s): agent1 $dead1 ms per round, agent3 $dead3 ms" \
	"per round"
# Bounded below by 1 ms so a very fast fault-free round does not make the bound vanish.
for pair in "1 $free1 $dead1" "3 $free3 $dead3"; do
	read -r j f d <<<"$pair"
	[ "$f" -ge 1 ] || f=1
	[ "$d" -lt $((3 * f + 5)) ] ||
		fail "agent$j takes $d ms per round with agent0 killed, fault-free $f ms: over 3x"
done
echo "ok: the killed agent's neighbours keep their pace (under 3x fault-free)"

mv "$WORK/agent0.log" "$WORK/agent0-first.log"
start_agent 0 "$FLEET/agent0/agentd.conf"
wait_log "$WORK/agent0.log" "training from round" 60 || fail "agent0 did not restart"
grep -q "resumed from .*checkpoint" "$WORK/agent0.log" ||
	fail "agent0 did not resume from its checkpoint"
t=100
until [ "$(session_of 1 agent0)" = up ] && [ "$(session_of 3 agent0)" = up ]; do
	t=$((t - 1))
	[ "$t" -gt 0 ] || fail "agent0's neighbours do not show its session up after its restart"
	sleep 0.2
done
r0=$(status_of 0 round)
r1=$(status_of 1 round)
wait_round 0 $((r0 + 20)) 60 || fail "agent0 does not train on after its restart"
wait_round 1 $((r1 + 20)) 60 || fail "agent1 does not train on after agent0's restart"
back1=$(ms_per_round 1 "$WIN")
echo "ok: agent0 rejoined (round $(status_of 0 round)); agent1 $back1 ms per round with it back"
[ "$back1" -lt $((3 * free1 + 5)) ] ||
	fail "agent1 takes $back1 ms per round with agent0 back, fault-free $free1 ms"
echo "RESULT dead_peer round_timeout_ms=$RTO faultfree_ms=$free1,$free3 killed_ms=$dead1,$dead3" \
	"rejoined_ms=$back1"
echo "PASS"
