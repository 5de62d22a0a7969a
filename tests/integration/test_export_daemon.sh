#!/bin/bash
# test_export_daemon.sh: the README walk-through, through real daemons. A CSV of sensor
# readings (8 features, a 'power' target) is written; a regression model is described on one
# line; four macc-agentd on a loopback ring train it; the trained model is taken away three
# ways (`macc-ctl export` from the running daemon over the control socket, offline from its
# checkpoint, and `macc-ctl predict` straight from the daemon) and new rows are scored. Checks:
#   - every agent's test RMSE, and the exported model's, is within 10 % of what the
#     simulator's centralised run (macc-sim --algorithm centralized) reaches on the same data;
#   - the export carries the digest the daemon logged; the daemon, the ONNX file and the
#     checkpoint give the same predictions; unlabelled rows on stdin are scored;
#   - a model of more than one `model` chunk (1.1 M parameters) comes out whole, and scores
#     the 10,000 Fashion-MNIST test images identically from the daemon and from the file;
#   - bad input to predict gets an error naming the problem, and the daemon goes on.
. "$(dirname "$0")/agentd_lib.sh"
CTL=$MACC_BUILD/src/ctl/macc-ctl
[ -x "$SIM" ] || { echo "SKIP: macc-sim not built"; exit 77; }

# 1. A CSV of readings: 2500 rows, features in [0, 1), power = a smooth function + noise.
awk 'BEGIN {
	s = 20240
	print "temp,humidity,load,voltage,fan,light,vibration,hour,power"
	for (i = 0; i < 2500; i++) {
		for (k = 0; k < 8; k++) {
			s = (s * 1103515245 + 12345) % 2147483648
			x[k] = s / 2147483648
		}
		s = (s * 1103515245 + 12345) % 2147483648
		noise = (s / 2147483648 - 0.5) * 0.2
		p = 1.5 * x[2] + 0.8 * x[0] - 0.6 * x[3] + 0.5 * x[0] * x[1] + 0.3 * x[4] + noise
		printf "%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.5f\n", x[0], x[1], x[2], x[3],
			x[4], x[5], x[6], x[7], p
	}
}' >"$WORK/all.csv"
head -n 2001 "$WORK/all.csv" >"$WORK/train.csv"
{ head -n 1 "$WORK/all.csv"; sed -n '2002,2501p' "$WORK/all.csv"; } >"$WORK/test.csv"
MODEL="input:8,dense:32,relu,dense:16,relu,dense:1,loss:mse"
DATA="csv:$WORK/train.csv;$WORK/test.csv,target=power"
TRAIN=(--rounds 1000 --batch 32 --lr 0.05 --lr-schedule cosine --seed 1)

# 2. The simulator's centralised run: the reference.
"$SIM" --agents 4 --algorithm centralized --model "$MODEL" --data "$DATA" "${TRAIN[@]}" \
	--quiet >"$WORK/central.out" 2>&1 || fail "macc-sim: $(cat "$WORK/central.out")"
central=$(tail -n 1 "$WORK/central.out" | tr ' ' '\n' | sed -n 's/^test_rmse_avg=//p')
[ -n "$central" ] || fail "no test_rmse_avg from macc-sim: $(tail -n 1 "$WORK/central.out")"

# 3. Four daemons on a ring; they stay up when done, for export and predict.
dir="$WORK/fleet"
gen_ring "$dir" --set "model=$MODEL" --set "data=$DATA" --set rounds=1000 --set batch=32 \
	--set lr=0.05 --set lr_schedule=cosine --set seed=1 --set checkpoint_every=250 \
	--set round_timeout_ms=20000 --set dead_peer_timeout_ms=60000
for j in 0 1 2 3; do
	: >"$WORK/agent$j.log"
	start_agent "$j" "$dir/agent$j/agentd.conf"
done
for j in 0 1 2 3; do
	wait_log "$WORK/agent$j.log" "training done" 180 || fail "agent$j did not finish training"
done
within() { # within A B: |A - B| <= 10 % of B
	awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.1 * b) }'
}
for j in 0 1 2 3; do
	rmse=$(sed -n 's/.*training done:.* test rmse \([0-9.]*\) .*/\1/p' "$WORK/agent$j.log")
	within "$rmse" "$central" ||
		fail "agent$j: test RMSE $rmse is not within 10 % of centralized macc-sim's $central"
done
echo "test RMSE: macc-sim centralized $central; agent0 $rmse (last agent shown)"

# 4. Export from the running daemon: the digest it logged; the same predictions three ways.
S0="$dir/agent0/ctl.sock"
"$CTL" -s "$S0" export "$WORK/power.onnx" >"$WORK/export.out" 2>&1 ||
	fail "export: $(cat "$WORK/export.out")"
want=$(digest_of "$WORK/agent0.log")
grep -q "of agent0 (round 1000, digest $want," "$WORK/export.out" ||
	fail "export: want round 1000 digest $want: $(cat "$WORK/export.out")"
"$CTL" -s "$S0" predict "$WORK/test.csv" >"$WORK/p-daemon.csv" 2>"$WORK/p-daemon.err" ||
	fail "predict (daemon): $(cat "$WORK/p-daemon.err")"
"$CTL" predict "$WORK/test.csv" model "$WORK/power.onnx" >"$WORK/p-onnx.csv" \
	2>"$WORK/p-onnx.err" || fail "predict (onnx): $(cat "$WORK/p-onnx.err")"
"$CTL" predict "$WORK/test.csv" config "$dir/agent0/agentd.conf" >"$WORK/p-ckpt.csv" \
	2>"$WORK/p-ckpt.err" || fail "predict (checkpoint): $(cat "$WORK/p-ckpt.err")"
cmp -s "$WORK/p-daemon.csv" "$WORK/p-onnx.csv" && cmp -s "$WORK/p-onnx.csv" "$WORK/p-ckpt.csv" ||
	fail "daemon, ONNX and checkpoint predictions differ: $(diff "$WORK/p-daemon.csv" \
		"$WORK/p-onnx.csv" | head -n 4)"
[ "$(head -n 1 "$WORK/p-onnx.csv")" = "row,target0,value0" ] &&
	[ "$(wc -l <"$WORK/p-onnx.csv")" = 501 ] || fail "predictions: $(head -n 3 "$WORK/p-onnx.csv")"
rmse=$(sed -n 's/.*RMSE \([0-9.]*\) on the targets.*/\1/p' "$WORK/p-onnx.err")
within "$rmse" "$central" || fail "the exported model's RMSE $rmse vs centralized $central"
grep -q "digest $want" "$WORK/p-daemon.err" || fail "predict (daemon): $(cat "$WORK/p-daemon.err")"

# 5. New readings without the target, on stdin, through the daemon; JSON out.
printf 'temp,humidity,load,voltage,fan,light,vibration,hour\n0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5\n0.1,0.9,0.8,0.2,0.3,0.4,0.5,0.6\n' |
	"$CTL" -s "$S0" --json predict - >"$WORK/new.json" 2>"$WORK/new.err" ||
	fail "predict (stdin): $(cat "$WORK/new.err")"
python3 - "$WORK/new.json" <<'PY' || fail "stdin predictions: $(cat "$WORK/new.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["source"] == "daemon" and d["task"] == "regression" and d["rows"] == 2, d
assert d["rmse"] is None and all("targets" not in r for r in d["predictions"]), d
v = [r["values"][0] for r in d["predictions"]]
# power at the centre is about 1.5*0.5 + 0.8*0.5 - 0.3 + 0.125 + 0.15 = 1.125
assert abs(v[0] - 1.125) < 0.15, v
PY

# 6. Bad input: named, and the daemon still answers.
printf '1,2,3\n' | "$CTL" -s "$S0" predict - >/dev/null 2>"$WORK/bad.err" &&
	fail "3 columns for an 8-input model were accepted"
grep -q "has 3 columns; the model takes 8 inputs" "$WORK/bad.err" || fail "bad: $(cat "$WORK/bad.err")"
printf '1,2,3,4,5,6,7,nan\n' | "$CTL" -s "$S0" predict - >/dev/null 2>"$WORK/bad.err" &&
	fail "a NaN cell was accepted"
grep -q "non-numeric cell 'nan'" "$WORK/bad.err" || fail "nan: $(cat "$WORK/bad.err")"
"$CTL" -s "$S0" status >/dev/null || fail "the daemon stopped answering"

# 7. More than one chunk: a 1.1 M-parameter model, one agent of its own fleet (its neighbours
# never come: each round waits out a short timeout).
for j in 0 1 2 3; do
	pid_var="PID_$j"
	kill "${!pid_var}"
	wait_exit "${!pid_var}" 30 || fail "agent$j did not stop on SIGTERM"
done
big="$WORK/big"
"$GEN" -o "$big" -p "$((BASE_PORT + 5))" --set "model=input:784,dense:1400,relu,dense:10" \
	--set rounds=3 --set batch=16 --set round_timeout_ms=300 --set dead_peer_timeout_ms=600 \
	>/dev/null
: >"$WORK/big0.log"
"$AGENTD" -c "$big/agent0/agentd.conf" >"$WORK/big0.log" 2>&1 &
PIDS+=("$!")
wait_log "$WORK/big0.log" "training done" 120 || fail "the big model did not finish"
"$CTL" -s "$big/agent0/ctl.sock" --json export "$WORK/big.onnx" >"$WORK/big.json" ||
	fail "big export: $(cat "$WORK/big.json")"
grep -q "\"digest\":\"$(digest_of "$WORK/big0.log")\",\"nparams\":1113010" "$WORK/big.json" ||
	fail "big export: $(cat "$WORK/big.json")"
# Image rows (784 values: 320 per request) score the same from the daemon and from the file.
"$CTL" predict fashion-mnist model "$WORK/big.onnx" >"$WORK/big-onnx.csv" 2>"$WORK/big.err" ||
	fail "big predict: $(cat "$WORK/big.err")"
"$CTL" -s "$big/agent0/ctl.sock" predict fashion-mnist >"$WORK/big-daemon.csv" \
	2>"$WORK/big.err" || fail "big predict (daemon): $(cat "$WORK/big.err")"
cmp -s "$WORK/big-onnx.csv" "$WORK/big-daemon.csv" ||
	fail "10000 images: daemon and ONNX predictions differ: $(diff "$WORK/big-onnx.csv" \
		"$WORK/big-daemon.csv" | head -n 4)"
echo "PASS: daemons to ONNX, checkpoint and live predictions agree; RMSE within 10 % of centralized"
