#!/bin/bash
# test_slow_reader.sh: every per-peer send queue is bounded in bytes.
# The adversary (agent2's key) completes a valid handshake, reads the daemon's first STATE, and
# then never reads again while it keeps sending valid STATEs (one every 40 ms, so agent0 waits
# for it and sends it one STATE per round): three such sessions in a row. Before the fix agent0
# queued its STATE for it every round without bound (RSS growing by a STATE a round) and kept
# the session up. Expected, in each encrypt mode:
#   - agent0 drops each of the three sessions once its queue passes the bound (three STATE
#     frames by default), counts `slow` for agent2 each time, and takes the next one back;
#   - agent0's resident memory stays within 8 MiB of its value before the attack (sampled
#     throughout; the 400 rounds of one session would queue ~80 MB);
#   - the round does not stall for the others: agent0 keeps training with agent1 and stops
#     waiting for agent2 once it dropped it.
. "$(dirname "$0")/faults_lib.sh"
encrypt_modes "$@"

CYCLES=3
hostile_fleet
pid0=$(pid_of 0)
rss0=$(rss_kb "$pid0")
r0=$(status_of 0 round)
"$ADVERSARY" --connect "127.0.0.1:$BASE_PORT" --key "$FLEET/agent2/agent.key" --no-read 40 \
	--cycles "$CYCLES" --rounds 400 >"$WORK/adv.out" 2>&1 &
ADV=$!
PIDS+=("$ADV")
peak=$rss0
n=0
while kill -0 "$ADV" 2>/dev/null && [ "$n" -lt 900 ]; do
	r=$(rss_kb "$pid0")
	[ "$r" -gt "$peak" ] && peak=$r
	n=$((n + 1))
	sleep 0.2
done
wait_exit "$ADV" 10 || fail "adversary did not finish"
[ "$EXIT_RC" = 0 ] || fail "adversary failed ($EXIT_RC): $(cat "$WORK/adv.out")"
alive 0
growth=$((peak - rss0))
echo "RESULT slow_reader encrypt=$ENCRYPT rss_start_kB=$rss0 rss_peak_kB=$peak growth_kB=$growth"
dropped=$(sed -n 's/^sent slow_dropped //p' "$WORK/adv.out")
grep '^cycle' "$WORK/adv.out"
[ "$dropped" = "$CYCLES" ] || fail "agent0 dropped $dropped of $CYCLES non-reading sessions"
slow=$(peer_rej 0 agent2 slow)
[ "$slow" = "$CYCLES" ] || fail "rejected[slow] for agent2 = $slow, expected $CYCLES"
echo "ok: all $CYCLES non-reading sessions dropped and counted (slow = $slow)"
if grep -q libasan "/proc/$pid0/maps" 2>/dev/null; then
	echo "note: AddressSanitizer build (run it with ASAN_OPTIONS=quarantine_size_mb=0)"
fi
[ "$growth" -le 8192 ] || fail "agent0's RSS grew by $growth kB (from $rss0 kB to a peak of $peak kB)"
echo "ok: agent0's resident memory peaked $growth kB above its start"
wait_round 0 $((r0 + 200)) 30 || fail "agent0 stalled"
finite_status 0
echo "ok: agent0 trained on with agent1 (round $(status_of 0 round))"
echo "PASS"
