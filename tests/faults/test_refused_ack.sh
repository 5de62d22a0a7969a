#!/bin/bash
# test_refused_ack.sh: no frame of a refused connection is ever processed.
# An allow-listed peer (the adversary holds agent2's key) answers the daemon's HELLO with, in one
# write, a HELLO announcing a round past any run and a correctly signed HELLO_ACK. The daemon
# refuses the HELLO (BYE, replay) and must then ignore the ACK behind it: before the fix it
# adopted the refused connection and crashed (SIGSEGV in adopt()). Expected, five times in each
# encrypt mode:
#   - agent0 closes the connection and stays up, training with agent1;
#   - each attempt is counted once as `replay` before identification (status
#     connections_rejected_total), nothing is charged to agent2;
#   - the same key then completes an ordinary handshake (the refusals left no trace).
. "$(dirname "$0")/faults_lib.sh"
encrypt_modes "$@"

hostile_fleet
N=5
for ((k = 1; k <= N; k++)); do
	adv "adv$k.out" --key "$FLEET/agent2/agent.key" --pre-id refused-ack
	sleep 0.3
	alive 0
	[ "$ADV_RC" = 0 ] || fail "attempt $k: the daemon did not close the connection: $(cat "$WORK/adv$k.out")"
done
echo "ok: $N refused HELLOs with a HELLO_ACK behind them: agent0 is up and closed every connection"
[ "$(connrej 0 replay)" = "$N" ] || fail "connections_rejected_total[replay] = $(connrej 0 replay), expected $N"
[ "$(peer_rej 0 agent2 replay)" = 0 ] || fail "a refusal was charged to agent2"
grep -q "\[agent2\] session up" "$WORK/agent0.log" && fail "a refused connection was adopted"
echo "ok: counted as replay before identification ($N), nothing charged to agent2, no session adopted"
r0=$(status_of 0 round)
adv echo.out --key "$FLEET/agent2/agent.key" --echo 5 --hold-ms 5000
[ "$ADV_RC" = 0 ] || fail "ordinary handshake after the refusals: $(cat "$WORK/echo.out")"
wait_log "$WORK/agent0.log" "\[agent2\] session up" 10 || fail "agent2's ordinary session not adopted"
wait_round 0 $((r0 + 20)) 60 || fail "agent0 stopped training"
alive 0
echo "ok: the key then completes an ordinary handshake; agent0 trains on"
echo "PASS"
