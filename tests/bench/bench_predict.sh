#!/bin/bash
# bench_predict.sh: latency of predictions from a running daemon's live model over the control
# socket (`macc-ctl predict`'s path), one row and a batch of 64, while four daemons train
# mlp:784-256-128-10 on Fashion-MNIST on a loopback ring, and again once they are stopped
# (idle). Reference, same machine, same run: the forward pass in-process (bench_predict) and,
# when test_export_ort.sh has installed it into the build directory, ONNX Runtime on the model
# exported from the same daemon. Loopback only; every daemon started here is ended by its pid.
#   MACC_BUILD=build MACC_SRC=. tests/bench/bench_predict.sh [ITERATIONS]
set -euo pipefail
: "${MACC_BUILD:?}" "${MACC_SRC:?}"
iters=${1:-500}
AGENTD=$MACC_BUILD/src/agentd/macc-agentd
CTL=$MACC_BUILD/src/ctl/macc-ctl
BENCH=$MACC_BUILD/tests/bench/bench_predict
WORK=$(mktemp -d /tmp/macc-bench-predict.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

"$MACC_SRC/examples/ring-4/gen.sh" -o "$WORK/fleet" -p $((21000 + $$ % 2000 * 4)) \
	--set rounds=1000000 --set checkpoint_every=0 >/dev/null
for j in 0 1 2 3; do
	"$AGENTD" -c "$WORK/fleet/agent$j/agentd.conf" >"$WORK/agent$j.log" 2>&1 &
	PIDS+=("$!")
done
S=$WORK/fleet/agent0/ctl.sock
for _ in $(seq 1 600); do
	grep -Eq "round [0-9]{3,}/" "$WORK/agent0.log" 2>/dev/null && break
	sleep 0.1
done
grep -Eq "round [0-9]{3,}/" "$WORK/agent0.log" || { tail "$WORK/agent0.log"; exit 1; }
echo "== while training ($(nproc) cores shared with 4 training daemons)"
"$BENCH" "$S" "$iters"
for j in 0 1 2 3; do
	"$CTL" -s "$WORK/fleet/agent$j/ctl.sock" stop >/dev/null
done
sleep 1
echo "== idle (training stopped)"
"$BENCH" "$S" "$iters"
"$CTL" -s "$S" export "$WORK/m.onnx" >/dev/null
if [ -d "$MACC_BUILD/ort-node/node_modules/onnxruntime-node" ]; then
	echo "== reference: ONNX Runtime in-process on the exported model (idle machine)"
	NODE_PATH=$MACC_BUILD/ort-node/node_modules node "$MACC_SRC/tests/bench/ort_latency.js" \
		"$WORK/m.onnx" 784 "$iters"
else
	echo "(ONNX Runtime reference skipped: run the export_ort test once to install it)"
fi
