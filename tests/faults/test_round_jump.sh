#!/bin/bash
# test_round_jump.sh: one neighbour's word never advances the round.
# agent0 trains with agent1 (honest; agent0 is its only neighbour) and agent2, whose key the
# adversary holds. The adversary claims (A) in its HELLO the round end - 2 of the run, then (B) in
# one correctly signed STATE the round 100000 ahead. Before the fix agent0 "rejoined" there and
# agent1 followed: both reported done within seconds. Expected: with a quorum of 2 of agent0's
# 2 neighbours needed for a jump, neither agent jumps (macc_round_jumps_total stays 0, the
# refusals are counted in macc_round_jumps_refused_total and logged), both keep training at
# their own pace. The honest rejoin after a restart is exercised by test_crash.sh, test_slow_peer.sh
# and test_power_cut.sh, which must pass unchanged. Both encrypt modes.
. "$(dirname "$0")/faults_lib.sh"
encrypt_modes "$@"

END=1000000
hostile_fleet
check_no_jump() {
	local what=$1 j st r
	for j in 0 1; do
		alive "$j"
		st=$(status_of "$j" state)
		r=$(status_of "$j" round)
		[ "$st" = training ] || fail "$what: agent$j is '$st' at round $r"
		[ "$r" -lt 50000 ] || fail "$what: agent$j jumped to round $r"
	done
	[ "$(metric 0 macc_round_jumps_total)" = 0 ] || fail "$what: agent0 counts a jump"
}
r0=$(status_of 0 round)
adv hello.out --key "$FLEET/agent2/agent.key" --hello-round $((END - 2)) --echo 100000 \
	--hold-ms 6000
[ "$ADV_RC" = 0 ] || fail "adversary (HELLO round): $(cat "$WORK/hello.out")"
grep -q "\[agent2\] session up .*peer at round $((END - 2))" "$WORK/agent0.log" ||
	fail "agent0 never had a session with the lying HELLO"
check_no_jump "HELLO round $((END - 2))"
wait_round 0 $((r0 + 30)) 30 || fail "agent0 stopped training"
refused=$(metric 0 macc_round_jumps_refused_total)
[ "${refused:-0}" -gt 0 ] || fail "no refused jump counted"
grep -q "no jump (no_quorum)" "$WORK/agent0.log" || fail "the refused jump was not logged"
echo "ok: a HELLO announcing round $((END - 2)): no jump, agent0 at $(status_of 0 round), agent1 at $(status_of 1 round), $refused refusals counted"

r0=$(status_of 0 round)
adv far.out --key "$FLEET/agent2/agent.key" --far-state 100000 --echo 100000 --hold-ms 6000
[ "$ADV_RC" = 0 ] || fail "adversary (far STATE): $(cat "$WORK/far.out")"
grep -q "^sent far-state" "$WORK/far.out" || fail "the far STATE was not sent: $(cat "$WORK/far.out")"
check_no_jump "a STATE 100000 rounds ahead"
wait_round 0 $((r0 + 30)) 30 || fail "agent0 stopped training"
wait_round 1 $((r0 + 30)) 30 || fail "agent1 stopped training"
echo "ok: a STATE for round $(sed -n 's/^sent far-state //p' "$WORK/far.out"): no jump, agent0 at $(status_of 0 round), agent1 at $(status_of 1 round)"
echo "PASS"
