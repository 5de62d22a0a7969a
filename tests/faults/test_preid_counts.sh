#!/bin/bash
# test_preid_counts.sh: connections refused before the peer is identified are
# counted by reason, and a failed proof is never charged to the key it claimed.
# agent0 (defaults: handshake_timeout_ms = 10000, max_unauthenticated = 32) trains with agent1;
# the adversary then makes, one connection each: a HELLO with a key not in the allow-list, a HELLO of
# protocol version 99, a frame of garbage, a frame header announcing 1 MiB, a silent connection,
# a STATE before its proof (agent2's key), a HELLO claiming agent1's key with a proof it cannot
# make, a HELLO past the run's end; then 40 silent connections at once, held for 3 s. Before
# the fix these
# were logged but counted nowhere (or as too_big), and the false claim of agent1's key was
# counted on agent1. Expected: `status` connections_rejected_total and the metric
# macc_connections_rejected_total{reason=...} (every reason listed, 0 included) show exactly
#   unknown_key 1, version 1, malformed 2, timeout 1, flood 8, unproven_state 1,
#   bad_proof 1, replay 1, rate_limited 0, other 0;
# agent1 has no
# rejection at all; agent0 trains on. Both encrypt modes.
. "$(dirname "$0")/faults_lib.sh"
encrypt_modes "$@"

hostile_fleet
"$CTL" genkey >"$WORK/stranger.key"
chmod 600 "$WORK/stranger.key"
adv unknown.out --key "$WORK/stranger.key" --rounds 0 --flood-ms 0
[ "$ADV_RC" = 1 ] || fail "the unknown key was not refused: $(cat "$WORK/unknown.out")"
for attack in version garbage oversize silent state-first \
	"claim:$(cat "$FLEET/agent1/agent.pub")"; do
	adv preid.out --key "$FLEET/agent2/agent.key" --pre-id "$attack"
	[ "$ADV_RC" = 0 ] || fail "pre-id '$attack': $(cat "$WORK/preid.out")"
	alive 0
done
adv flood.out --key "$FLEET/agent2/agent.key" --flood 40 --hold-ms 3000
[ "$ADV_RC" = 0 ] || fail "connection flood: $(cat "$WORK/flood.out")"
cat "$WORK/flood.out"
sleep 1
ctl_json 0 peers | python3 -c 'import json,sys
for p in json.load(sys.stdin)["peers"]:
    charged = {k: v for k, v in p["messages_rejected_total"].items() if v}
    if p["name"] == "agent1" and charged:
        sys.exit("agent1 charged with %r" % charged)' || fail "a refusal was charged to agent1"
echo "ok: nothing charged to agent1, whose key a HELLO claimed without its proof"
# Last, the HELLO past the run's end with a proof behind it (test_refused_ack.sh).
adv preid.out --key "$FLEET/agent2/agent.key" --pre-id refused-ack
[ "$ADV_RC" = 0 ] || fail "pre-id 'refused-ack': $(cat "$WORK/preid.out")"
alive 0
sleep 1
declare -A want=([unknown_key]=1 [version]=1 [malformed]=2 [timeout]=1 [flood]=8
	[unproven_state]=1 [bad_proof]=1 [replay]=1 [rate_limited]=0 [other]=0)
ctl_json 0 status >"$WORK/status.json"
"$CTL" -s "$FLEET/agent0/ctl.sock" metrics >"$WORK/metrics.txt"
for reason in "${!want[@]}"; do
	have=$(python3 -c 'import json,sys
print(json.load(open(sys.argv[1]))["connections_rejected_total"].get(sys.argv[2], "missing"))' \
		"$WORK/status.json" "$reason")
	m=$(awk -v n="macc_connections_rejected_total{reason=\"$reason\"}" '$1 == n { print $2 }' \
		"$WORK/metrics.txt")
	[ "$have" = "${want[$reason]}" ] ||
		fail "connections_rejected_total[$reason] = $have, expected ${want[$reason]}"
	[ "$m" = "$have" ] || fail "metric for $reason is '$m', status says $have"
	printf 'ok: %-15s %s\n' "$reason" "$have"
done
"$CTL" -s "$FLEET/agent0/ctl.sock" status | grep -E '^refused:' || fail "status does not show the refusals"
r0=$(status_of 0 round)
wait_round 0 $((r0 + 20)) 30 || fail "agent0 stopped training"
echo "ok: agent0 trains on"
echo "PASS"
