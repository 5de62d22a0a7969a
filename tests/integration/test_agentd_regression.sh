#!/bin/bash
# test_agentd_regression.sh: a regression model written as a layer stack in a model file, on a
# CSV with named target columns and a validation split, trained by four macc-agentd on a
# loopback ring, ends with parameters bit-identical to `macc-sim --agents 4` with the same
# settings (targets travel through the batcher, the MSE loss and the RMSE evaluation alike in
# both); both say that the test figures come from the validation split. A classifier on the
# same data, and a model with the wrong number of outputs, are refused at start with a message
# that names the model and the data.
. "$(dirname "$0")/agentd_lib.sh"
[ -x "$SIM" ] || { echo "SKIP: macc-sim not built"; exit 77; }

# 600 rows, 5 features and two targets that depend on them (deterministic LCG).
awk 'BEGIN {
	s = 4242
	print "f1,f2,f3,f4,f5,power,temp"
	for (i = 0; i < 600; i++) {
		line = ""
		for (k = 0; k < 5; k++) {
			s = (s * 1103515245 + 12345) % 2147483648
			x[k] = s / 2147483648
			line = line sprintf("%.5f,", x[k])
		}
		printf "%s%.5f,%.5f\n", line, x[0] + x[1] * x[2], x[3] - 0.5 * x[4]
	}
}' >"$WORK/readings.csv"
printf '# regression: 5 features in, 2 targets out\ninput:5\ndense:16, gelu\ndense:2\nloss:mse\n' \
	>"$WORK/model.txt"
MODEL="@$WORK/model.txt"
DATA="csv:$WORK/readings.csv,target=power:temp,val=0.25:3"
R=30

dir="$WORK/fleet"
gen_ring "$dir" --set "model=$MODEL" --set "data=$DATA" --set rounds="$R" --set batch=16 \
	--set lr=0.05 --set seed=5 --set round_timeout_ms=20000 --set dead_peer_timeout_ms=60000
run_four regression "$dir" 120
# CSV data: both standardise (standardize = auto), the daemons by the agreement over STATS.
"$SIM" --agents 4 --topology ring --model "$MODEL" --data "$DATA" --rounds "$R" --batch 16 \
	--lr 0.05 --momentum 0.9 --seed 5 --print-digest >"$WORK/sim.out" \
	2>"$WORK/sim.err" ||
	fail "macc-sim failed: $(cat "$WORK/sim.out" "$WORK/sim.err")"
grep -q "test figures (RMSE) on validation split: 150 of 600 rows" "$WORK/sim.err" ||
	fail "macc-sim does not say where its test figures come from: $(cat "$WORK/sim.err")"
grep -q "test_rmse_avg=" "$WORK/sim.out" || fail "no test_rmse_avg in: $(tail -n 2 "$WORK/sim.out")"
for j in 0 1 2 3; do
	want=$(sed -n "s/^agent=$j digest=\([0-9a-f]*\)$/\1/p" "$WORK/sim.out")
	got=$(digest_of "$WORK/agent$j.log")
	if [ -z "$want" ] || [ "$got" != "$want" ]; then
		fail "agent$j: digest '$got', macc-sim '$want'"
	fi
	grep -q "test figures (rmse) on validation split: 150 of 600 rows" "$WORK/agent$j.log" ||
		fail "agent$j does not log where its test figures come from"
	grep -Eq "training done: .* test rmse [0-9.]+ " "$WORK/agent$j.log" ||
		fail "agent$j: no test rmse in: $(grep 'training done' "$WORK/agent$j.log")"
done

# Mismatches are refused at start, naming both sides.
bad_start() {
	local name=$1 model=$2 want=$3 conf="$WORK/$1.conf"
	sed "s|^model = .*|model = $model|" "$dir/agent0/agentd.conf" >"$conf"
	: >"$WORK/$name.log"
	"$AGENTD" -c "$conf" >"$WORK/$name.log" 2>&1 &
	PIDS+=("$!")
	wait_exit "$!" 30 || fail "$name: the agent did not exit"
	[ "$EXIT_RC" != 0 ] || fail "$name: the agent started"
	grep -qF "$want" "$WORK/$name.log" || fail "$name: want '$want' in: $(cat "$WORK/$name.log")"
}
bad_start classifier "input:5,dense:16,relu,dense:2" \
	"is a classifier (softmax cross-entropy) but data '$DATA' has 2 regression targets"
bad_start outputs "input:5,dense:3,loss:mse" "has 3 outputs but data '$DATA' has 2 regression"
bad_start inputs "input:6,dense:2,loss:mse" "takes 6 inputs per sample but data '$DATA' has 5"
"$SIM" --agents 1 --model "input:5,dense:2" --data "$DATA" --rounds 1 >"$WORK/mis.out" 2>&1 &&
	fail "macc-sim accepted a classifier on regression data"
grep -q "is a classifier" "$WORK/mis.out" || fail "macc-sim: $(cat "$WORK/mis.out")"
echo "PASS: regression ring bit-identical to macc-sim; mismatches refused"
