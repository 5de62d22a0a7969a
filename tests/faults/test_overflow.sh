#!/bin/bash
# test_overflow.sh: finite poison cannot turn the fleet to NaN.
# (A) The adversary (agent2's key) answers each of agent0's rounds with a correctly signed STATE
#     whose every value is 1e30: finite, so it passed the finiteness check, and before the fix it
#     overflowed agent0's parameters to NaN under aggregation = mean, silently. Expected: every
#     such STATE is refused and counted as `out_of_range` (state_value_max, default 1e6); agent0
#     and agent1 stay finite and keep training.
# (B) The second line of defence: agent0 restarted with state_value_max = 1e38 (the bound is the
#     operator's to raise; agent1 keeps the default), a checkpoint taken by `macc-ctl
#     checkpoint` (checkpoint_every = 0, so it stays the last good one), then poisoned with 1e37
#     for 5 rounds: its own parameters overflow. Expected: agent0 never sends a non-finite state
#     (agent1 counts no `nonfinite` from it; the huge finite state it mixed before its next
#     gradient overflowed is refused by agent1 as out_of_range), never writes one to a
#     checkpoint (every checkpoint file loads and is finite), rolls back to that checkpoint,
#     says so at error level, shows `degraded` and last_error in status and macc_degraded 1 in
#     metrics, trains on with agent1, and leaves `degraded` at the next checkpoint. Both
#     encrypt modes.
. "$(dirname "$0")/faults_lib.sh"
encrypt_modes "$@"

hostile_fleet
N=40
adv poison.out --key "$FLEET/agent2/agent.key" --rounds "$N" --poison fill:1e30
[ "$ADV_RC" = 0 ] || fail "adversary: $(cat "$WORK/poison.out")"
alive 0
r0=$(status_of 0 round)
wait_round 0 $((r0 + 80)) 30 || fail "agent0 stopped training"
finite_status 0
finite_status 1
oor=$(peer_rej 0 agent2 out_of_range)
[ "$oor" = "$N" ] || fail "rejected[out_of_range] for agent2 = $oor, expected $N"
"$CTL" -s "$FLEET/agent0/ctl.sock" checkpoint >/dev/null || fail "checkpoint refused"
wait_log "$WORK/agent0.log" "checkpoint" 1 || true
sleep 1
"$CKPT_CHECK" "$FLEET/agent0/state/checkpoint.bin" >/dev/null || fail "agent0's checkpoint is not finite"
[ "$(status_of 0 degraded)" = False ] || fail "agent0 degraded without cause"
echo "ok: $N STATEs of 1e30 refused as out_of_range; agent0 and agent1 finite, training, not degraded"

# (B): restart both, agent0 with the bound raised.
for j in 0 1; do
	kill -TERM "$(pid_of "$j")"
	wait_exit "$(pid_of "$j")" 30 || fail "agent$j did not stop"
done
hostile_conf
sed -i 's/^\[train\]$/[train]\nstate_value_max = 1e38/' "$FLEET/agent0/agentd.conf"
grep -q '^state_value_max = 1e38' "$FLEET/agent0/agentd.conf" || fail "cannot raise agent0's bound"
for j in 0 1; do
	: >"$WORK/agent$j.log"
	start_agent "$j" "$FLEET/agent$j/agentd.conf"
done
wait_log "$WORK/agent0.log" "\[agent1\] session up" 60 || fail "agent0 and agent1 did not reconnect"
r0=$(status_of 0 round)
wait_round 0 $((r0 + 45)) 60 || fail "agent0 did not train after the restart"
"$CTL" -s "$FLEET/agent0/ctl.sock" checkpoint >/dev/null || fail "checkpoint refused"
sleep 1
adv poison2.out --key "$FLEET/agent2/agent.key" --rounds 5 --poison fill:1e37
[ "$ADV_RC" = 0 ] || fail "adversary (1e37): $(cat "$WORK/poison2.out")"
wait_log "$WORK/agent0.log" "^error: .*own parameters became non-finite or absurd; not sent, rolled back to the checkpoint of round" 20 ||
	fail "agent0 did not roll back"
grep -m1 "own parameters became non-finite or absurd" "$WORK/agent0.log"
[ "$(status_of 0 degraded)" = True ] || fail "status does not say degraded"
[ "$(metric 0 macc_degraded)" = 1 ] || fail "metrics do not say degraded"
ctl_json 0 status >"$WORK/st.json"
python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
assert d["rollbacks_total"] >= 1, d
assert "non-finite" in d["last_error"], d["last_error"]' "$WORK/st.json" ||
	fail "status does not show the rollback: $(cat "$WORK/st.json")"
[ "$(peer_rej 1 agent0 nonfinite)" = 0 ] || fail "agent0 sent a non-finite state to agent1"
nck=$(check_all_ckpts "$FLEET/agent0")
echo "ok: agent0's parameters overflowed: rolled back ($(metric 0 macc_rollbacks_total) rollbacks, to the checkpoint of round $(sed -n 's/.*rolled back to the checkpoint of round \([0-9]*\).*/\1/p' "$WORK/agent0.log" | head -n 1), taken before the poison), degraded; nothing non-finite sent (agent1 refused $(peer_rej 1 agent0 out_of_range) out-of-range states of agent0, none non-finite), $nck checkpoint files finite"
# The poison is over: agent0 trains on with agent1, and leaves degraded at its next checkpoint
# (checkpoint_every = 0 here: the operator's).
r1=$(status_of 0 round)
# Past the next progress line (the train loss shown is the mean since the last one).
wait_round 0 $((r1 + 80)) 30 || fail "agent0 stopped training after the rollback"
[ "$(status_of 0 degraded)" = True ] || fail "agent0 left degraded without a checkpoint"
"$CTL" -s "$FLEET/agent0/ctl.sock" checkpoint >/dev/null || fail "checkpoint refused"
wait_log "$WORK/agent0.log" "no longer degraded" 20 || fail "agent0 stayed degraded"
[ "$(status_of 0 degraded)" = False ] || fail "status still degraded"
[ "$(metric 0 macc_degraded)" = 0 ] || fail "metrics still degraded"
finite_status 0
finite_status 1
check_all_ckpts "$FLEET/agent0" >/dev/null
echo "ok: agent0 trained on and left degraded at its next checkpoint (round $(status_of 0 round))"
echo "PASS"
