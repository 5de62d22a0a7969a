#!/bin/bash
# test_agentd_standardize.sh: feature standardisation agreed by real macc-agentd (STATS over
# loopback, macc-agentd(8) STANDARDISATION), on a generated CSV whose column 0 is around 20 and
# whose other seven columns (around 0.01) carry the class:
#   - a ring of 4 agrees before round 0: every daemon logs the transform digest macc-sim
#     prints for the same settings, and ends with macc-sim's parameters bit for bit; the same
#     ring without standardisation stays near chance, with it it learns (accuracies printed);
#   - a daemon restarted from its checkpoint takes the transform from there (no agreement, no
#     STATS sent, same digest);
#   - a neighbour with standardize = no is refused at the handshake, naming the setting;
#   - a fresh daemon that joins after the others agreed adopts their transform.
# Every wait is bounded.
. "$(dirname "$0")/agentd_lib.sh"
# shellcheck source-path=SCRIPTDIR source=sensor_csv.sh
. "$(dirname "$0")/sensor_csv.sh"
[ -x "$SIM" ] || { echo "SKIP: macc-sim not built"; exit 77; }

sensor_csv "$WORK"
DATA="csv:$WORK/train.csv;$WORK/test.csv"
R=80
SETS=(--set model=mlp:8-16-3 --set "data=$DATA" --set rounds="$R" --set batch=32 --set seed=3 --set lr=0.05
	--set round_timeout_ms=20000 --set dead_peer_timeout_ms=60000)

# acc_of LOG: the test accuracy of the "training done" line.
acc_of() {
	sed -n 's/.*training done:.* test accuracy \([0-9.]*\) .*/\1/p' "$1" | tail -n 1
}
# tdigest_of LOG: the transform digest the daemon logged.
tdigest_of() {
	sed -n 's/.*standardisation .*transform digest \([0-9a-f]*\).*/\1/p' "$1" | tail -n 1
}

# 1. Raw, then standardised: the same ring.
gen_ring "$WORK/raw" "${SETS[@]}" --set standardize=no
run_four raw "$WORK/raw" 120
raw=$(acc_of "$WORK/agent0.log")
! grep -q standardisation "$WORK/agent0.log" || fail "standardize = no agreed anyway"
gen_ring "$WORK/std" "${SETS[@]}"
run_four std "$WORK/std" 120
"$SIM" --agents 4 --topology ring --model mlp:8-16-3 --data "$DATA" --rounds "$R" --batch 32 \
	--lr 0.05 --momentum 0.9 --seed 3 --print-digest >"$WORK/sim.out" 2>"$WORK/sim.err" ||
	fail "macc-sim failed: $(cat "$WORK/sim.out" "$WORK/sim.err")"
want=$(sed -n 's/.* standardize_digest=\([0-9a-f]*\).*/\1/p' "$WORK/sim.out")
[ -n "$want" ] || fail "macc-sim printed no standardize_digest: $(tail -n 1 "$WORK/sim.out")"
for j in 0 1 2 3; do
	log="$WORK/agent$j.log"
	grep -q "standardisation agreed after 50 + 3 steps (0 refused)" "$log" ||
		fail "agent$j: no agreement line"
	[ "$(tdigest_of "$log")" = "$want" ] ||
		fail "agent$j: transform digest '$(tdigest_of "$log")', macc-sim '$want'"
	pd=$(sed -n "s/^agent=$j digest=\([0-9a-f]*\)$/\1/p" "$WORK/sim.out")
	[ "$(digest_of "$log")" = "$pd" ] || fail "agent$j: digest '$(digest_of "$log")', sim '$pd'"
done
std=$(acc_of "$WORK/agent0.log")
echo "test accuracy of agent0: raw $raw, standardised $std; transform digest $want"
awk -v r="$raw" -v s="$std" 'BEGIN { exit !(r < 0.5 && s >= 0.8) }' ||
	fail "accuracy raw $raw (want < 0.5), standardised $std (want >= 0.8)"

# 2. Restart from the checkpoint: the transform comes from there.
cp "$WORK/agent0.log" "$WORK/first0.txt"
: >"$WORK/agent0.log"
start_agent 0 "$WORK/std/agent0/agentd.conf" --exit-when-done
wait_exit "$PID_0" 60 || fail "restarted agent0 did not exit"
grep -q "standardisation from the checkpoint (no agreement), transform digest $want" \
	"$WORK/agent0.log" || fail "restart: the transform did not come from the checkpoint"
! grep -q "agreeing on" "$WORK/agent0.log" || fail "restart: agreed again"

# 3. A neighbour that does not standardise is refused at the handshake; a late joiner adopts.
# Short timeouts: agents 1-3 agree without agent 0 (folded, then left out as dead).
gen_ring "$WORK/late" "${SETS[@]}" --set rounds=100000 --set round_timeout_ms=300 \
	--set dead_peer_timeout_ms=1500 --set standardize_rounds=5
sed -e 's/^\[train\]$/[train]\nstandardize = no/' -e "s|^state_dir = .*|state_dir = $WORK/nostate|" \
	-e "s|^control_socket = .*|control_socket = $WORK/no.sock|" "$WORK/late/agent0/agentd.conf" \
	>"$WORK/no.conf"
for j in 1 2 3; do
	: >"$WORK/agent$j.log"
	start_agent "$j" "$WORK/late/agent$j/agentd.conf"
done
: >"$WORK/agent0.log"
start_agent 0 "$WORK/no.conf"
wait_log "$WORK/agent1.log" "every agent of a fleet must have the same standardize" 30 ||
	fail "agent1 did not refuse a neighbour with standardize = no"
grep -q "rejected (config)" "$WORK/agent1.log" || fail "the refusal is not counted as config"
kill "$PID_0"
wait_exit "$PID_0" 30 || fail "agent0 (standardize = no) did not stop"
wait_log "$WORK/agent1.log" "standardisation agreed after 5 \+ 3 steps" 60 ||
	fail "agents 1-3 did not agree without agent 0"
agreed=$(tdigest_of "$WORK/agent1.log")
: >"$WORK/agent0.log"
start_agent 0 "$WORK/late/agent0/agentd.conf"
wait_log "$WORK/agent0.log" "standardisation adopted from" 60 || fail "agent0 did not adopt"
[ "$(tdigest_of "$WORK/agent0.log")" = "$agreed" ] ||
	fail "adopted digest $(tdigest_of "$WORK/agent0.log"), fleet $agreed"
for j in 0 1 2 3; do
	pid_var="PID_$j"
	kill "${!pid_var}"
	wait_exit "${!pid_var}" 30 || fail "agent$j did not stop"
done
echo "PASS: agreed transform equal to macc-sim's, restart from checkpoint, refusal, late joiner"
