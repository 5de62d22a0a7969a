#!/bin/bash
# test_duplicate.sh: a STATE sent on a session that then loses the duplicate-session choice is
# still read and mixed, not dropped.
#
# Two daemons that dial each other at once get two sessions and keep one; the other is retired
# with a BYE. A peer may have sent its round-k STATE on the retired one before it saw that BYE,
# and then move on: its HELLO on the kept session already says round k+1, so the daemon would
# stop waiting for it and fold it out of round k, and the macc-sim bit-identity (test
# agentd_sim) broke a few times in a hundred runs. Here the adversary client (--duplicate) makes
# that race happen every time: session A, then session B claiming round k+1, then -- after the
# daemon's BYE on A -- its round-k STATE on A. Expected, and measured:
#   - agent0 reads the round-k STATE from the retired session (debug log line) and does not
#     fold agent2 out of round k;
#   - the session B carries the following rounds; agent0 keeps training.
# Plain and sealed sessions (encrypt = no / yes).
. "$(dirname "$0")/faults_lib.sh"
encrypt_modes "$@"

ROUNDS=10
FLEET="$WORK/fleet"
printf '0 1\n0 2\n' >"$WORK/edges"
gen_fleet "$FLEET" 3 "$WORK/edges" --set rounds=1000000 --set round_timeout_ms=3000 \
	--set dead_peer_timeout_ms=3000 --set checkpoint_every=0 --agent-set "encrypt=$ENCRYPT"
start_agent 0 "$FLEET/agent0/agentd.conf" -l debug
start_agent 1 "$FLEET/agent1/agentd.conf"
wait_log "$WORK/agent0.log" "\[agent1\] session up" 60 || fail "agent0 and agent1 did not connect"
wait_round 0 5 60 || fail "agent0 did not reach round 5"

"$ADVERSARY" --key "$FLEET/agent2/agent.key" --connect "127.0.0.1:$BASE_PORT" \
	--duplicate --rounds "$ROUNDS" >"$WORK/adv.out" 2>&1 &
ADV=$!
PIDS+=("$ADV")
wait_exit "$ADV" 90 || fail "adversary did not finish: $(cat "$WORK/adv.out")"
[ "$EXIT_RC" = 0 ] || fail "adversary failed ($EXIT_RC): $(cat "$WORK/adv.out")"
k=$(sed -n 's/^duplicate round \([0-9]*\)$/\1/p' "$WORK/adv.out")
[ -n "$k" ] || fail "adversary did not report its round: $(cat "$WORK/adv.out")"
grep -q "^sent retired-state 1$" "$WORK/adv.out" || fail "no state sent on the retired session"
echo "ok: agent2's round-$k STATE sent on session A after agent0 retired it"

grep -q "\[agent2\] STATE for round $k read from a retired duplicate session" \
	"$WORK/agent0.log" || fail "agent0 did not read round $k from the retired session"
if grep -Eq "\[agent2\] state for round $k (missing|never arrived)" "$WORK/agent0.log"; then
	fail "agent0 folded agent2 out of round $k"
fi
echo "ok: agent0 read it from the retired session and mixed it (not folded)"
r=$(status_of 0 round)
[ "${r:-0}" -gt $((k + ROUNDS)) ] || fail "agent0 at round ${r:-?}, expected past $((k + ROUNDS))"
echo "ok: agent0 trained on to round $r over the kept session"
echo "PASS"
