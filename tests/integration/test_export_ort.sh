#!/bin/bash
# test_export_ort.sh: what macc exports is a valid ONNX model that ONNX Runtime runs to macc's
# predictions. Three models trained by macc-sim (an MLP and a custom CNN on Fashion-MNIST, a
# regression model on a generated CSV) and two made with a standardiser (onnx_fixture: an image
# model and a regression model) are exported; each passes onnx.checker, and on every test row
# ONNX Runtime (onnxruntime-node) gives the same class as `macc-ctl predict` and outputs within
# 1e-4 (onnx_compare.py). The reader refuses a file that is not macc's, and macc-sim's average
# model exported as ONNX scores what macc-sim reported for it.
set -uo pipefail
. "$(dirname "$0")/test_sim_lib.sh"
. "$(dirname "$0")/ort_lib.sh"
CTL=$MACC_BUILD/src/ctl/macc-ctl
FIXTURE=$MACC_BUILD/tests/integration/onnx_fixture
need_data
ort_setup
FM=${MACC_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
IMAGES=$FM/t10k-images-idx3-ubyte.gz
[ -r "$IMAGES" ] || IMAGES=$FM/t10k-images-idx3-ubyte

# predict NAME MODEL DATA: macc's predictions as JSON into $TMP/NAME.json
predict() {
	timeout 120 "$CTL" --json predict "$3" model "$2" >"$TMP/$1.json" 2>"$TMP/$1.err" ||
		fail "$1: macc-ctl predict: $(cat "$TMP/$1.err")"
}

# 1. An MLP: four agents, the average model.
sim 300 --agents 4 --model mlp:784-128-10 --rounds 150 --batch 32 --lr 0.05 --quiet \
	--export "$TMP/mlp.onnx" || fail "macc-sim (mlp): $(cat "$TMP/err")"
acc=$(kv test_acc_avg "$TMP/out")
predict mlp "$TMP/mlp.onnx" fashion-mnist
grep -q "accuracy $acc on the labels" "$TMP/mlp.err" ||
	fail "the exported average model scores differently from macc-sim's test_acc_avg $acc: $(cat "$TMP/mlp.err")"
onnx_compare "$TMP/mlp.onnx" "$TMP/mlp.json" "idx:$IMAGES" || fail "mlp"

# 2. A custom CNN with every image layer kind: agent 1 of two.
CNN="input:1x28x28,conv:8:5:pad=2,relu,maxpool:2,conv:16:3:stride=2,leakyrelu:0.1"
CNN="$CNN,avgpool:2:stride=1,flatten,dense:64,gelu,dropout:0.1,dense:32,tanh,dense:10"
sim 300 --agents 2 --model "$CNN" --rounds 300 --batch 32 --lr 0.05 --quiet \
	--export "$TMP/cnn.onnx" --export-agent 1 || fail "macc-sim (cnn): $(cat "$TMP/err")"
grep -q "exported macc-sim agent 1 of 2" "$TMP/err" || fail "cnn: $(cat "$TMP/err")"
predict cnn "$TMP/cnn.onnx" fashion-mnist
acc=$(sed -n 's/.*accuracy \([0-9.]*\) on the labels.*/\1/p' "$TMP/cnn.err")
ge "$acc" 0.5 || fail "the CNN did not learn (accuracy $acc): the comparison would be weak"
onnx_compare "$TMP/cnn.onnx" "$TMP/cnn.json" "idx:$IMAGES" || fail "cnn"

# 3. Regression on a generated CSV (6 features, 2 targets): centralized.
awk 'BEGIN {
	s = 777
	print "a,b,c,d,e,f,y1,y2"
	for (i = 0; i < 1200; i++) {
		line = ""
		for (k = 0; k < 6; k++) {
			s = (s * 1103515245 + 12345) % 2147483648
			x[k] = s / 2147483648
			line = line sprintf("%.5f,", x[k])
		}
		printf "%s%.5f,%.5f\n", line, x[0] * x[1] + x[2], sin(3 * x[3]) - x[4] * x[5]
	}
}' >"$TMP/reg.csv"
REG="input:6,dense:32,sigmoid,dense:16,tanh,dense:2,loss:mse"
sim 300 --agents 4 --algorithm centralized --model "$REG" \
	--data "csv:$TMP/reg.csv,target=y1:y2,val=0.25:1" --rounds 400 --batch 16 --lr 0.1 \
	--quiet --export "$TMP/reg.onnx" || fail "macc-sim (regression): $(cat "$TMP/err")"
predict reg "$TMP/reg.onnx" "$TMP/reg.csv"
grep -q "1200 rows scored.*RMSE [0-9.]* on the targets" "$TMP/reg.err" ||
	fail "regression: $(cat "$TMP/reg.err")"
onnx_compare "$TMP/reg.onnx" "$TMP/reg.json" "csv:$TMP/reg.csv" || fail "regression"

# 4. The standardiser in the graph: an image model and a regression model.
"$FIXTURE" "input:2x6x6,conv:4:3:pad=1,relu,maxpool:2,flatten,dense:5" 500 3 \
	"$TMP/std-img.onnx" "$TMP/std-img.csv" || fail "onnx_fixture (image)"
predict std-img "$TMP/std-img.onnx" "$TMP/std-img.csv"
onnx_compare "$TMP/std-img.onnx" "$TMP/std-img.json" "csv:$TMP/std-img.csv" || fail "std-img"
"$FIXTURE" "input:7,dense:16,gelu,dense:3,loss:mse" 500 4 "$TMP/std-reg.onnx" \
	"$TMP/std-reg.csv" || fail "onnx_fixture (regression)"
predict std-reg "$TMP/std-reg.onnx" "$TMP/std-reg.csv"
onnx_compare "$TMP/std-reg.onnx" "$TMP/std-reg.json" "csv:$TMP/std-reg.csv" || fail "std-reg"

# 5. A file macc did not write is refused, naming why.
"$PYTHON" - "$TMP/mlp.onnx" "$TMP/foreign.onnx" <<'PY' || fail "cannot write the foreign model"
import sys, onnx
m = onnx.load(sys.argv[1])
m.producer_name = "pytorch"
onnx.save(m, sys.argv[2])
PY
"$CTL" predict fashion-mnist model "$TMP/foreign.onnx" >/dev/null 2>"$TMP/foreign.err" &&
	fail "a foreign ONNX file was accepted"
grep -q "not written by macc (producer 'pytorch')" "$TMP/foreign.err" ||
	fail "foreign: $(cat "$TMP/foreign.err")"
echo "PASS: exports pass onnx.checker and ONNX Runtime agrees with macc on every test row"
